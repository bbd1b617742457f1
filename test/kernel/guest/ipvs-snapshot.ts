// Guest side of test/kernel/ipvs-snapshot.test.ts: reads the whole IPVS table with
// IpvsClient.snapshot({ stats: false }) under the options given as JSON in argv[2] (dump workers,
// their share, parallelism) and prints it as ipvsadm-like lines plus the client's counters.
import { IpvsClient, type IpvsClientOptions } from "../../../agents/hostagent/netlink/ipvs/client.js";

const opts = JSON.parse(process.argv[2] ?? "{}") as IpvsClientOptions;
try {
  const client = await IpvsClient.open(opts);
  const native = client.nativeDumps;
  const before = client.requests;
  const snap = await client.snapshot({ stats: false });
  const requests = client.requests - before;
  client.close();
  const lines: string[] = [];
  for (const { service: s, destinations } of snap) {
    const key = s.fwmark !== undefined ? `f${s.fwmark}/${s.family}` : `${s.protocol} ${s.address} ${s.port}`;
    lines.push(`S ${key} ${s.scheduler}`);
    for (const d of destinations) lines.push(`D ${key} -> ${d.address} ${d.port} ${d.forward} ${d.weight}`);
  }
  process.stdout.write(JSON.stringify({ ok: true, lines, services: snap.length, requests, native }) + "\n");
} catch (e) {
  const err = e as Error & { code?: string };
  process.stdout.write(JSON.stringify({ ok: false, error: { name: err.name, code: err.code, message: err.message } }) + "\n");
}
