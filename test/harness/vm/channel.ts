// Host side of the VM command channel: files in the read-write 9p share (cache=none), and a doorbell.
//
//   host writes  cmd/.<id>.tmp, renames it to cmd/<id>.sh      (rename = atomic hand-over)
//   host rings   "run <id>" on the doorbell (a virtio-serial port the guest blocks on; qemu.ts)
//   guest starts run-one.sh <id> in its own session: writes run/<id>.pid, sources cmd/<id>.sh in a
//                bash subshell with stdin from cmd/<id>.in (if any, else /dev/null) and stdout/stderr
//                to out/<id>.out / out/<id>.err, then writes out/<id>.code
//   host waits   for out/<id>.code to hold a number — woken by inotify on out/ (qemu's 9p server writes
//                the file on the host), with a slow poll behind it — reads the result, removes the files;
//                on timeout writes kill/<id> and rings "kill <id>" (the guest kills the process group)
//
// Any process can use the channel given the VmInfo (vitest workers connect to the VM the global setup
// booted). Several commands may run at once. "VM died" is told apart from "command failed" by the
// owner's `dead` marker and by the qemu wrapper's pid disappearing.
import { existsSync, watch, type FSWatcher } from "node:fs";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ExecTimeoutError, KernelTargetError, VmDiedError } from "../kernel-target-errors.js";
import { processAlive, ringDoorbell, tail, type VmInfo } from "./qemu.js";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

let seq = 0;

/** How long a vCPU may be reported stuck before the guest counts as wedged (s). */
export const WEDGED_AFTER_S = 120;

/**
 * A guest kernel that reports a vCPU stuck for WEDGED_AFTER_S or more ("watchdog: BUG: soft lockup -
 * CPU#0 stuck for 600s! [node:481]"): seen once under TCG after an RCU timer stall (2026-11-26), with
 * both vCPUs stuck until the run was stopped. Its commands never finish, so every test using the VM
 * would wait out its own timeout (minutes each, past CI's limit); telling it apart makes them fail at
 * once, with the reason. Shorter reports are left alone: TCG on a loaded host can stall for a while
 * and recover.
 */
export function wedgedGuest(serial: string): string | undefined {
  let worst: RegExpExecArray | undefined;
  for (const m of serial.matchAll(/soft lockup - CPU#(\d+) stuck for (\d+)s!/g)) {
    if (!worst || Number(m[2]) > Number(worst[2])) worst = m;
  }
  if (!worst || Number(worst[2]) < WEDGED_AFTER_S) return undefined;
  return `the guest kernel is wedged: soft lockup, CPU#${worst[1]} stuck for ${worst[2]}s`;
}

export class VmChannel {
  private closed = false;
  constructor(readonly info: VmInfo) {}

  /** Throws VmDiedError when the VM is gone, or wedged (see wedgedGuest). */
  async checkAlive(): Promise<void> {
    const dead = join(this.info.runDir, "dead");
    if (!existsSync(dead) && processAlive(this.info.pid)) {
      const wedged = await this.checkWedged();
      // Marked dead for every process using this VM: their commands fail now, not at their timeouts.
      if (wedged) await writeFile(dead, `${wedged}\n`).catch(() => {});
    }
    if (existsSync(dead) || !processAlive(this.info.pid)) {
      const why = existsSync(dead) ? (await readFile(dead, "utf8").catch(() => "")).trim() : `qemu wrapper pid ${this.info.pid} is gone`;
      throw new VmDiedError(`the VM died (${why}); serial log: ${this.info.serialLog}`, await tail(this.info.serialLog));
    }
  }

  private serialSize = 0;
  /** The serial log is read again only when it grew (the alive check runs every 250 ms per command). */
  private async checkWedged(): Promise<string | undefined> {
    const size = await stat(this.info.serialLog).then((s) => s.size, () => 0);
    if (size === this.serialSize) return undefined;
    this.serialSize = size;
    return wedgedGuest(await readFile(this.info.serialLog, "utf8").catch(() => ""));
  }

  markClosed(): void {
    this.closed = true;
    this.unwatch();
  }

  // One inotify watch on out/ while commands of this channel are pending: file name -> its signal.
  private watcher: FSWatcher | undefined;
  private readonly signals = new Map<string, Signal>();

  /** Starts noting changes of `name` in out/ (before the command can finish: no change is missed). */
  private signal(name: string): Signal {
    const sig = new Signal();
    this.signals.set(name, sig);
    if (!this.watcher) {
      try {
        this.watcher = watch(join(this.info.chanDir, "out"), { persistent: false }, (_ev, file) => {
          if (file) this.signals.get(file.toString())?.fire();
        });
        this.watcher.on("error", () => this.unwatch());
      } catch {
        /* no inotify (watch limit): the timed re-checks still find the result */
      }
    }
    return sig;
  }

  private unsignal(name: string): void {
    this.signals.delete(name);
    if (this.signals.size === 0) this.unwatch();
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
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
    // A VM booted by an older harness has no doorbell: its guest polls cmd/ every 20 ms, and so do we.
    const sig = this.signal(`${id}.code`);
    const rung = ringDoorbell(this.info, `run ${id}`);
    if (!rung) this.unsignal(`${id}.code`);
    const cleanup = () => {
      this.unsignal(`${id}.code`);
      return Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
    };
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
        ringDoorbell(this.info, `kill ${id}`);
        // The pid file stays for the guest loop (it removes it when it kills the group). The script goes
        // after a moment, so a command still queued can no longer start.
        this.unsignal(`${id}.code`);
        const { pid: _pid, ...rest } = files;
        setTimeout(() => void Promise.all(Object.values(rest).map((f) => rm(f, { force: true }))).catch(() => {}), 2000).unref();
        throw new ExecTimeoutError(`command in the VM did not finish within ${timeoutMs} ms (killed): ${script.trim().split("\n")[0].slice(0, 200)}`, stdout, stderr);
      }
      if (rung) {
        // inotify wakes us when the guest writes the code; the timer only bounds the alive checks.
        await sig.wait(Math.min(250, Math.max(1, timeoutMs - (now - t0) + 1)));
      } else {
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 20);
      }
    }
  }
}

/** "Something changed" for one file: set by the watcher, consumed by wait(). */
class Signal {
  private changed = false;
  private wake: (() => void) | undefined;

  fire(): void {
    this.changed = true;
    this.wake?.();
  }

  /** Resolves at once when a change was noted since the last wait, else on the next change or after `ms`. */
  wait(ms: number): Promise<void> {
    if (this.changed) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        this.changed = false;
        resolve();
      };
    });
  }
}
