// Sysctls through /proc/sys, written and read back.
//
// Keys are path components, not dotted strings: an interface "eth0.100" lives in
// /proc/sys/net/ipv4/conf/eth0.100/ (the directory keeps the dot), while sysctl(8) spells the key
// "net.ipv4.conf.eth0/100.arp_ignore" (a dot inside a component is written '/', because '.' is the
// separator). sysctlKeyToString / parseSysctlKey convert to and from that dotted form.
//
// /proc/sys/net is per network namespace, resolved at open() by the opening task's namespace: the
// adapter therefore acts on the namespace of the process it runs in (tests run it in a worker
// started with `ip netns exec`, see test/harness/netns.ts).
//
// Semantics worth knowing (Documentation/networking/ip-sysctl.rst):
//  - arp_ignore / rp_filter: the kernel uses max(conf/all, conf/<if>); arp_announce likewise.
//    DR real servers set arp_ignore=1, arp_announce=2 on "all" and on the interface facing clients.
//  - net.ipv4.vs.* exist only after ip_vs is loaded (and was initialised in this namespace):
//    reading them otherwise is ENOENT → SysctlNotFoundError.
//  - Most of these are proc_dointvec without range checks (arp_ignore accepts 9), hence the
//    range-checked builders below.

import { readFile, writeFile } from "node:fs/promises";
import { SysctlError, SysctlNotFoundError } from "./errors.js";
import type { SysctlKey, SysctlManager } from "./types.js";

export const PROC_SYS = "/proc/sys";

/** dev_valid_name() in net/core/dev.c: 1..15 bytes, not "." / "..", no '/', ':' or whitespace. */
export function isValidIfname(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name) < 16 &&
    name !== "." &&
    name !== ".." &&
    !/[/:\s]/.test(name)
  );
}

export function sysctlKeyToString(key: SysctlKey): string {
  return key.map((c) => c.replaceAll(".", "/")).join(".");
}

/** "net.ipv4.conf.eth0/100.arp_ignore" → ["net","ipv4","conf","eth0.100","arp_ignore"] (sysctl(8) rules). */
export function parseSysctlKey(dotted: string): SysctlKey {
  return dotted.split(".").map((c) => c.replaceAll("/", "."));
}

function validateKey(key: SysctlKey): void {
  if (key.length === 0) throw new SysctlError("bad-key", "", "empty sysctl key");
  for (const c of key) {
    if (c === "" || c === "." || c === ".." || c.includes("/") || c.includes("\0")) {
      throw new SysctlError("bad-key", sysctlKeyToString(key), `invalid sysctl key component ${JSON.stringify(c)}`);
    }
  }
}

// --- key builders -----------------------------------------------------------------------------

export type Ipv4ConfName = "arp_ignore" | "arp_announce" | "rp_filter" | "forwarding" | "accept_local" | "send_redirects";

/** net.ipv4.conf.<if|all|default>.<name> */
export function ipv4ConfKey(ifname: string, name: Ipv4ConfName): SysctlKey {
  if (ifname !== "all" && ifname !== "default" && !isValidIfname(ifname)) {
    throw new SysctlError("bad-key", `net.ipv4.conf.${ifname}.${name}`, `invalid interface name ${JSON.stringify(ifname)}`);
  }
  return ["net", "ipv4", "conf", ifname, name];
}

/** net.ipv6.conf.<if|all|default>.forwarding */
export function ipv6ForwardingKey(ifname: string): SysctlKey {
  if (ifname !== "all" && ifname !== "default" && !isValidIfname(ifname)) {
    throw new SysctlError("bad-key", `net.ipv6.conf.${ifname}.forwarding`, `invalid interface name ${JSON.stringify(ifname)}`);
  }
  return ["net", "ipv6", "conf", ifname, "forwarding"];
}

export const IPV4_FORWARD_KEY: SysctlKey = ["net", "ipv4", "ip_forward"];

/** net.ipv4.vs.<name> (conntrack, expire_nodest_conn, sync_threshold, ...). */
export function ipvsKey(name: string): SysctlKey {
  if (!/^[a-z0-9_]+$/.test(name)) throw new SysctlError("bad-key", `net.ipv4.vs.${name}`, `invalid ip_vs sysctl name ${JSON.stringify(name)}`);
  return ["net", "ipv4", "vs", name];
}

/** Allowed values of the ARP / reverse-path sysctls (ip-sysctl.rst); the kernel does not check them. */
export const SYSCTL_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  arp_ignore: [0, 8],
  arp_announce: [0, 2],
  rp_filter: [0, 2],
  forwarding: [0, 1],
  ip_forward: [0, 1],
};

// --- the adapter ------------------------------------------------------------------------------

export interface ProcSysctlOptions {
  /** Root of the sysctl tree; "/proc/sys" unless a test points it elsewhere. */
  root?: string;
}

export class ProcSysctlManager implements SysctlManager {
  private readonly root: string;

  constructor(opts: ProcSysctlOptions = {}) {
    this.root = opts.root ?? PROC_SYS;
  }

  private path(key: SysctlKey): string {
    validateKey(key);
    return `${this.root}/${key.join("/")}`;
  }

  async read(key: SysctlKey): Promise<string> {
    const p = this.path(key);
    try {
      return (await readFile(p, "utf8")).trim();
    } catch (e) {
      throw toSysctlError(e, key, "read");
    }
  }

  async write(key: SysctlKey, value: string | number): Promise<void> {
    const p = this.path(key);
    const text = String(value);
    const last = key[key.length - 1];
    const range = SYSCTL_RANGES[last];
    if (range && key[0] === "net") {
      const n = Number(text);
      if (!Number.isInteger(n) || n < range[0] || n > range[1]) {
        throw new SysctlError("invalid-value", sysctlKeyToString(key), `${sysctlKeyToString(key)} must be an integer in ${range[0]}..${range[1]}, got ${JSON.stringify(text)}`);
      }
    }
    try {
      // One write(2) of the whole value: proc handlers parse a single buffer.
      await writeFile(p, text + "\n", { encoding: "utf8", flag: "w" });
    } catch (e) {
      throw toSysctlError(e, key, "write", text);
    }
    const back = await this.read(key);
    if (normalizeValue(back) !== normalizeValue(text)) {
      throw new SysctlError(
        "readback-mismatch",
        sysctlKeyToString(key),
        `wrote ${JSON.stringify(text)} to ${sysctlKeyToString(key)} but read back ${JSON.stringify(back)}`,
      );
    }
  }
}

/** Multi-value sysctls (sync_threshold "3\t50") read back tab-separated. */
function normalizeValue(v: string): string {
  return v.trim().split(/\s+/).join(" ");
}

function toSysctlError(e: unknown, key: SysctlKey, op: "read" | "write", value?: string): SysctlError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const k = sysctlKeyToString(key);
  switch (code) {
    case "ENOENT":
      return new SysctlNotFoundError(
        k,
        key[2] === "vs" ? "ip_vs is not loaded in this network namespace" : key[2] === "conf" ? `no interface ${key[3]}` : "not provided by this kernel",
      );
    case "EINVAL":
      return new SysctlError("invalid-value", k, `kernel rejected ${JSON.stringify(value)} for ${k}`, code);
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new SysctlError("permission", k, `${op} ${k}: ${code} (not root, read-only, or not writable in a non-initial network namespace)`, code);
    default:
      return new SysctlError("io", k, `${op} ${k}: ${(e as Error)?.message ?? String(e)}`, code);
  }
}
