// npm run bench:ipvs -- --services 10000 --reals 10
//
// IPVS programming and read-back, lvsfleet's IpvsClient (netlink, batched) next to ipvsadm, on a
// kernel with IPVS: the host's when it has ip_vs, otherwise the test VM (test/harness). The work
// runs in bench/ipvs-guest.ts inside the target; this file boots it, relays the numbers and prints
//   services=… reals=… apply_ratio=… change_requests=… read_ratio=…
// as the last line (ratios: lvsfleet time ÷ ipvsadm time; goals apply ≤ 1.0, change ≤ 3, read ≤ 1.0).
// "read" is IpvsClient.snapshot({ stats: false }) — the configuration, like `ipvsadm -Sn`; the same
// read with every counter decoded is printed on the line before (read_with_counters_ms). The read
// uses one dump worker thread per extra CPU (IpvsClientOptions.dumpWorkers; ipvsadm uses one CPU).
import { loadavg } from "node:os";
import { bundleForGuest, mustExec, startKernelTarget } from "../test/harness/kernel-target.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const services = arg("services", 1000);
const reals = arg("reals", 10);

// The host's load decides how fast a TCG guest runs at all: print it next to the figures.
const hostLoad = () => loadavg().map((x) => x.toFixed(2)).join(",");
const hostLoadBefore = hostLoad();
const target = await startKernelTarget();
try {
  const js = await bundleForGuest("bench/ipvs-guest.ts");
  const worker = await bundleForGuest("agents/hostagent/netlink/ipvs/dump-worker.ts");
  const out = await mustExec(target, `node ${js} --services ${services} --reals ${reals} --dump-worker ${worker}`, { timeoutMs: 60 * 60_000 });
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as {
    services: number; reals: number; messages: number; applyMs: number; applyRequests: number; ipvsadmRestoreMs: number;
    readMs: number; readStatsMs: number; ipvsadmSaveMs: number; changeMs: number; changeRequests: number;
    cpus: number; dumpWorkers: number; loadavg: number[];
  };
  const f = (x: number) => x.toFixed(1);
  console.log(`host_load_before=${hostLoadBefore} host_load_after=${hostLoad()}`);
  console.log(`target=${target.kind} cpus=${r.cpus} dump_workers=${r.dumpWorkers} guest_load=${r.loadavg.map((x) => x.toFixed(2)).join(",")} messages=${r.messages} apply_ms=${f(r.applyMs)} ipvsadm_restore_ms=${f(r.ipvsadmRestoreMs)} read_ms=${f(r.readMs)} read_with_counters_ms=${f(r.readStatsMs)} ipvsadm_save_ms=${f(r.ipvsadmSaveMs)} change_ms=${f(r.changeMs)}`);
  console.log(
    `services=${r.services} reals=${r.reals} apply_ratio=${(r.applyMs / r.ipvsadmRestoreMs).toFixed(3)} change_requests=${r.changeRequests} read_ratio=${(r.readMs / r.ipvsadmSaveMs).toFixed(3)}`,
  );
} finally {
  await target.close();
}
