// Errors of the kernel test harness. A command that ran and exited non-zero is NOT an error of exec():
// it is an ExecResult with code != 0. These errors mean the target could not run or finish it.

export class KernelTargetError extends Error {
  override name = "KernelTargetError";
}

/** The VM is gone (kernel panic, qemu crash or killed) or never came up. `serialTail` has its last words. */
export class VmDiedError extends KernelTargetError {
  override name = "VmDiedError";
  /** Set on boot failures that a second attempt cannot fix (the guest's own setup reported an error). */
  permanent = false;
  constructor(message: string, readonly serialTail = "") {
    super(serialTail ? `${message}\n--- serial console (tail) ---\n${serialTail}` : message);
  }
}

/** The command did not finish in time; it was killed (process group). Partial output attached. */
export class ExecTimeoutError extends KernelTargetError {
  override name = "ExecTimeoutError";
  constructor(message: string, readonly stdout: string, readonly stderr: string) {
    super(message);
  }
}

/** Thrown by mustExec() when a command exits non-zero. */
export class CommandFailedError extends KernelTargetError {
  override name = "CommandFailedError";
  constructor(readonly script: string, readonly code: number, readonly stdout: string, readonly stderr: string) {
    super(`command exited with ${code}: ${script.trim().split("\n")[0].slice(0, 200)}\n${stderr.trim().slice(-2000)}`);
  }
}
