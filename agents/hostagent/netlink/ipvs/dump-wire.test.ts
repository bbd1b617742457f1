import { describe, expect, it } from "vitest";
import { NetlinkDumpInterruptedError, NetlinkError, NetlinkTimeoutError } from "../errors.js";
import { ReplyPacker, deserializeError, serializeError, unpackParts } from "./dump-wire.js";

describe("dump worker wire format", () => {
  // Packs as the worker does: parts handed over in place from a larger "datagram".
  function pack(dumps: string[][], count = dumps.length): ArrayBuffer {
    const p = new ReplyPacker(8); // small start: exercises growing
    dumps.forEach((parts, i) => {
      for (const s of parts) {
        const datagram = Buffer.concat([Buffer.from("HDR:"), Buffer.from(s), Buffer.from(":TAIL")]);
        p.add(i, datagram, 4, 4 + Buffer.byteLength(s));
      }
    });
    return p.finish(count);
  }
  function unpack(packed: ArrayBuffer[], count: number): string[][] {
    const got: string[][] = [];
    unpackParts(
      packed,
      count,
      (i) => (got[i] = []),
      (i, b, start, end) => got[i]!.push(b.toString("utf8", start, end)),
    );
    return got;
  }

  it("packs and unpacks the payloads of every dump in order (odd lengths padded, empty dumps kept, several buffers)", () => {
    const a = [["a", "bcdef"], [], ["0123", "", "xyz"]];
    const b = [[], ["q"], []]; // a dump that delivered nothing last is still closed by finish(count)
    expect(unpack([pack(a)], 3)).toEqual(a);
    expect(unpack([pack(a), pack([[], ["q"]], 3)], 6)).toEqual([...a, ...b]);
    expect(new Uint8Array(pack([["abcde"]]))).toEqual(new Uint8Array([1, 0, 0, 0, 5, 0, 0, 0, 97, 98, 99, 100, 101, 0, 0, 0]));
  });

  it("refuses parts out of dump order", () => {
    const p = new ReplyPacker();
    p.add(1, Buffer.from("x"), 0, 1);
    expect(() => p.add(0, Buffer.from("y"), 0, 1)).toThrow(/after dump 1/);
  });

  it("rejects a truncated or over-long buffer instead of reading past it", () => {
    const packed = pack([["hello"]]);
    expect(() => unpack([packed.slice(0, packed.byteLength - 4)], 1)).toThrow(/out of bounds/);
    expect(() => unpack([packed], 2)).toThrow(/end early/);
    expect(() => unpack([packed], 0)).toThrow(/left after/);
    expect(() => unpack([packed.slice(0, 2)], 1)).toThrow(/end early/);
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
