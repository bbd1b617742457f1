// npm run bench:ipvs -- --services 10000 --reals 10
//
// IPVS programming and read-back, lvsfleet's IpvsClient (netlink, batched) next to ipvsadm, on a
// kernel with IPVS: the host's when it has ip_vs, otherwise the test VM (test/harness). The work
// runs in bench/ipvs-guest.ts inside the target; this file boots it, relays the numbers and prints
//   services=… reals=… apply_ratio=… change_requests=… read_ratio=…
// as the last line (ratios: lvsfleet time ÷ ipvsadm time; goals apply ≤ 1.0, change ≤ 3, read ≤ 1.0).
// "read" is IpvsClient.snapshot({ stats: false }) — the configuration, like `ipvsadm -Sn`; the same
// read with every counter decoded is printed on the line before (read_with_counters_ms). The read
// runs its destination dumps in the netlink dump addon (agents/hostagent/netlink/native: the dump
// loop in C on a pool thread while this thread decodes); --no-native measures the `netlink` package path instead
// (one dump worker thread per extra CPU), --compare-js adds that path's read as read_js_ms in the
// same run, --native-threads N sets the addon's threads. ipvsadm uses one CPU.
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
  // Flags for the guest half (--no-native, --native-threads N, --compare-js) pass through.
  const extra = ["--no-native", "--compare-js"].filter((f) => process.argv.includes(f));
  if (process.argv.includes("--native-threads")) extra.push("--native-threads", String(arg("native-threads", 2)));
  const out = await mustExec(target, `node ${js} --services ${services} --reals ${reals} --dump-worker ${worker} ${extra.join(" ")}`, { timeoutMs: 60 * 60_000 });
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as {
    services: number; reals: number; messages: number; applyMs: number; applyRequests: number; ipvsadmRestoreMs: number;
    readMs: number; readStatsMs: number; ipvsadmSaveMs: number; changeMs: number; changeRequests: number;
    readJsMs?: number; native: boolean; nativeThreads: number; cpus: number; dumpWorkers: number; loadavg: number[];
  };
  const f = (x: number) => x.toFixed(1);
  console.log(`host_load_before=${hostLoadBefore} host_load_after=${hostLoad()}`);
  const jsRead = r.readJsMs === undefined ? "" : ` read_js_ms=${f(r.readJsMs)} read_js_ratio=${(r.readJsMs / r.ipvsadmSaveMs).toFixed(3)}`;
  console.log(`target=${target.kind} cpus=${r.cpus} native=${r.native ? 1 : 0} native_threads=${r.native ? r.nativeThreads : 0} dump_workers=${r.dumpWorkers}${jsRead} guest_load=${r.loadavg.map((x) => x.toFixed(2)).join(",")} messages=${r.messages} apply_ms=${f(r.applyMs)} ipvsadm_restore_ms=${f(r.ipvsadmRestoreMs)} read_ms=${f(r.readMs)} read_with_counters_ms=${f(r.readStatsMs)} ipvsadm_save_ms=${f(r.ipvsadmSaveMs)} change_ms=${f(r.changeMs)}`);
  console.log(
    `services=${r.services} reals=${r.reals} apply_ratio=${(r.applyMs / r.ipvsadmRestoreMs).toFixed(3)} change_requests=${r.changeRequests} read_ratio=${(r.readMs / r.ipvsadmSaveMs).toFixed(3)}`,
  );
} finally {
  await target.close();
}
