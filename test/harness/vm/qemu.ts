// Boots the kernel-test VM with qemu (TCG, see /work/shared/kernel-vm-recipe.md) and stops it.
//
// Per boot a run directory `.lvsfleet/vm/runs/<time>-<pid>/` holds:
//   serial.log  the guest console (kernel messages, stage1/stage2 progress, fatal errors)
//   qemu.log    qemu's own stdout/stderr
//   chan/       the read-write 9p share (cache=none), mounted in the guest at the same absolute path:
//               stage2.sh, loop.sh, run-one.sh, ready, boot.log, cmd/ run/ out/ kill/ (see channel.ts)
//               and share/ (free for tests: files written there are visible on both sides)
//   doorbell.in / doorbell.out
//               FIFOs behind the guest's virtio-serial port "lvsfleet.doorbell" (qemu `-chardev pipe`):
//               any host process writes one-line events to doorbell.in to wake the guest's command
//               server (see channel.ts); qemu holds both open read-write, so writers never block on open
//   dead        written by the owner when qemu exits without being asked to (connectors read it)
//   info.json   the VmInfo, once the guest is ready (cli.ts --run <dir> uses it)
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, constants, createWriteStream, existsSync, openSync, writeSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ensureHostTools, REPO_ROOT, vmCacheDir, type VmImage } from "./image.js";
import { VmDiedError } from "../kernel-target-errors.js";
import { DOORBELL_PORT, loopScript, runOneScript, stage2Script, type GuestParams } from "./guest.js";

/** What another process needs to use a booted VM (serialisable; passed through vitest `provide`). */
export interface VmInfo {
  kind: "vm";
  runDir: string;
  chanDir: string;
  shareDir: string;
  /**
   * Host FIFO feeding the guest's doorbell port (one line per event: "run <id>", "kill <id>", "stop").
   * Absent in the info of a VM booted by an older harness: its guest polls the share instead.
   */
  doorbell?: string;
  serialLog: string;
  pid: number; // the process group leader wrapping qemu (see WRAPPER)
  kernelRelease: string;
  bootMs: number;
}


// The wrapper puts qemu under `timeout` (hard cap on its life) and kills it when the Node process that
// started it disappears (vitest killed with SIGKILL leaves no qemu behind). $1 = parent pid or 0.
const WRAPPER = `parent=$1; shift
"$@" &
q=$!
trap 'kill -TERM $q 2>/dev/null; wait $q; exit 143' TERM INT
while kill -0 $q 2>/dev/null; do
  if [ "$parent" != 0 ] && ! kill -0 "$parent" 2>/dev/null; then kill -TERM $q; sleep 2; kill -KILL $q 2>/dev/null; break; fi
  sleep 1
done
wait $q`;

export async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, "utf8")).split("\n").slice(-lines).join("\n");
  } catch {
    return "(no serial log)";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes run directories of earlier processes that are gone (crashed runs, LVSFLEET_VM_KEEP leftovers). */
async function pruneRuns(runsDir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = await readdir(runsDir);
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(/-(\d+)$/.exec(n)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    // the qemu wrapper may outlive a KEEP run; its pid is recorded
    try {
      const qpid = Number(await readFile(join(runsDir, n, "wrapper.pid"), "utf8"));
      if (qpid && alive(qpid)) continue;
    } catch {
      /* no pid file */
    }
    await rm(join(runsDir, n), { recursive: true, force: true });
  }
}

export interface BootOptions {
  bootTimeoutMs?: number;
  keep?: boolean; // leave qemu running after the parent exits (LVSFLEET_VM_KEEP)
  maxLifetimeSec?: number;
  preload?: string[];
  smp?: number; // vCPUs (LVSFLEET_VM_SMP, 2)
  memMiB?: number; // guest memory (LVSFLEET_VM_MEM, 2048)
  verbose?: boolean; // all kernel messages on the console (LVSFLEET_VM_VERBOSE=1); default quiet
}

export interface RunningVm {
  info: VmInfo;
  child: ChildProcess;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

export async function bootVm(image: VmImage, opts: BootOptions = {}): Promise<RunningVm> {
  const { qemu } = await ensureHostTools();
  const runsDir = join(vmCacheDir(), "runs");
  await pruneRuns(runsDir);
  const runDir = join(runsDir, `${new Date().toISOString().replace(/[:.]/g, "")}-${process.pid}`);
  const chanDir = join(runDir, "chan");
  for (const d of ["cmd", "run", "out", "kill", "share"]) await mkdir(join(chanDir, d), { recursive: true });
  const params: GuestParams = {
    chanDir,
    imageDir: image.dir,
    kernelRelease: image.kernelRelease,
    busybox: image.busybox,
    binDir: image.binDir,
    repoRoot: REPO_ROOT,
    preload: opts.preload ?? (process.env.LVSFLEET_VM_PRELOAD ?? "ip_vs").split(/[\s,]+/).filter(Boolean),
  };
  // qemu's pipe chardev needs <path>.in and <path>.out to exist as FIFOs.
  const doorbell = join(runDir, "doorbell");
  await promisify(execFile)("mkfifo", ["-m", "600", `${doorbell}.in`, `${doorbell}.out`]);
  await writeFile(join(chanDir, "stage2.sh"), stage2Script(params));
  await writeFile(join(chanDir, "loop.sh"), loopScript(params));
  await writeFile(join(chanDir, "run-one.sh"), runOneScript(params));

  const serialLog = join(runDir, "serial.log");
  const useKvm = process.env.LVSFLEET_VM_ACCEL === "kvm"; // off by default: the recipe measured KVM broken here
  const args = [
    ...(useKvm ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", "tcg,thread=multi", "-cpu", "max"]),
    "-smp", String(opts.smp ?? process.env.LVSFLEET_VM_SMP ?? 2),
    "-m", String(opts.memMiB ?? process.env.LVSFLEET_VM_MEM ?? 2048),
    "-M", "pc",
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-nic", "none", // no network device to the outside
    "-serial", `file:${serialLog}`,
    "-kernel", image.vmlinux,
    "-initrd", image.initramfs,
    "-append", `console=ttyS0 ${opts.verbose ?? process.env.LVSFLEET_VM_VERBOSE === "1" ? "loglevel=7" : "quiet"} panic=-1 rdinit=/init tsc=reliable mitigations=off`,
    "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
    "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
    "-fsdev", `local,id=chan,path=${chanDir},security_model=none,multidevs=remap`,
    "-device", "virtio-9p-pci,fsdev=chan,mount_tag=chan",
    // The doorbell: a virtio-serial port the guest's command server blocks on (guest.ts, channel.ts).
    "-device", "virtio-serial-pci,id=vser0",
    "-chardev", `pipe,id=doorbell,path=${doorbell}`,
    "-device", `virtserialport,bus=vser0.0,chardev=doorbell,name=${DOORBELL_PORT}`,
  ];
  // A backstop only (the wrapper already stops qemu when its parent dies). Not 1 h: a whole `npm test`
  // on a loaded 2-core machine took 67 min, and the VM was killed under the last kernel test files.
  const maxLife = opts.maxLifetimeSec ?? Number(process.env.LVSFLEET_VM_MAX_SECONDS ?? 7200);
  const keep = opts.keep ?? process.env.LVSFLEET_VM_KEEP === "1";
  const qemuLog = createWriteStream(join(runDir, "qemu.log"));
  const t0 = Date.now();
  const child = spawn(
    "bash",
    ["-c", WRAPPER, "lvsfleet-vm", String(keep ? 0 : process.pid), "timeout", "-k", "5", String(maxLife), qemu, ...args],
    { detached: true, stdio: ["ignore", "pipe", "pipe"] }, // own process group: stop() kills it whole
  );
  child.stdout!.pipe(qemuLog, { end: false });
  child.stderr!.pipe(qemuLog, { end: false });
  if (keep) child.unref();
  const pid = child.pid!;
  await writeFile(join(runDir, "wrapper.pid"), String(pid));
  await writeFile(join(runDir, "qemu.cmdline"), [qemu, ...args].map((a) => (/[\s,]/.test(a) ? `'${a}'` : a)).join(" ") + "\n");

  let stopping = false;
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  void exited.then(async (code) => {
    qemuLog.end();
    if (!stopping) await writeFile(join(runDir, "dead"), `qemu exited with ${code}\n`).catch(() => {});
  });

  const info: VmInfo = {
    kind: "vm",
    runDir,
    chanDir,
    shareDir: join(chanDir, "share"),
    doorbell: `${doorbell}.in`,
    serialLog,
    pid,
    kernelRelease: image.kernelRelease,
    bootMs: 0,
  };
  const stop = async (keepLogs = false) => {
    if (stopping) return;
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      await writeFile(join(chanDir, "stop"), "").catch(() => {});
      ringDoorbell(info, "stop");
      const t = setTimeout(() => killGroup(pid, "SIGTERM"), 5000);
      const k = setTimeout(() => killGroup(pid, "SIGKILL"), 10000);
      await exited;
      clearTimeout(t);
      clearTimeout(k);
    }
    if (!keep && !keepLogs && process.env.LVSFLEET_VM_KEEP_LOGS !== "1") await rm(runDir, { recursive: true, force: true });
  };

  // Wait for the command server to announce itself.
  const bootTimeout = opts.bootTimeoutMs ?? Number(process.env.LVSFLEET_VM_BOOT_TIMEOUT_MS ?? 90_000);
  for (;;) {
    if (existsSync(join(chanDir, "ready"))) break;
    const failed = existsSync(join(chanDir, "boot-failed"));
    if (failed || child.exitCode !== null || child.signalCode !== null || Date.now() - t0 > bootTimeout) {
      const why = failed
        ? `guest setup failed: ${(await readFile(join(chanDir, "boot-failed"), "utf8")).trim()}`
        : child.exitCode !== null || child.signalCode !== null
          ? `qemu exited (${child.exitCode ?? child.signalCode}) before the guest was ready`
          : `guest not ready after ${bootTimeout} ms`;
      const qlog = await readFile(join(runDir, "qemu.log"), "utf8").catch(() => "");
      await stop(true); // keep the run dir for debugging
      const err = new VmDiedError(`VM boot failed: ${why} (logs kept in ${runDir})\n--- qemu.log ---\n${qlog.trim()}`, await tail(serialLog));
      err.permanent = failed;
      throw err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  info.bootMs = Date.now() - t0;
  await writeFile(join(runDir, "info.json"), JSON.stringify(info, null, 2) + "\n"); // for connectKernelTarget / cli.ts --run
  // LVSFLEET_VM_KEEP: the VM outlives its owner (cli.ts --run, connectKernelTarget); stop it with chan/stop.
  return { info, child, exited, stop: () => (keep ? Promise.resolve() : stop()) };
}

/**
 * Writes one event line to the guest's doorbell (`run <id>`, `kill <id>`, `stop`). Never blocks: the FIFO
 * is opened non-blocking (ENXIO when qemu is gone) and a line is far below PIPE_BUF, so concurrent writers
 * from several processes never interleave. Returns false when the line could not be written (qemu gone,
 * or the FIFO full because the guest stopped reading); the guest also rescans the share every 2 s.
 */
export function ringDoorbell(info: VmInfo, line: string): boolean {
  if (!info.doorbell) return false;
  let fd = doorbellFds.get(info.doorbell);
  try {
    if (fd === undefined) {
      fd = openSync(info.doorbell, constants.O_WRONLY | constants.O_NONBLOCK);
      doorbellFds.set(info.doorbell, fd);
    }
    writeSync(fd, `${line}\n`);
    return true;
  } catch {
    if (fd !== undefined) {
      doorbellFds.delete(info.doorbell);
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    return false;
  }
}
const doorbellFds = new Map<string, number>();

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* gone */
  }
}

export { alive as processAlive };
