// Guest side of test/kernel/ipvs-native-dump.test.ts, on the IPVS kernel:
//  1. snapshot() through the netlink dump addon (default; many small batches on 3 pool threads) and
//     through NetlinkSocket.dumpMany (nativeDumps: false) — the full decoded tables, counters included;
//  2. the same dump list through nativeDumpMany and NetlinkSocket.dumpMany, with a request the kernel
//     refuses (IPVS_CMD_GET_INFO has no dump handler) and one for a service that does not exist;
// and prints one JSON document with both sides of each.
import { nativeDumpLoadError, nativeDumpMany } from "../../../agents/hostagent/netlink/native-dump.js";
import { unpackParts } from "../../../agents/hostagent/netlink/ipvs/dump-wire.js";
import { IpvsClient } from "../../../agents/hostagent/netlink/ipvs/client.js";
import { encodeDumpDests, encodeGetInfo } from "../../../agents/hostagent/netlink/ipvs/codec.js";
import { NETLINK_GENERIC, NetlinkSocket } from "../../../agents/hostagent/netlink/socket.js";

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));

const native = await IpvsClient.open({ nativeDumpThreads: 3, nativeDumpBatch: 7 });
const plain = await IpvsClient.open({ nativeDumps: false });
try {
  const nativeUsed = native.nativeDumps;
  const r0 = native.requests;
  const a = await native.snapshot();
  const nativeRequests = native.requests - r0;
  const b = await plain.snapshot();

  // The two services with the most destinations, and one that does not exist.
  const [x, y] = [...a].sort((p, q) => q.destinations.length - p.destinations.length).map((s) => s.service);
  const missing = { ...x!, fwmark: undefined, family: "ipv4" as const, protocol: "tcp" as const, address: "203.0.113.254", port: 9 };
  const payloads = [encodeDumpDests(x!), encodeGetInfo(), encodeDumpDests(missing), encodeDumpDests(y!)];
  const op = "IPVS_CMD_GET_DEST(dump)";
  const got = await nativeDumpMany(NETLINK_GENERIC, native.familyId, payloads, op);
  const nativeParts: string[][] = payloads.map(() => []);
  unpackParts([got.packed], payloads.length, () => {}, (i, buf, s, e) => nativeParts[i]!.push(buf.subarray(s, e).toString("hex")));
  const sock = NetlinkSocket.open(NETLINK_GENERIC, { recvMessageSize: 32768 });
  const res = await sock.dumpMany(payloads.map((payload) => ({ type: native.familyId, payload, op })));
  sock.close();
  process.stdout.write(
    json({
      ok: true,
      nativeUsed,
      nativeRequests,
      services: a.length,
      snapshotNative: json(a),
      snapshotPlain: json(b),
      dumps: {
        native: { parts: nativeParts, errors: got.errors.map((e) => (e ? { name: e.name, code: e.code, op: e.op } : null)), stray: got.stray },
        socket: { parts: res.map((r) => r.replies.map((m) => m.payload.toString("hex"))), errors: res.map((r) => (r.error ? { name: r.error.name, code: r.error.code, op: r.error.op } : null)) },
      },
    }) + "\n",
  );
} catch (e) {
  const err = e as Error & { code?: string };
  process.stdout.write(json({ ok: false, loadError: nativeDumpLoadError()?.message, error: { name: err.name, code: err.code, message: err.message } }) + "\n");
} finally {
  native.close();
  plain.close();
}
