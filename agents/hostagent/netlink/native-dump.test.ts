// The netlink dump addon (native/dump.c via native-dump.ts) on this host's kernel: generic netlink
// is there without ip_vs, so the controller's family dump (CTRL_CMD_GETFAMILY, one multipart reply
// per family) serves as the table. The addon's packed replies, read back with the JS decoder
// (dump-wire.ts unpackParts), must equal what NetlinkSocket.dumpMany (the `netlink` package path)
// gets for the same requests; kernel errors come back per dump as typed NetlinkErrors, transport
// failures reject the call. The addon is required here: a checkout where `npm ci` did not build it fails.
import { afterEach, describe, expect, it, vi } from "vitest";
import { CTRL_CMD_GETFAMILY, CTRL_VERSION, GENL_ID_CTRL, genlPayload } from "./genl.js";
import { unpackParts } from "./ipvs/dump-wire.js";
import { nativeDumpAvailable, nativeDumpLoadError, nativeDumpMany, packRequests } from "./native-dump.js";
import { NETLINK_GENERIC, NetlinkError, NetlinkSocket, NetlinkTimeoutError } from "./socket.js";

const NETLINK_USERSOCK = 2;
const getFamilies = () => genlPayload(CTRL_CMD_GETFAMILY, CTRL_VERSION);

/** Packed dumps → one array of payload hex strings per dump. */
function parts(packed: ArrayBuffer, count: number): string[][] {
  const out: string[][] = Array.from({ length: count }, () => []);
  unpackParts([packed], count, () => {}, (i, b, s, e) => out[i]!.push(b.subarray(s, e).toString("hex")));
  return out;
}

describe("netlink dump addon", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it("is built and loads", () => {
    expect(nativeDumpLoadError()).toBeUndefined();
    expect(nativeDumpAvailable()).toBe(true);
  });

  it("packs the same replies, dump by dump, as NetlinkSocket.dumpMany receives", async () => {
    const reqs = [getFamilies(), getFamilies(), getFamilies()];
    const got = await nativeDumpMany(NETLINK_GENERIC, GENL_ID_CTRL, reqs, "CTRL_CMD_GETFAMILY(dump)");
    expect(got.errors).toEqual([undefined, undefined, undefined]);
    expect(got.messages).toBe(3);
    expect(got.stray).toBe(0);
    const sock = NetlinkSocket.open(NETLINK_GENERIC);
    try {
      const res = await sock.dumpMany(reqs.map((payload) => ({ type: GENL_ID_CTRL, payload, op: "CTRL_CMD_GETFAMILY(dump)" })));
      const want = res.map((r) => r.replies.map((m) => m.payload.toString("hex")));
      const native = parts(got.packed, 3);
      expect(native).toEqual(want);
      // "nlctrl" itself is always there, and every family is one part: a multipart dump.
      expect(native[0]!.length).toBeGreaterThan(1);
      expect(native[0]!.some((h) => h.includes(Buffer.from("nlctrl\0").toString("hex")))).toBe(true);
    } finally {
      sock.close();
    }
  });

  it("reports a kernel error per dump and keeps the other dumps' replies in the same call", async () => {
    // Dump 1 asks nlctrl for a command it has no handler for (CTRL_CMD_NEWFAMILY): a kernel error
    // between two good dumps on the same socket. The socket path must see the same error.
    const reqs = [getFamilies(), genlPayload(1 /* CTRL_CMD_NEWFAMILY */, CTRL_VERSION), getFamilies()];
    const sock = NetlinkSocket.open(NETLINK_GENERIC);
    let want: (string | undefined)[];
    try {
      const res = await sock.dumpMany(reqs.map((payload) => ({ type: GENL_ID_CTRL, payload, op: "CTRL(dump)" })));
      want = res.map((r) => r.error?.code);
    } finally {
      sock.close();
    }
    expect(want[1]).toMatch(/^E/);
    const got = await nativeDumpMany(NETLINK_GENERIC, GENL_ID_CTRL, reqs, "CTRL(dump)");
    expect(got.errors.map((e) => e?.code)).toEqual(want);
    expect(got.errors[1]).toBeInstanceOf(NetlinkError);
    expect(got.errors[1]!.op).toBe("CTRL(dump)");
    const p = parts(got.packed, 3);
    expect(p[1]).toEqual([]); // a failed dump packs no parts
    expect(p[0]!.length).toBeGreaterThan(1);
    expect(p[2]).toEqual(p[0]);
  });

  it("reports an unknown genl family id as ENOENT, like the socket path", async () => {
    const got = await nativeDumpMany(NETLINK_GENERIC, 0x7ff0, [getFamilies()], "x(dump)");
    expect(got.errors[0]!.code).toBe("ENOENT");
  });

  it("rejects on a transport failure with a typed error (sendmsg to a protocol without a kernel socket)", async () => {
    const err = await nativeDumpMany(NETLINK_USERSOCK, 0x10, [getFamilies()], "USERSOCK(dump)").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).not.toBeInstanceOf(NetlinkTimeoutError);
    expect((err as NetlinkError).code).toBe("ECONNREFUSED");
    expect((err as NetlinkError).message).toMatch(/sendmsg, dump 1 of 1/);
  });

  it("checks its arguments", async () => {
    await expect(nativeDumpMany(NETLINK_GENERIC, 0x1_0000, [getFamilies()], "x")).rejects.toThrow(TypeError);
    // A request buffer that claims more bytes than it has is refused by the C side, not read past.
    const { createRequire } = await import("node:module");
    const path = (await import("node:path")).join(__dirname, "native", "build", "Release", "lvsfleet_netlink_dump.node");
    const raw = createRequire(import.meta.url)(path) as { dump(...a: unknown[]): Promise<{ failErrno: number; failSyscall: string }> };
    const bad = packRequests([getFamilies()]);
    bad.writeUInt32LE(1000, 0);
    const r = await raw.dump(NETLINK_GENERIC, GENL_ID_CTRL, 0, bad, 1, 1000);
    expect(r.failSyscall).toBe("requests");
    expect(r.failErrno).toBe(22 /* EINVAL */);
  });

  it("a missing addon is reported, and dumping through it fails with that reason", async () => {
    vi.stubEnv("LVSFLEET_NETLINK_DUMP_ADDON", "/nonexistent/lvsfleet_netlink_dump.node");
    vi.resetModules();
    const m = await import("./native-dump.js");
    expect(m.nativeDumpAvailable()).toBe(false);
    expect(m.nativeDumpLoadError()!.message).toMatch(/nonexistent.*failed to load/);
    await expect(m.nativeDumpMany(NETLINK_GENERIC, GENL_ID_CTRL, [getFamilies()], "x")).rejects.toThrow(/failed to load/);
  });
});
