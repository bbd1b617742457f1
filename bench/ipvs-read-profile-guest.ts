// Guest half of bench/ipvs-read-profile.ts: where a full IPVS read's time goes, piece by piece, on a
// table programmed with ipvsadm -R (<services> × <reals>), next to `ipvsadm -Sn`, several rounds.
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { IpvsClient } from "../agents/hostagent/netlink/ipvs/client.js";
import { decodeDestinationAt, decodeService, encodeDumpServices, packDumpDestsFromServiceReplies } from "../agents/hostagent/netlink/ipvs/codec.js";
import { unpackParts } from "../agents/hostagent/netlink/ipvs/dump-wire.js";
import { nativeDumpPacked } from "../agents/hostagent/netlink/native-dump.js";
import { NETLINK_GENERIC, NetlinkSocket } from "../agents/hostagent/netlink/socket.js";

const arg = (n: string, d: number) => (process.argv.includes(`--${n}`) ? Number(process.argv[process.argv.indexOf(`--${n}`) + 1]) : d);
const S = arg("services", 2000);
const R = arg("reals", 10);
const rounds = arg("rounds", 3);
const rules: string[] = [];
for (let i = 1; i <= S; i++) {
  const vip = `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  rules.push(`-A -t ${vip}:80 -s wlc`);
  for (let j = 1; j <= R; j++) rules.push(`-a -t ${vip}:80 -r 198.51.100.${j}:8080 -m -w 1`);
}
const client = await IpvsClient.open({ timeoutMs: 600_000 });
await client.flush();
if (process.argv.includes("--program-with-client")) {
  // Faster than ipvsadm -R at 10 000 services (~12 s against ~250 s in the VM).
  const svc = (i: number) => ({ family: "ipv4" as const, protocol: "tcp" as const, address: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, port: 80 });
  const errs = await client.batch(
    Array.from({ length: S }, (_, k) => k + 1).flatMap((i) => [
      { op: "newService" as const, service: { ...svc(i), scheduler: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff } },
      ...Array.from({ length: R }, (_, j) => ({ op: "newDestination" as const, service: svc(i), destination: { family: "ipv4" as const, address: `198.51.100.${j + 1}`, port: 8080, forward: "masq" as const, weight: 1, upperThreshold: 0, lowerThreshold: 0 } })),
    ]),
  );
  if (errs.some(Boolean)) throw new Error("programming failed");
} else {
  const rr = spawnSync("ipvsadm", ["-R"], { input: rules.join("\n") + "\n" });
  if (rr.status !== 0) throw new Error(String(rr.stderr));
}
const sock = NetlinkSocket.open(NETLINK_GENERIC, { recvMessageSize: 8192 });
const t = () => performance.now();
const lines: string[] = [];
for (let k = 0; k < rounds; k++) {
  let t0 = t();
  const save = spawnSync("ipvsadm", ["-Sn"], { maxBuffer: 1 << 30 });
  const saveMs = t() - t0;
  t0 = t();
  const snap = await client.snapshot({ stats: false });
  const snapMs = t() - t0;
  t0 = t();
  const msgs = await sock.dump({ type: client.familyId, payload: encodeDumpServices(), op: "x" });
  const listMs = t() - t0;
  t0 = t();
  for (const m of msgs) decodeService(m.payload, { stats: false });
  const decSvcMs = t() - t0;
  const replies = msgs.map((m) => m.payload);
  const n = replies.length;
  t0 = t();
  const one = await nativeDumpPacked(NETLINK_GENERIC, client.familyId, packDumpDestsFromServiceReplies(replies), n, "x");
  const dump1Ms = t() - t0;
  t0 = t();
  await Promise.all([
    nativeDumpPacked(NETLINK_GENERIC, client.familyId, packDumpDestsFromServiceReplies(replies, 0, n >> 1), n >> 1, "x"),
    nativeDumpPacked(NETLINK_GENERIC, client.familyId, packDumpDestsFromServiceReplies(replies, n >> 1), n - (n >> 1), "x"),
  ]);
  const dump2Ms = t() - t0;
  t0 = t();
  let d = 0;
  unpackParts([one.packed], n, () => {}, (_i, buf, s, e) => {
    decodeDestinationAt(buf, s, e, "ipv4", { stats: false });
    d++;
  });
  const decMs = t() - t0;
  lines.push(`round=${k} save_ms=${saveMs.toFixed(0)} snapshot_ms=${snapMs.toFixed(0)} ratio=${(snapMs / saveMs).toFixed(2)} list_ms=${listMs.toFixed(0)} decode_services_ms=${decSvcMs.toFixed(0)} dump1thread_ms=${dump1Ms.toFixed(0)} dump2threads_ms=${dump2Ms.toFixed(0)} decode_dests_ms=${decMs.toFixed(0)} services=${snap.length} dests=${d}`);
}
sock.close();
client.close();
spawnSync("ipvsadm", ["-C"]);
process.stdout.write(lines.join("\n") + "\n");
