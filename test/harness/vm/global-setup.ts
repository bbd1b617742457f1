// vitest globalSetup of the "kernel" project: starts the kernel target (host namespace or the VM) once
// per run in the main process and hands its KernelTargetInfo to the test workers through
// `provide`; tests get a connected target with `kernelTarget()` from test/harness/kernel-vitest.ts.
// A target that cannot start fails the run (on CI and off it): never a silent skip.
import type { TestProject } from "vitest/node";
import { startKernelTarget, type KernelTarget } from "../kernel-target.js";
import type {} from "../kernel-vitest.js"; // ProvidedContext["lvsfleetKernelTarget"]

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = Date.now();
  let target: KernelTarget;
  try {
    target = await startKernelTarget();
  } catch (err) {
    const ci = process.env.CI === "true" || process.env.CI === "1";
    throw new Error(
      `kernel tests need a kernel with IPVS: the host has none and the VM could not be started` +
        `${ci ? " (CI: this is a failure, not a skip)" : ""}. See test/harness/README.md.\n${(err as Error).stack ?? err}`,
    );
  }
  const extra = target.info.kind === "vm" ? `, ${target.info.kernelRelease}, guest booted in ${target.info.bootMs} ms, serial log ${target.info.serialLog}` : `, netns ${target.info.netns}`;
  process.stderr.write(`[lvsfleet-kernel] target ${target.kind} ready in ${Date.now() - t0} ms${extra}\n`);
  project.provide("lvsfleetKernelTarget", target.info);
  return async () => {
    await target.close();
  };
}
