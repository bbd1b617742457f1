// npx tsx bench/ipvs-read-profile.ts --services 2000 --reals 10 --rounds 3
// A full IPVS read taken apart (service dump, request encoding, the addon's destination dumps on one
// and two threads, decoding, the whole snapshot) next to `ipvsadm -Sn`, in the kernel target (the VM
// when the host has no ip_vs). One line per round; the first round runs with the JIT cold.
import { cp } from "node:fs/promises";
import { join } from "node:path";
import { bundleForGuest, mustExec, startKernelTarget } from "../test/harness/kernel-target.js";

const target = await startKernelTarget();
try {
  const js = await bundleForGuest("bench/ipvs-read-profile-guest.ts");
  // --cpu-prof: a V8 CPU profile of the guest run, written to the target's share and copied to
  // .lvsfleet/ipvs-read-profile/ (open it in Chrome DevTools).
  const prof = process.argv.includes("--cpu-prof");
  const args = process.argv.slice(2).filter((a) => a !== "--cpu-prof");
  const dir = `${target.shareDir}/ipvs-read-profile`;
  console.log(await mustExec(target, `${prof ? `mkdir -p ${dir} && ` : ""}node ${prof ? `--cpu-prof --cpu-prof-dir ${dir} ` : ""}${js} ${args.join(" ")}`, { timeoutMs: 60 * 60_000 }));
  if (prof) {
    const out = join(process.cwd(), ".lvsfleet", "ipvs-read-profile");
    await cp(dir, out, { recursive: true });
    console.log(`cpu profile in ${out}`);
  }
} finally {
  await target.close();
}
