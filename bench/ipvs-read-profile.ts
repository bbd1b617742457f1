// npx tsx bench/ipvs-read-profile.ts --services 2000 --reals 10 --rounds 3
// A full IPVS read taken apart (service dump, request encoding, the addon's destination dumps on one
// and two threads, decoding, the whole snapshot) next to `ipvsadm -Sn`, in the kernel target (the VM
// when the host has no ip_vs). One line per round; the first round runs with the JIT cold.
import { bundleForGuest, mustExec, startKernelTarget } from "../test/harness/kernel-target.js";

const target = await startKernelTarget();
try {
  const js = await bundleForGuest("bench/ipvs-read-profile-guest.ts");
  console.log(await mustExec(target, `node ${js} ${process.argv.slice(2).join(" ")}`, { timeoutMs: 60 * 60_000 }));
} finally {
  await target.close();
}
