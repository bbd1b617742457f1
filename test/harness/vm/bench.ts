// The VM command channel's cost, for test/harness/README.md ("Measured"):
//
//   npx tsx test/harness/vm/bench.ts
//
// boots a VM, samples qemu's CPU while the guest idles (20 s), times 40 sequential exec("true") and
// 20 concurrent `ipvsadm -Ln`, kills a command on timeout, stops the VM. Last line: key=value figures
// with the host's load average (a TCG guest's speed follows it).
import { readdirSync, readFileSync } from "node:fs";
import { mustExec, startKernelTarget, type VmInfo } from "../kernel-target.js";

const t0 = Date.now();
const target = await startKernelTarget({ kind: "vm" });
const bootMs = Date.now() - t0;
const info = target.info as VmInfo;

/** The qemu process under the wrapper (wrapper → timeout → qemu). */
function findQemu(pid: number): number | undefined {
  for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]) !== pid) continue;
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").includes("qemu-system")) {
        const q = findQemu(Number(d));
        return q ?? Number(d);
      }
    } catch {
      /* gone */
    }
  }
  return undefined;
}
const qemu = findQemu(info.pid);
if (!qemu) throw new Error("qemu process not found");
const cpuSeconds = () => {
  const st = readFileSync(`/proc/${qemu}/stat`, "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

await mustExec(target, "true");
await sleep(3000);
const c0 = cpuSeconds();
const w0 = Date.now();
await sleep(20_000);
const idle = (cpuSeconds() - c0) / ((Date.now() - w0) / 1000);

const seq: number[] = [];
for (let i = 0; i < 40; i++) {
  const t = Date.now();
  await mustExec(target, "true");
  seq.push(Date.now() - t);
}
seq.sort((a, b) => a - b);
const tp = Date.now();
await Promise.all(Array.from({ length: 20 }, () => mustExec(target, "ipvsadm -Ln >/dev/null")));
const par = Date.now() - tp;
const tk = Date.now();
const timedOut = await target.exec("sleep 300", { timeoutMs: 1000 }).then(() => false, (e: Error) => e.name === "ExecTimeoutError");
const left = (await mustExec(target, "sleep 0.5; pgrep -x sleep | wc -l")).trim();
const killMs = Date.now() - tk;
await target.close();
const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(",");
console.log(
  `boot_ms=${bootMs} idle_qemu_cpu=${idle.toFixed(3)} exec_true_p50_ms=${seq[20]} exec_true_p90_ms=${seq[36]} ipvsadm_x20_concurrent_ms=${par} ` +
    `timeout_killed=${timedOut && left === "0"} kill_cycle_ms=${killMs} loadavg=${load}`,
);
