// For test files of the "kernel" vitest project: the kernel target the global setup started.
//
//   import { kernelTarget } from "../harness/kernel-vitest.js";
//   const target = await kernelTarget();
//   const { code, stdout, stderr } = await target.exec("ipvsadm -Ln");
//
// close() on this target only detaches; the global setup stops the VM after the run.
import { inject } from "vitest";
import { connectKernelTarget, type KernelTarget, type KernelTargetInfo } from "./kernel-target.js";

declare module "vitest" {
  export interface ProvidedContext {
    lvsfleetKernelTarget: KernelTargetInfo;
  }
}

let connected: Promise<KernelTarget> | undefined;

export function kernelTarget(): Promise<KernelTarget> {
  const info = inject("lvsfleetKernelTarget");
  if (!info) throw new Error("no kernel target: run this file in the vitest \"kernel\" project (its globalSetup starts the target)");
  connected ??= connectKernelTarget(info);
  return connected;
}
