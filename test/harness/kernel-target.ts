// The kernel tests' way to run code on a real kernel that has IPVS.
//
//   const target = await startKernelTarget();   // boots the VM when the host kernel lacks ip_vs
//   const r = await target.exec("ipvsadm -Ln");  // { code, stdout, stderr }; runs as root with bash
//   await target.close();
//
// kind "host": the host kernel has IPVS (/proc/net/ip_vs, or `modprobe ip_vs` works). Scripts run in a
//   network namespace made for this target (IPVS tables are per namespace, so the host's own table is
//   never touched) and removed by close().
// kind "vm": qemu with Debian's stock kernel (vm/), booted once; scripts run in the guest, as root, in
//   the guest's initial namespace, with the host's files visible read-only (writes land in a tmpfs
//   overlay) and cwd = the repository root. PATH starts with Debian's ipvsadm and nft.
//
// In vitest the global setup (vm/global-setup.ts) starts the target once per run and provides its
// KernelTargetInfo; test files call `kernelTarget()` from ./kernel-vitest.ts (connectKernelTarget underneath).
// See README.md for the protocol, timings and knobs.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { CommandFailedError, ExecTimeoutError, KernelTargetError, VmDiedError } from "./kernel-target-errors.js";
import { VmChannel, type ExecResult } from "./vm/channel.js";
import { prepareVmImage, REPO_ROOT } from "./vm/image.js";
import { bootVm, type BootOptions, type VmInfo } from "./vm/qemu.js";

export { CommandFailedError, ExecTimeoutError, KernelTargetError, VmDiedError } from "./kernel-target-errors.js";
export type { ExecResult } from "./vm/channel.js";
export type { BootOptions, VmInfo } from "./vm/qemu.js";

export interface ExecOptions {
  /** Default 60 s. On expiry the command's process group is killed and ExecTimeoutError thrown. */
  timeoutMs?: number;
  /** Standard input, delivered as a regular file (not a pipe: `nft -f -` / `ipvsadm -R` are happy). */
  stdin?: string | Buffer;
}

export interface HostInfo {
  kind: "host";
  netns: string;
  shareDir: string;
  pathPrefix: string; // prepended to PATH (Debian ipvsadm/nft wrappers when the host has none)
}

export type KernelTargetInfo = HostInfo | VmInfo;

export interface KernelTarget {
  kind: "host" | "vm";
  /** Runs a bash script as root on a kernel with IPVS. Non-zero exit is a result, not an error. */
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Stops the VM / removes the namespace when this target started it; no-op on a connected target. */
  close(): Promise<void>;
  /** Serialisable description for connectKernelTarget() in another process. */
  info: KernelTargetInfo;
  /** Read-write host directory visible at the same absolute path inside the target (fixtures, captures). */
  shareDir: string;
}

/** Like exec() but throws CommandFailedError on a non-zero exit; returns stdout. */
export async function mustExec(target: KernelTarget, script: string, opts?: ExecOptions): Promise<string> {
  const r = await target.exec(script, opts);
  if (r.code !== 0) throw new CommandFailedError(script, r.code, r.stdout, r.stderr);
  return r.stdout;
}

function sh(cmd: string, args: string[], timeoutMs = 10_000): Promise<ExecResult> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("error", (e) => {
      clearTimeout(t);
      if ((e as NodeJS.ErrnoException).code === "ENOENT") res({ code: 127, stdout, stderr: String(e) });
      else rej(e);
    });
    p.on("close", (code, sig) => {
      clearTimeout(t);
      res({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
  });
}

/** Does the running kernel have IPVS? /proc/net/ip_vs, or a successful `modprobe ip_vs`. */
export async function hostHasIpvs(): Promise<boolean> {
  if (existsSync("/proc/net/ip_vs")) return true;
  const r = await sh("modprobe", ["-q", "ip_vs"]);
  return r.code === 0 && existsSync("/proc/net/ip_vs");
}

async function which(cmd: string): Promise<boolean> {
  return (await sh("sh", ["-c", `command -v ${cmd}`])).code === 0;
}

// ---------------------------------------------------------------------------------------------- host

let execSeq = 0;

function hostTarget(info: HostInfo, owner: boolean): KernelTarget {
  let closed = false;
  return {
    kind: "host",
    info,
    shareDir: info.shareDir,
    // Same semantics as the VM channel: stdin from a file, stdout/stderr to files, done when the script's
    // shell exits (background processes it leaves behind keep running and do not hold the result up).
    async exec(script, opts = {}) {
      if (closed) throw new KernelTargetError("kernel target is closed");
      const timeoutMs = opts.timeoutMs ?? 60_000;
      const base = join(info.shareDir, `.exec-${process.pid}-${execSeq++}`);
      await writeFile(`${base}.in`, opts.stdin ?? "");
      const fds = [openSync(`${base}.in`, "r"), openSync(`${base}.out`, "w"), openSync(`${base}.err`, "w")];
      const finish = async () => {
        const [stdout, stderr] = await Promise.all([readFile(`${base}.out`, "utf8"), readFile(`${base}.err`, "utf8")]);
        await Promise.all([".in", ".out", ".err"].map((x) => rm(base + x, { force: true })));
        return { stdout, stderr };
      };
      const env = { ...process.env, PATH: `${info.pathPrefix}${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`, LVSFLEET_KERNEL_TARGET_KIND: "host" };
      let p;
      try {
        // detached: own process group, so a timeout kills everything the script started
        p = spawn("ip", ["netns", "exec", info.netns, "bash", "-c", script], { cwd: REPO_ROOT, env, detached: true, stdio: fds });
      } finally {
        for (const fd of fds) closeSync(fd);
      }
      let timedOut = false;
      const t = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-p.pid!, "SIGKILL");
        } catch {
          /* gone */
        }
      }, timeoutMs);
      const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((res, rej) => {
        p.on("error", rej);
        p.on("exit", (c, s) => res([c, s]));
      }).finally(() => clearTimeout(t));
      const { stdout, stderr } = await finish();
      if (timedOut) throw new ExecTimeoutError(`command did not finish within ${timeoutMs} ms (killed)`, stdout, stderr);
      return { code: code ?? 128 + (sig === "SIGKILL" ? 9 : 15), stdout, stderr };
    },
    async close() {
      if (!owner) return; // connected: the namespace belongs to whoever started it
      if (closed) return;
      closed = true;
      await sh("ip", ["netns", "del", info.netns]);
      await rm(info.shareDir, { recursive: true, force: true });
    },
  };
}

async function startHostTarget(): Promise<KernelTarget> {
  const netns = `lvsfleet-kt-${process.pid}-${Date.now().toString(36)}`;
  const r = await sh("ip", ["netns", "add", netns]);
  if (r.code !== 0) throw new KernelTargetError(`ip netns add ${netns} failed: ${r.stderr.trim()}`);
  await sh("ip", ["-n", netns, "link", "set", "lo", "up"]);
  let pathPrefix = "";
  if (!(await which("ipvsadm")) || !(await which("nft"))) {
    // Same Debian binaries as the VM uses, unpacked (not installed).
    pathPrefix = `${(await prepareVmImage()).binDir}:`;
  }
  const shareDir = await mkdtemp(join(tmpdir(), "lvsfleet-kt-"));
  return hostTarget({ kind: "host", netns, shareDir, pathPrefix }, true);
}

// ------------------------------------------------------------------------------------------------ vm

function vmTarget(info: VmInfo, stop?: () => Promise<void>): KernelTarget {
  const channel = new VmChannel(info);
  return {
    kind: "vm",
    info,
    shareDir: info.shareDir,
    exec: (script, opts) => channel.exec(script, opts),
    async close() {
      if (!stop) return; // connected: the VM belongs to whoever started it
      channel.markClosed();
      await stop();
    },
  };
}

async function startVmTarget(vm: BootOptions = {}): Promise<KernelTarget> {
  const image = await prepareVmImage();
  // Under heavy host load a TCG boot was seen to hang before the first console line (once in dozens of
  // boots): give each attempt a bounded time and retry; the retry logs every kernel message to the
  // serial log, so a second hang leaves something to read.
  const attempts = Math.max(1, Number(process.env.LVSFLEET_VM_BOOT_ATTEMPTS ?? 2));
  for (let i = 1; ; i++) {
    try {
      const running = await bootVm(image, i === 1 ? vm : { ...vm, verbose: true });
      return vmTarget(running.info, running.stop);
    } catch (err) {
      if (!(err instanceof VmDiedError) || err.permanent || i >= attempts) throw err;
      process.stderr.write(`[lvsfleet-vm] boot attempt ${i} failed, retrying: ${err.message.split("\n")[0]}\n`);
    }
  }
}

// ------------------------------------------------------------------------------------------------ api

/**
 * Starts a kernel target: the host when its kernel has IPVS, else the VM.
 * `kind` or LVSFLEET_KERNEL_TARGET=host|vm forces one (host without IPVS is allowed then: for debugging).
 */
export async function startKernelTarget(opts: { kind?: "host" | "vm"; vm?: BootOptions } = {}): Promise<KernelTarget> {
  const forced = opts.kind ?? process.env.LVSFLEET_KERNEL_TARGET;
  if (forced && forced !== "host" && forced !== "vm") throw new KernelTargetError(`LVSFLEET_KERNEL_TARGET must be host or vm, not ${forced}`);
  const kind = forced ?? ((await hostHasIpvs()) ? "host" : "vm");
  return kind === "host" ? startHostTarget() : startVmTarget(opts.vm);
}

/** Uses a target started by another process (e.g. the vitest global setup). Its close() does nothing. */
export async function connectKernelTarget(info: KernelTargetInfo): Promise<KernelTarget> {
  if (info.kind === "host") return hostTarget(info, false);
  const t = vmTarget(info);
  await new VmChannel(info).checkAlive();
  return t;
}

// --------------------------------------------------------------------------------------------- bundle

export interface BundleOptions {
  /** Packages left out of the bundle and loaded from the repo's node_modules at run time (native addons). */
  external?: string[];
}

/**
 * Compiles a TypeScript entry (and everything it imports) with esbuild into one ESM file under
 * .lvsfleet/vm/bundles/, named by content hash, and returns its absolute path. Run it in the target
 * with `node <path>`: JavaScript is 12–15x slower under TCG, so neither tsx nor vitest run in the
 * guest. The path is the same in the guest (host root shared). External packages resolve from the
 * repository's node_modules because the bundle lives inside the repository.
 */
export async function bundleForGuest(entryTsPath: string, opts: BundleOptions = {}): Promise<string> {
  const { build } = await import("esbuild");
  const entry = resolve(REPO_ROOT, entryTsPath);
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    sourcemap: "inline",
    external: ["netlink", ...(opts.external ?? [])],
    // CommonJS dependencies call require() for node builtins; give the ESM bundle a real one.
    banner: { js: 'import { createRequire as __lvsfleetCreateRequire } from "node:module"; const require = __lvsfleetCreateRequire(import.meta.url);' },
    logLevel: "silent",
  });
  const code = result.outputFiles[0].contents;
  const hash = createHash("sha256").update(code).digest("hex").slice(0, 12);
  // Always inside the repository (not LVSFLEET_VM_DIR): externals resolve from its node_modules.
  const dir = join(REPO_ROOT, ".lvsfleet", "vm", "bundles");
  await mkdir(dir, { recursive: true });
  // Content-addressed: the guest mounts the host root with cache=loose, so a file is never rewritten.
  const out = join(dir, `${basename(entry).replace(/\.[cm]?tsx?$/, "")}-${hash}.mjs`);
  if (!existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    await writeFile(tmp, code);
    await rename(tmp, out);
  }
  return out;
}
