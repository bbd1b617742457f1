// VM image: everything the kernel-test VM boots from, prepared on the host from Debian packages.
//
// Packages are fetched with `apt-get download` and unpacked with `dpkg -x` — never installed — into
// `.lvsfleet/vm/images/<key>/`, where <key> hashes the exact package versions plus IMAGE_FORMAT, so a
// second run (or a second process) reuses the directory. The guest reaches this directory through the
// read-only 9p share of the host root, so nothing but the kernel and a ~1.5 MB initramfs is copied.
//
// Layout of an image directory:
//   root/          dpkg -x of every package (kernel modules + modules.dep, busybox, ipvsadm, nft, libs)
//   bin/           wrappers (ipvsadm, ipvsadm-save, ipvsadm-restore, nft) with LD_LIBRARY_PATH set;
//                  first on PATH inside the guest
//   vmlinux        uncompressed ELF kernel (qemu boots it directly through PVH, ~3 s faster)
//   initramfs.cpio busybox + the modules needed to reach the 9p shares; /init mounts the channel share
//                  and hands over to the per-run stage2 script written there by the host (guest.ts)
//   manifest.json  versions, kernel release, paths
// See ../README.md and /work/shared/kernel-vm-recipe.md for the measured facts behind each choice.
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { writeNewc, type CpioEntry } from "./cpio.js";
import { INIT_SCRIPT } from "./guest.js";

const pexecFile = promisify(execFile);

/** Bump when the layout or the content of the initramfs changes: it is part of the cache key. */
export const IMAGE_FORMAT = 5;

/** The repository root (this file is test/harness/vm/image.ts). */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");

/** Cache root for everything VM related (gitignored through `.lvsfleet/`). */
export function vmCacheDir(): string {
  const dir = resolve(process.env.LVSFLEET_VM_DIR ?? join(REPO_ROOT, ".lvsfleet", "vm"));
  // The guest sees the host's files at the same paths, except where it mounts its own filesystems.
  if (/^\/(run|dev|proc|sys)(\/|$)/.test(dir)) throw new VmSetupError(`LVSFLEET_VM_DIR=${dir}: the guest mounts its own /run /dev /proc /sys`);
  return dir;
}

/** Guest packages besides the kernel. Library lists from the recipe (Debian bookworm). */
const GUEST_PACKAGES = [
  "busybox-static",
  "ipvsadm", "libnl-3-200", "libnl-genl-3-200", "libpopt0",
  "nftables", "libnftables1", "libnftnl11", "libmnl0", "libjansson4", "libedit2", "libxtables12",
  "libgmp10", "libbsd0", "libmd0", "libtinfo6",
];

/**
 * Driver families a VM without such hardware never loads. Dropped from the unpacked tree (~300 of 390 MB)
 * unless something kept depends on them; everything under net/, fs/, lib/, crypto/, drivers/net/ (veth,
 * tun, dummy, vxlan, ...) etc. stays.
 */
const DROP_MODULE_DIRS = [
  "sound", "drivers/gpu", "drivers/media", "drivers/scsi", "drivers/infiniband", "drivers/usb", "drivers/iio",
  "drivers/staging", "drivers/hwmon", "drivers/hid", "drivers/platform", "drivers/input", "drivers/ata",
  "drivers/comedi", "drivers/mtd", "drivers/video", "drivers/target", "drivers/mmc", "drivers/isdn",
  "drivers/bluetooth", "drivers/thunderbolt", "drivers/nvme", "drivers/watchdog", "drivers/i2c",
  "drivers/net/wireless", "drivers/net/ethernet", "drivers/net/usb", "drivers/net/can", "drivers/net/wwan",
  "drivers/net/ieee802154",
].map((d) => `kernel/${d}/`);

/** Must load in the guest: checked after trimming, so a bad drop list fails the build, not a test. */
const REQUIRED_MODULES = [
  "ip_vs", ...["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "ftp", "pe_sip"].map((m) => `ip_vs_${m}`),
  "nf_tables", "nft_ct", "nft_nat", "nft_masq", "nft_chain_nat", "nft_fib_inet", "nft_reject_inet", "xt_ipvs",
  "veth", "bridge", "ipip", "ip_gre", "fou", "tun", "dummy", "macvlan", "vxlan", "8021q", "sch_netem",
  "9p", "9pnet_virtio", "overlay", "virtio_pci", "virtio_console",
];

/** Modules the initramfs loads itself (with their dependencies) to mount the 9p shares and the overlay. */
const INITRAMFS_MODULES = ["virtio_pci", "virtio_mmio", "9pnet_virtio", "9p", "overlay"];

export interface VmImage {
  dir: string;
  key: string;
  kernelRelease: string; // e.g. 6.1.0-56-amd64
  packages: Record<string, string>; // name -> version
  vmlinux: string;
  initramfs: string;
  busybox: string; // absolute host path; the same path works inside the guest
  binDir: string; // wrappers for ipvsadm / nft
  modulesDir: string; // root/lib/modules/<release>
}

function log(msg: string): void {
  if (process.env.LVSFLEET_VM_QUIET !== "1") process.stderr.write(`[lvsfleet-vm] ${msg}\n`);
}

async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  try {
    const { stdout } = await pexecFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new VmSetupError(`${cmd} ${args.join(" ")} failed: ${(e.stderr ?? "").trim() || e.message}`);
  }
}

/** Setting up the VM failed (a tool or package could not be installed, fetched or unpacked). */
export class VmSetupError extends Error {
  override name = "VmSetupError";
}

async function which(cmd: string): Promise<string | undefined> {
  for (const d of (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = join(d, cmd);
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

let aptUpdated = false;
async function aptUpdate(): Promise<void> {
  if (aptUpdated) return;
  log("apt-get update");
  await run("apt-get", ["update", "-qq"]);
  aptUpdated = true;
}

/** `apt-cache show` of the candidate versions, one call (each apt-cache run costs ~1 s): name -> fields. */
async function aptShow(pkgs: string[]): Promise<Map<string, Record<string, string>>> {
  const once = async () => {
    const out = await run("apt-cache", ["show", "--no-all-versions", ...pkgs]);
    const found = new Map<string, Record<string, string>>();
    for (const stanza of out.split(/\n\s*\n/)) {
      const fields: Record<string, string> = {};
      for (const line of stanza.split("\n")) {
        const m = /^([A-Za-z0-9-]+): (.*)$/.exec(line);
        if (m) fields[m[1]] = m[2];
      }
      if (fields.Package && fields.Version && !found.has(fields.Package)) found.set(fields.Package, fields);
    }
    const missing = pkgs.filter((p) => !found.has(p));
    if (missing.length) throw new VmSetupError(`apt-cache show: no candidate for ${missing.join(", ")}`);
    return found;
  };
  try {
    return await once();
  } catch {
    await aptUpdate(); // fresh machine: empty package lists
    return await once();
  }
}

/** Installs host tools (qemu-system-x86, xz-utils) with apt-get when missing. */
export async function ensureHostTools(): Promise<{ qemu: string }> {
  const missing: string[] = [];
  if (!(await which("qemu-system-x86_64"))) missing.push("qemu-system-x86");
  if (!(await which("xz"))) missing.push("xz-utils");
  if (!(await which("apt-get")) && missing.length) {
    throw new VmSetupError(`missing ${missing.join(", ")} and no apt-get to install them`);
  }
  if (missing.length) {
    const t0 = Date.now();
    log(`installing ${missing.join(" ")} with apt-get`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const install = () => run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
    try {
      await install();
    } catch {
      await aptUpdate();
      await install();
    }
    log(`installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const qemu = await which("qemu-system-x86_64");
  if (!qemu) throw new VmSetupError("qemu-system-x86_64 still missing after apt-get install qemu-system-x86");
  return { qemu };
}

/**
 * Resolves exact versions: the kernel package is what `linux-image-amd64` depends on (bookworm: 6.1),
 * or LVSFLEET_VM_KERNEL_PKG (e.g. a 6.12 backports image for the `twos` scheduler).
 */
async function resolvePackagesWithApt(): Promise<Record<string, string>> {
  const forced = process.env.LVSFLEET_VM_KERNEL_PKG;
  const shown = await aptShow([forced ?? "linux-image-amd64", ...GUEST_PACKAGES]);
  let kernel: [string, string];
  if (forced) {
    kernel = [forced, shown.get(forced)!.Version];
  } else {
    const dep = shown.get("linux-image-amd64")!.Depends ?? "";
    const m = /(linux-image-[0-9][^\s,]*-amd64) \(= ([^)\s]+)\)/.exec(dep);
    if (!m) throw new VmSetupError(`cannot find the kernel package in linux-image-amd64 Depends: ${dep}`);
    kernel = [m[1], m[2]];
  }
  const pkgs: Record<string, string> = { [kernel[0]]: kernel[1] };
  for (const p of GUEST_PACKAGES) pkgs[p] = shown.get(p)!.Version;
  return pkgs;
}

/**
 * A fingerprint of apt's package lists and sources: while it is unchanged, the versions resolved last time
 * still hold, and the ~1-2 s `apt-cache show` (no pkgcache.bin on these machines) is skipped.
 */
async function aptListsStamp(): Promise<string> {
  const h = createHash("sha256");
  h.update(JSON.stringify({ GUEST_PACKAGES, kernel: process.env.LVSFLEET_VM_KERNEL_PKG ?? "" }));
  for (const dir of ["/var/lib/apt/lists", "/etc/apt", "/etc/apt/sources.list.d", "/etc/apt/preferences.d"]) {
    let names: string[] = [];
    try {
      names = (await readdir(dir)).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        const st = await stat(join(dir, n));
        if (st.isFile()) h.update(`${dir}/${n} ${st.size} ${st.mtimeMs}\n`);
      } catch {
        /* raced with apt */
      }
    }
  }
  return h.digest("hex");
}

async function resolvePackages(): Promise<Record<string, string>> {
  const file = join(vmCacheDir(), "resolved.json");
  const stamp = await aptListsStamp();
  try {
    const prev = JSON.parse(await readFile(file, "utf8")) as { stamp: string; pkgs: Record<string, string> };
    if (prev.stamp === stamp) return prev.pkgs;
  } catch {
    /* first run */
  }
  const pkgs = await resolvePackagesWithApt();
  await mkdir(vmCacheDir(), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ stamp: await aptListsStamp(), pkgs }, null, 2) + "\n");
  await rename(tmp, file);
  return pkgs;
}

function imageKey(pkgs: Record<string, string>): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ IMAGE_FORMAT, pkgs, init: INIT_SCRIPT, mods: INITRAMFS_MODULES }));
  return h.digest("hex").slice(0, 16);
}

/** Finds the xz stream inside a bzImage/vmlinuz and decompresses it to an ELF vmlinux. */
async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  const buf = await readFile(vmlinuz);
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  const off = buf.indexOf(magic);
  if (off < 0) throw new VmSetupError(`${vmlinuz}: no xz stream found`);
  await new Promise<void>((res, rej) => {
    // --single-stream: stop at the end of the first stream and ignore what the bzImage has after it.
    const xz = spawn("xz", ["-dc", "--single-stream"], { stdio: ["pipe", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let err = "";
    xz.stdout.on("data", (c: Buffer) => chunks.push(c));
    xz.stderr.on("data", (c: Buffer) => (err += c));
    xz.on("error", rej);
    xz.on("close", async (code) => {
      const elf = Buffer.concat(chunks);
      if (code !== 0 || elf.readUInt32BE(0) !== 0x7f454c46) {
        rej(new VmSetupError(`xz -dc of ${vmlinuz}@${off} failed (code ${code}): ${err.trim()}`));
        return;
      }
      try {
        await writeFile(out, elf);
        res();
      } catch (e) {
        rej(e);
      }
    });
    // xz --single-stream exits as soon as the first stream ends, before it has read the rest of the
    // bzImage we pipe in: the pipe then fails with EPIPE. That is expected, not an error — the exit code
    // and the ELF magic above decide success (seen on a fresh CI machine: unhandled EPIPE killed vitest).
    xz.stdin.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") rej(e);
    });
    xz.stdin.end(buf.subarray(off));
  });
}

/** Parses modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko") into module name -> [path, deps...]. */
function parseModulesDep(text: string): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const [mod, deps] = line.split(":");
    if (!mod || deps === undefined) continue;
    const name = mod.replace(/^.*\//, "").replace(/\.ko(\.[a-z]+)?$/, "").replace(/-/g, "_");
    byName.set(name, [mod.trim(), ...deps.trim().split(/\s+/).filter(Boolean)]);
  }
  return byName;
}

/** Deletes DROP_MODULE_DIRS modules that nothing kept depends on (modules.dep lists full closures). */
async function trimModules(root: string, release: string): Promise<void> {
  const modRoot = join(root, "lib/modules", release);
  const keep = new Set<string>();
  const all: string[] = [];
  for (const line of (await readFile(join(modRoot, "modules.dep"), "utf8")).split("\n")) {
    const [mod, deps] = line.split(":");
    if (!mod || deps === undefined) continue;
    all.push(mod.trim());
    if (DROP_MODULE_DIRS.some((d) => mod.startsWith(d))) continue;
    keep.add(mod.trim());
    for (const d of deps.trim().split(/\s+/).filter(Boolean)) keep.add(d);
  }
  await Promise.all(all.filter((m) => !keep.has(m)).map((m) => rm(join(modRoot, m))));
  await Promise.all(DROP_MODULE_DIRS.map((d) => run("find", [join(modRoot, d), "-depth", "-type", "d", "-empty", "-delete"]).catch(() => "")));
}

async function checkRequiredModules(root: string, release: string): Promise<void> {
  const deps = parseModulesDep(await readFile(join(root, "lib/modules", release, "modules.dep"), "utf8"));
  const builtin = await readFile(join(root, "lib/modules", release, "modules.builtin"), "utf8");
  const missing = REQUIRED_MODULES.filter((m) => !deps.has(m) && !builtin.includes(`/${m}.ko`));
  if (missing.length) throw new VmSetupError(`kernel ${release}: modules missing after unpacking: ${missing.join(", ")}`);
}

async function buildInitramfs(img: { root: string; release: string; out: string }): Promise<void> {
  const modRoot = join(img.root, "lib/modules", img.release);
  const deps = parseModulesDep(await readFile(join(modRoot, "modules.dep"), "utf8"));
  const builtin = new Set(
    (await readFile(join(modRoot, "modules.builtin"), "utf8"))
      .split("\n")
      .map((l) => l.replace(/^.*\//, "").replace(/\.ko$/, "").replace(/-/g, "_")),
  );
  const files = new Set<string>();
  const depLines: string[] = [];
  for (const m of INITRAMFS_MODULES) {
    const entry = deps.get(m.replace(/-/g, "_"));
    if (!entry) {
      if (builtin.has(m.replace(/-/g, "_"))) continue;
      throw new VmSetupError(`module ${m} not found in ${modRoot}/modules.dep`);
    }
    for (const f of entry) files.add(f);
  }
  // A small modules.dep covering just the files we ship, so busybox modprobe resolves the order.
  const depText = await readFile(join(modRoot, "modules.dep"), "utf8");
  for (const line of depText.split("\n")) {
    const mod = line.split(":")[0];
    if (mod && files.has(mod.trim())) depLines.push(line);
  }

  const entries: CpioEntry[] = [];
  const dir = (path: string) => entries.push({ path, mode: 0o040755 });
  for (const d of ["bin", "sbin", "dev", "proc", "sys", "lib", "lib/modules", `lib/modules/${img.release}`, "chan", "lower", "rw", "newroot", "tmp"]) dir(d);
  entries.push({ path: "dev/console", mode: 0o020600, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ path: "dev/null", mode: 0o020666, rdevMajor: 1, rdevMinor: 3 });
  entries.push({ path: "bin/busybox", mode: 0o100755, data: await readFile(join(img.root, "bin/busybox")) });
  for (const applet of ["sh", "mount", "umount", "mkdir", "cat", "echo", "ln", "modprobe", "insmod", "chroot", "poweroff", "sleep", "ls", "mv", "rm"]) {
    entries.push({ path: `bin/${applet}`, mode: 0o120777, data: Buffer.from("busybox") });
  }
  // The kernel calls /sbin/modprobe (usermode helper) for libcrc32c, ip_vs_<sched>, nft expressions.
  entries.push({ path: "sbin/modprobe", mode: 0o120777, data: Buffer.from("../bin/busybox") });
  entries.push({ path: "init", mode: 0o100755, data: Buffer.from(INIT_SCRIPT) });
  const subdirs = new Set<string>();
  for (const f of files) {
    const parts = f.split("/");
    for (let i = 1; i < parts.length; i++) subdirs.add(parts.slice(0, i).join("/"));
  }
  for (const d of [...subdirs].sort()) dir(`lib/modules/${img.release}/${d}`);
  for (const f of [...files].sort()) {
    entries.push({ path: `lib/modules/${img.release}/${f}`, mode: 0o100644, data: await readFile(join(modRoot, f)) });
  }
  entries.push({ path: `lib/modules/${img.release}/modules.dep`, mode: 0o100644, data: Buffer.from(depLines.join("\n") + "\n") });
  entries.push({ path: "kernel-release", mode: 0o100644, data: Buffer.from(img.release + "\n") });
  await writeFile(img.out, writeNewc(entries));
}

/**
 * Writes the ipvsadm / nft wrappers into `binDir`. `buildRoot` is where the packages are unpacked now,
 * `finalRoot` where they will be once the image directory is renamed into place (what the wrappers use).
 * Checks with ldd that every library resolves from the unpacked tree or the host's libc.
 */
async function writeWrappers(buildRoot: string, finalRoot: string, binDir: string): Promise<void> {
  await mkdir(binDir, { recursive: true });
  const libs = (root: string) => [`${root}/lib/x86_64-linux-gnu`, `${root}/usr/lib/x86_64-linux-gnu`].join(":");
  const find = (rels: string[]) => {
    const rel = rels.find((r) => existsSync(join(buildRoot, r)));
    if (!rel) throw new VmSetupError(`none of ${rels.join(", ")} in the unpacked packages`);
    return rel;
  };
  const ipvsadm = find(["sbin/ipvsadm", "usr/sbin/ipvsadm"]);
  const nft = find(["usr/sbin/nft", "sbin/nft"]);
  for (const rel of [ipvsadm, nft]) {
    const out = await run("ldd", [join(buildRoot, rel)], { env: { ...process.env, LD_LIBRARY_PATH: libs(buildRoot) } });
    if (/not found/.test(out)) throw new VmSetupError(`${rel}: missing libraries:\n${out}`);
  }
  const wrap = (rel: string, extra = "") =>
    `#!/bin/sh\n# lvsfleet VM harness: Debian's ${rel.replace(/^.*\//, "")} unpacked (not installed) in ${finalRoot}\n` +
    `LD_LIBRARY_PATH=${libs(finalRoot)}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} exec ${join(finalRoot, rel)}${extra} "$@"\n`;
  for (const [name, text] of [
    ["ipvsadm", wrap(ipvsadm)],
    ["ipvsadm-save", wrap(ipvsadm, " -S")],
    ["nft", wrap(nft)],
    // ipvsadm-restore clears the table first, like Debian's script.
    ["ipvsadm-restore", `#!/bin/sh\n"$(dirname "$0")/ipvsadm" -C && grep -v '^#' | "$(dirname "$0")/ipvsadm" -R "$@"\n`],
  ] as const) {
    await writeFile(join(binDir, name), text);
    await chmod(join(binDir, name), 0o755);
  }
}

async function readManifest(dir: string): Promise<VmImage | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as VmImage;
  } catch {
    return undefined;
  }
}

/**
 * Returns a ready VM image, building it when the cache has none for the current package versions.
 * Concurrent callers (other processes) build in private temp dirs; the first rename wins.
 */
export async function prepareVmImage(): Promise<VmImage> {
  await ensureHostTools();
  try {
    return await prepareFromLists();
  } catch (err) {
    if (!(err instanceof VmDownloadError) || aptUpdated) throw err;
    log(`${err.message.split("\n")[0]} — running apt-get update and retrying`);
    await aptUpdate(); // package lists older than the mirror: the resolved versions are gone
    return await prepareFromLists();
  }
}

class VmDownloadError extends VmSetupError {}

async function prepareFromLists(): Promise<VmImage> {
  const pkgs = await resolvePackages();
  const key = imageKey(pkgs);
  const imagesDir = join(vmCacheDir(), "images");
  const dir = join(imagesDir, key);
  const cached = await readManifest(dir);
  if (cached) {
    await markUsed(cached);
    return cached;
  }
  if (/\s/.test(dir)) throw new VmSetupError(`cache path must not contain whitespace: ${dir}`);

  const t0 = Date.now();
  log(`building VM image ${key} (${Object.entries(pkgs).slice(0, 1).map(([p, v]) => `${p} ${v}`)}) in ${dir}`);
  const tmp = join(imagesDir, `.tmp-${key}-${process.pid}-${Date.now()}`);
  await mkdir(join(tmp, "debs"), { recursive: true });
  try {
    // apt-get download as root warns that _apt cannot write the folder; harmless.
    await run("apt-get", ["download", "-qq", ...Object.entries(pkgs).map(([p, v]) => `${p}=${v}`)], { cwd: join(tmp, "debs") }).catch((e: Error) => {
      throw new VmDownloadError(e.message);
    });
    const debs = (await readdir(join(tmp, "debs"))).filter((f) => f.endsWith(".deb"));
    if (debs.length !== Object.keys(pkgs).length) throw new VmSetupError(`expected ${Object.keys(pkgs).length} .deb files, got ${debs.length}`);
    const root = join(tmp, "root");
    await mkdir(root);
    await Promise.all(debs.map((d) => run("dpkg", ["-x", join(tmp, "debs", d), root])));
    await rm(join(tmp, "debs"), { recursive: true });

    const release = (await readdir(join(root, "lib/modules")))[0];
    if (!release) throw new VmSetupError("kernel package has no lib/modules/<release>");
    // Debian's .deb ships no modules.dep (postinst runs depmod): busybox depmod makes one.
    await run(join(root, "bin/busybox"), ["depmod", "-b", root, release]);
    await trimModules(root, release);
    await run(join(root, "bin/busybox"), ["depmod", "-b", root, release]);
    await checkRequiredModules(root, release);
    await extractVmlinux(join(root, "boot", `vmlinuz-${release}`), join(tmp, "vmlinux"));
    await buildInitramfs({ root, release, out: join(tmp, "initramfs.cpio") });

    const finalRoot = join(dir, "root");
    await writeWrappers(root, finalRoot, join(tmp, "bin"));
    const image: VmImage = {
      dir,
      key,
      kernelRelease: release,
      packages: pkgs,
      vmlinux: join(dir, "vmlinux"),
      initramfs: join(dir, "initramfs.cpio"),
      busybox: join(finalRoot, "bin/busybox"),
      binDir: join(dir, "bin"),
      modulesDir: join(finalRoot, "lib/modules", release),
    };
    await writeFile(join(tmp, "manifest.json"), JSON.stringify(image, null, 2) + "\n");
    try {
      await rename(tmp, dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      await rm(tmp, { recursive: true, force: true }); // someone else finished first
    }
    log(`VM image ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const done = await readManifest(dir);
  if (!done) throw new VmSetupError(`VM image ${dir} has no manifest after build`);
  await markUsed(done);
  return done;
}

/**
 * Touches the image's `last-used` and removes other images (older package versions, older IMAGE_FORMAT)
 * not used for a day. A VM lives at most LVSFLEET_VM_MAX_SECONDS (2 h), so none of them is in use.
 */
async function markUsed(image: VmImage): Promise<void> {
  await writeFile(join(image.dir, "last-used"), new Date().toISOString() + "\n");
  const imagesDir = join(vmCacheDir(), "images");
  for (const name of await readdir(imagesDir).catch(() => [] as string[])) {
    const other = join(imagesDir, name);
    if (other === image.dir) continue;
    const st = await stat(join(other, "last-used")).catch(() => stat(other).catch(() => undefined));
    if (st && Date.now() - st.mtimeMs > 24 * 3600_000) {
      log(`removing unused VM image ${name}`);
      await rm(other, { recursive: true, force: true });
    }
  }
}

// Exported for tests of the harness itself.
export const _internal = { parseModulesDep, extractVmlinux };
