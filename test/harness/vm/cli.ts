// Runs shell scripts in the kernel-test VM from the command line (debugging, captures):
//
//   npx tsx test/harness/vm/cli.ts 'ipvsadm -Ln' 'strace -f -e trace=sendmsg ipvsadm -A -t 192.0.2.1:80'
//       boots a VM, runs each script in turn (stdout/stderr passed through), stops it
//   LVSFLEET_VM_KEEP=1 npx tsx test/harness/vm/cli.ts 'true'
//       ... and leaves the VM running; prints its run directory
//   npx tsx test/harness/vm/cli.ts --run .lvsfleet/vm/runs/<dir> 'nft list ruleset'
//       uses that running VM (stop it: touch <dir>/chan/stop)
//
// Exit status: that of the last script (or 1 when the VM could not be used).
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { connectKernelTarget, startKernelTarget, type KernelTarget, type VmInfo } from "../kernel-target.js";

const args = process.argv.slice(2);
let target: KernelTarget;
if (args[0] === "--run") {
  const dir = resolve(args[1] ?? "");
  target = await connectKernelTarget(JSON.parse(await readFile(join(dir, "info.json"), "utf8")) as VmInfo);
  args.splice(0, 2);
} else {
  target = await startKernelTarget({ kind: "vm" });
  const info = target.info as VmInfo;
  process.stderr.write(`[lvsfleet-vm] booted ${info.kernelRelease} in ${info.bootMs} ms; run dir ${info.runDir}\n`);
}
let code = 0;
try {
  for (const script of args) {
    const t0 = Date.now();
    const r = await target.exec(script, { timeoutMs: Number(process.env.LVSFLEET_VM_EXEC_TIMEOUT_MS ?? 600_000) });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.stderr.write(`[lvsfleet-vm] exit ${r.code} after ${Date.now() - t0} ms\n`);
    code = r.code;
  }
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  code = 1;
} finally {
  await target.close();
}
process.exit(code);
