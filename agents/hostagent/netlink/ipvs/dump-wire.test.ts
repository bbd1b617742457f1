import { describe, expect, it } from "vitest";
import { NetlinkDumpInterruptedError, NetlinkError, NetlinkTimeoutError } from "../errors.js";
import { deserializeError, packReplies, serializeError, unpackReplies } from "./dump-wire.js";

describe("dump worker wire format", () => {
  it("packs and unpacks the payloads of every dump in order (odd lengths padded, empty dumps kept)", () => {
    const p = (s: string) => ({ payload: Buffer.from(s) });
    const results = [{ replies: [p("a"), p("bcdef")] }, { replies: [] }, { replies: [p("0123"), p(""), p("xyz")] }];
    const got: string[][] = [];
    unpackReplies(packReplies(results), 3, (i, payloads) => (got[i] = payloads.map((b) => b.toString())));
    expect(got).toEqual([["a", "bcdef"], [], ["0123", "", "xyz"]]);
  });

  it("rejects a truncated or over-long buffer instead of reading past it", () => {
    const packed = packReplies([{ replies: [{ payload: Buffer.from("hello") }] }]);
    expect(() => unpackReplies(packed.slice(0, packed.byteLength - 4), 1, () => {})).toThrow(/out of bounds/);
    expect(() => unpackReplies(packed, 2, () => {})).toThrow(/end early/);
    expect(() => unpackReplies(packed, 0, () => {})).toThrow(/left after/);
  });

  it("typed netlink errors keep their class and fields across the thread boundary", () => {
    const t = deserializeError(structuredClone(serializeError(new NetlinkTimeoutError("IPVS_CMD_GET_DEST(dump)", 1500))));
    expect(t).toBeInstanceOf(NetlinkTimeoutError);
    expect(t).toMatchObject({ code: "ETIMEDOUT", op: "IPVS_CMD_GET_DEST(dump)", timeoutMs: 1500, retryable: true });
    const i = deserializeError(structuredClone(serializeError(new NetlinkDumpInterruptedError("d"))));
    expect(i).toBeInstanceOf(NetlinkDumpInterruptedError);
    const e = deserializeError(structuredClone(serializeError(new NetlinkError("d", 22, { extack: "bad attr" }))));
    expect(e).toMatchObject({ name: "NetlinkError", code: "EINVAL", extack: "bad attr", retryable: false });
    expect(deserializeError(serializeError(new TypeError("boom")))).toMatchObject({ code: "EIO", message: "boom" });
  });
});
