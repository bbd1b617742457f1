// Host side of the VM command channel: files in the read-write 9p share (cache=none).
//
//   host writes  cmd/.<id>.tmp, renames it to cmd/<id>.sh      (rename = atomic hand-over)
//   guest starts run-one.sh <id> in its own session: writes run/<id>.pid, sources cmd/<id>.sh in a
//                bash subshell with stdin from cmd/<id>.in (if any, else /dev/null) and stdout/stderr
//                to out/<id>.out / out/<id>.err, then writes out/<id>.code
//   host polls   out/<id>.code until it holds a number, reads the result, removes the files;
//                on timeout writes kill/<id> (the guest kills the process group)
//
// Any process can use the channel given the VmInfo (vitest workers connect to the VM the global setup
// booted). Several commands may run at once. "VM died" is told apart from "command failed" by the
// owner's `dead` marker and by the qemu wrapper's pid disappearing.
import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ExecTimeoutError, KernelTargetError, VmDiedError } from "../kernel-target-errors.js";
import { processAlive, tail, type VmInfo } from "./qemu.js";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

let seq = 0;

export class VmChannel {
  private closed = false;
  constructor(readonly info: VmInfo) {}

  /** Throws VmDiedError when the VM is gone. */
  async checkAlive(): Promise<void> {
    const dead = join(this.info.runDir, "dead");
    if (existsSync(dead) || !processAlive(this.info.pid)) {
      const why = existsSync(dead) ? (await readFile(dead, "utf8").catch(() => "")).trim() : `qemu wrapper pid ${this.info.pid} is gone`;
      throw new VmDiedError(`the VM died (${why}); serial log: ${this.info.serialLog}`, await tail(this.info.serialLog));
    }
  }

  markClosed(): void {
    this.closed = true;
  }

  async exec(script: string, opts: { timeoutMs?: number; stdin?: string | Buffer } = {}): Promise<ExecResult> {
    if (this.closed) throw new KernelTargetError("kernel target is closed");
    await this.checkAlive();
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const id = `${process.pid}-${Date.now().toString(36)}-${seq++}`;
    const c = this.info.chanDir;
    const files = {
      cmd: join(c, "cmd", `${id}.sh`),
      in: join(c, "cmd", `${id}.in`),
      pid: join(c, "run", `${id}.pid`),
      out: join(c, "out", `${id}.out`),
      err: join(c, "out", `${id}.err`),
      code: join(c, "out", `${id}.code`),
    };
    const tmp = join(c, "cmd", `.${id}.tmp`);
    if (opts.stdin !== undefined) await writeFile(files.in, opts.stdin); // before the .sh appears
    await writeFile(tmp, script);
    await rename(tmp, files.cmd);
    const cleanup = () => Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
    const t0 = Date.now();
    let wait = 2;
    let lastAliveCheck = t0;
    for (;;) {
      const codeText = await readFile(files.code, "utf8").catch(() => "");
      if (/^\d+\n$/.test(codeText)) {
        const [stdout, stderr] = await Promise.all([readFile(files.out, "utf8").catch(() => ""), readFile(files.err, "utf8").catch(() => "")]);
        await cleanup();
        return { code: Number.parseInt(codeText, 10), stdout, stderr };
      }
      const now = Date.now();
      if (now - lastAliveCheck > 250) {
        lastAliveCheck = now;
        try {
          await this.checkAlive();
        } catch (err) {
          await cleanup().catch(() => {});
          throw err;
        }
      }
      if (now - t0 > timeoutMs) {
        const [stdout, stderr] = await Promise.all([readFile(files.out, "utf8").catch(() => ""), readFile(files.err, "utf8").catch(() => "")]);
        await writeFile(join(c, "kill", id), "").catch(() => {});
        // The pid file stays for the guest loop (it removes it when it kills the group). The script goes
        // after a moment, so a command still queued can no longer start.
        const { pid: _pid, ...rest } = files;
        setTimeout(() => void Promise.all(Object.values(rest).map((f) => rm(f, { force: true }))).catch(() => {}), 2000).unref();
        throw new ExecTimeoutError(`command in the VM did not finish within ${timeoutMs} ms (killed): ${script.trim().split("\n")[0].slice(0, 200)}`, stdout, stderr);
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 20);
    }
  }
}
