// Guest half of bench/ipvs.ts — runs with `node` on the kernel with IPVS (inside the VM). Programs
// <services> × <reals> through lvsfleet's IpvsClient and, on the same kernel, the same rules through
// `ipvsadm -R`; times one destination change (and counts its netlink requests) and a full state read
// against `ipvsadm -Sn`. Prints one JSON document.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { IpvsClient, type IpvsOperation } from "../agents/hostagent/netlink/ipvs/client.js";
import type { IpvsDestination, IpvsService } from "../agents/hostagent/netlink/ipvs/codec.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const S = arg("services", 1000);
const R = arg("reals", 10);
if (S < 1 || S > 131070 || R < 1 || R > 254) throw new Error("--services 1..131070, --reals 1..254");

// VIPs from 198.18.0.0/15 (benchmarking range), real servers 198.51.100.1..R.
const vip = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const services: IpvsService[] = Array.from({ length: S }, (_, k) => ({
  family: "ipv4", protocol: "tcp", address: vip(k + 1), port: 80, scheduler: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff,
}));
const reals: IpvsDestination[] = Array.from({ length: R }, (_, j) => ({
  family: "ipv4", address: `198.51.100.${j + 1}`, port: 8080, forward: "masq", weight: 1, upperThreshold: 0, lowerThreshold: 0,
}));

function sh(cmd: string, args: string[], input?: string): { ms: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { input, encoding: "utf8", maxBuffer: 1 << 30 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

// The read runs its destination dumps in the netlink dump addon (C dump loop on a pool thread;
// --native-threads N for more) unless --no-native. Without the addon, or with
// --compare-js for the second figure, it runs them through the `netlink` package with worker threads,
// one per CPU beyond this one (--dump-worker: the bundled agents/hostagent/netlink/ipvs/dump-worker.ts).
const wi = process.argv.indexOf("--dump-worker");
const dumpWorkerScript = wi >= 0 ? process.argv[wi + 1] : undefined;
const jsWorkers = dumpWorkerScript ? Math.max(0, availableParallelism() - 1) : 0;
const noNative = process.argv.includes("--no-native");
const compareJs = process.argv.includes("--compare-js");
const nativeDumpThreads = process.argv.includes("--native-threads") ? arg("native-threads", 2) : undefined;
const client = await IpvsClient.open({
  timeoutMs: 600_000,
  ...(noNative ? { nativeDumps: false, dumpWorkers: jsWorkers, dumpWorkerScript } : { nativeDumpThreads }),
});
if (!noNative && !client.nativeDumps) throw new Error("the netlink dump addon did not load (npm ci builds it; --no-native to measure without it)");
const dumpWorkers = noNative ? jsWorkers : 0;
await client.flush();

// 1. lvsfleet programs the table: every service followed by its destinations, batched.
const ops: IpvsOperation[] = services.flatMap((svc): IpvsOperation[] => [
  { op: "newService", service: svc },
  ...reals.map((d): IpvsOperation => ({ op: "newDestination", service: svc, destination: d })),
]);
let t0 = performance.now();
const errs = await client.batch(ops);
const applyMs = performance.now() - t0;
const failed = errs.filter(Boolean);
if (failed.length) throw new Error(`${failed.length} operations failed, first: ${failed[0]!.message}`);
const applySends = client.requests;
process.stderr.write(`apply ${applyMs.toFixed(0)} ms\n`);

// 2. lvsfleet reads the full configuration (services + destinations), as the agent does for its
//    diff and as `ipvsadm -Sn` does; then once more with every counter decoded, for the record.
const loadAtRead = loadavg();
t0 = performance.now();
const snap = await client.snapshot({ stats: false });
const readMs = performance.now() - t0;
t0 = performance.now();
const snapStats = await client.snapshot();
const readStatsMs = performance.now() - t0;
if (snapStats.length !== S) throw new Error("snapshot with stats incomplete");
process.stderr.write(`read ${readMs.toFixed(0)} ms, with counters ${readStatsMs.toFixed(0)} ms\n`);
// The same read through the `netlink` package path (before the addon), in the same minutes.
let readJsMs: number | undefined;
if (compareJs) {
  const js = await IpvsClient.open({ timeoutMs: 600_000, nativeDumps: false, dumpWorkers: jsWorkers, dumpWorkerScript });
  t0 = performance.now();
  const snapJs = await js.snapshot({ stats: false });
  readJsMs = performance.now() - t0;
  js.close();
  if (snapJs.length !== S) throw new Error("netlink-package read incomplete");
  process.stderr.write(`read through the netlink package ${readJsMs.toFixed(0)} ms\n`);
}
const readDests = snap.reduce((n, s) => n + s.destinations.length, 0);
if (snap.length !== S || readDests !== S * R) throw new Error(`read ${snap.length} services / ${readDests} destinations, want ${S} / ${S * R}`);

// 3. One destination change in the full table.
const target = services[Math.floor(S / 2)]!;
const before = client.requests;
t0 = performance.now();
await client.setDestination(target, { ...reals[0]!, weight: 5 });
const changeMs = performance.now() - t0;
const changeRequests = client.requests - before;

// 4. ipvsadm reads the same table.
const save = sh("ipvsadm", ["-Sn"]);
const saveLines = save.stdout.split("\n").filter(Boolean).length;
if (saveLines !== S + S * R) throw new Error(`ipvsadm -Sn printed ${saveLines} lines, want ${S + S * R}`);

// 5. ipvsadm programs the same rules from scratch (ipvsadm -R, input prepared beforehand).
await client.flush();
const rules = services.flatMap((s) => [`-A -t ${s.address}:80 -s wlc`, ...reals.map((d) => `-a -t ${s.address}:80 -r ${d.address}:8080 -m -w 1`)]).join("\n") + "\n";
writeFileSync("/tmp/lvsfleet-bench.rules", rules);
const restore = sh("ipvsadm", ["-R"], rules);
const check = await client.listServices();
if (check.length !== S) throw new Error(`ipvsadm -R left ${check.length} services, want ${S}`);
await client.flush();
client.close();

process.stdout.write(
  JSON.stringify({
    services: S,
    reals: R,
    messages: ops.length,
    applyMs,
    applyRequests: applySends,
    ipvsadmRestoreMs: restore.ms,
    readMs,
    readStatsMs,
    ipvsadmSaveMs: save.ms,
    changeMs,
    changeRequests,
    readJsMs,
    native: client.nativeDumps,
    nativeThreads: nativeDumpThreads ?? 1,
    cpus: availableParallelism(),
    dumpWorkers,
    loadavg: loadAtRead,
  }) + "\n",
);
