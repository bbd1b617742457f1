// Identity and equality of kernel objects, pure. Addresses are compared in one canonical text form
// (RFC 5952 for IPv6, as the IPVS codec and iproute2 print them), so "2001:DB8:0::1" in a desired
// state and "2001:db8::1" read from the kernel are the same object.
import type { DestinationKey, DestinationSpec, ServiceKey, ServiceSpec, Timeouts, Vip } from "./types.js";

/** IP_VS_SVC_F_HASHED: the kernel's bookkeeping bit, reported in dumps, never ours to set. */
export const SVC_F_HASHED = 0x0002;

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Canonical text of an IPv4/IPv6 address; anything unparsable is returned unchanged. */
export function canonicalIp(a: string): string {
  if (V4.test(a)) return a;
  if (!a.includes(":")) {
    const parts = a.split(".");
    if (parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return parts.map(Number).join(".");
    return a;
  }
  const groups = ipv6Groups(a);
  if (!groups) return a;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

function ipv6Groups(a: string): number[] | undefined {
  if (a.includes("%")) return undefined;
  let s = a.toLowerCase();
  const last = s.lastIndexOf(":");
  if (s.slice(last + 1).includes(".")) {
    // Embedded IPv4 ("::ffff:192.0.2.1"): rewrite as two hex groups.
    const v4 = s.slice(last + 1).split(".");
    if (v4.length !== 4 || v4.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return undefined;
    const n = v4.map(Number);
    s = `${s.slice(0, last + 1)}${((n[0]! << 8) | n[1]!).toString(16)}:${((n[2]! << 8) | n[3]!).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    for (const g of h.split(":")) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  if (!left || !right) return undefined;
  if (halves.length === 2) {
    if (left.length + right.length > 7) return undefined;
    return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  }
  return left.length === 8 ? left : undefined;
}

function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** "tcp 192.0.2.1:80", "udp [2001:db8::1]:53", "fwmark ipv4 7". Unique per IPVS service. */
export function computeServiceKey(k: ServiceKey): string {
  return k.fwmark !== undefined && k.fwmark !== 0 ? `fwmark ${k.family} ${k.fwmark}` : `${k.protocol ?? "?"} ${hostPort(k.address ?? "?", k.port ?? 0)}`;
}

// Desired services are the same objects from one resync to the next, so their keys are computed
// once (key fields of a spec are never mutated: a different key is a different service).
const keyCache = new WeakMap<ServiceKey, string>();

/** computeServiceKey, memoised per object. */
export function serviceKey(k: ServiceKey): string {
  let key = keyCache.get(k);
  if (key === undefined) keyCache.set(k, (key = computeServiceKey(k)));
  return key;
}

/** Unique per destination within a service. */
export function destinationKey(d: DestinationKey): string {
  return hostPort(d.address, d.port);
}

export function addressKey(v: Pick<Vip, "ifname" | "address">): string {
  return `${v.ifname} ${v.address}`;
}

export const serviceObject = (key: string): string => `ipvs-service ${key}`;
export const destinationObject = (svcKey: string, dKey: string): string => `ipvs-destination ${svcKey} -> ${dKey}`;
export const addressObject = (v: Vip): string => `address ${v.ifname} ${v.address}/${v.prefixLen}`;
export const sysctlObject = (key: string): string => `sysctl ${key}`;
export const linkObject = (name: string): string => `link ${name}`;
export const fouKey = (p: { family: string; port: number }): string => `${p.family} ${p.port}`;
export const fouObject = (p: { family: string; port: number }): string => `fou ${p.family} port ${p.port}`;
export const FWMARK_OBJECT = "nftables table lvsfleet";
export const TIMEOUTS_OBJECT = "ipvs-timeouts";

function formatNetmask(family: string, n: number): string {
  if (family === "ipv6") return `/${n}`;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join(".");
}

/** Differences between two versions of a service, as "field found (want x)" items; [] = equal. */
export function serviceDiff(found: ServiceSpec, want: ServiceSpec): string[] {
  const out: string[] = [];
  if (found.scheduler !== want.scheduler) out.push(`scheduler ${found.scheduler} (want ${want.scheduler})`);
  const ff = found.flags & ~SVC_F_HASHED;
  const wf = want.flags & ~SVC_F_HASHED;
  if (ff !== wf) out.push(`flags 0x${ff.toString(16)} (want 0x${wf.toString(16)})`);
  if (found.timeout !== want.timeout) out.push(`persistence timeout ${found.timeout} (want ${want.timeout})`);
  if (found.netmask >>> 0 !== want.netmask >>> 0) out.push(`netmask ${formatNetmask(want.family, found.netmask)} (want ${formatNetmask(want.family, want.netmask)})`);
  if ((found.peName ?? "") !== (want.peName ?? "")) out.push(`persistence engine ${found.peName || "none"} (want ${want.peName || "none"})`);
  return out;
}

/** serviceDiff(found, want).length === 0, without building strings (the no-change hot path). */
export function serviceEqual(found: ServiceSpec, want: ServiceSpec): boolean {
  return (
    found.scheduler === want.scheduler &&
    (found.flags & ~SVC_F_HASHED) === (want.flags & ~SVC_F_HASHED) &&
    found.timeout === want.timeout &&
    found.netmask >>> 0 === want.netmask >>> 0 &&
    (found.peName ?? "") === (want.peName ?? "")
  );
}

/** destinationDiff(found, want).length === 0, without building strings. */
export function destinationEqual(found: DestinationSpec, want: DestinationSpec): boolean {
  return (
    (found.forward === want.forward || (found.forward === "local" && want.forward !== "local")) &&
    found.weight === want.weight &&
    found.upperThreshold === want.upperThreshold &&
    found.lowerThreshold === want.lowerThreshold &&
    (want.forward !== "tunnel" ||
      ((found.tunnelType ?? "ipip") === (want.tunnelType ?? "ipip") && (found.tunnelPort ?? 0) === (want.tunnelPort ?? 0) && (found.tunnelFlags ?? 0) === (want.tunnelFlags ?? 0)))
  );
}

function tunnelOf(d: DestinationSpec): string {
  return `${d.tunnelType ?? "ipip"}/${d.tunnelPort ?? 0}/${d.tunnelFlags ?? 0}`;
}

/**
 * Differences between two versions of a destination; [] = equal. The kernel reports LOCALNODE for a
 * destination that is a local address (both roles on one host): that is the kernel's rewrite of what
 * was asked, not a difference (otherwise every resync would "repair" it).
 */
export function destinationDiff(found: DestinationSpec, want: DestinationSpec): string[] {
  const out: string[] = [];
  if (found.forward !== want.forward && !(found.forward === "local" && want.forward !== "local")) out.push(`forward ${found.forward} (want ${want.forward})`);
  if (found.weight !== want.weight) out.push(`weight ${found.weight} (want ${want.weight})`);
  if (found.upperThreshold !== want.upperThreshold) out.push(`upper threshold ${found.upperThreshold} (want ${want.upperThreshold})`);
  if (found.lowerThreshold !== want.lowerThreshold) out.push(`lower threshold ${found.lowerThreshold} (want ${want.lowerThreshold})`);
  // Tunnel options mean something only for TUN; the kernel reports ipip/0/0 for every other one.
  if (want.forward === "tunnel" && tunnelOf(found) !== tunnelOf(want)) out.push(`tunnel ${tunnelOf(found)} (want ${tunnelOf(want)})`);
  return out;
}

export function timeoutsDiff(found: Timeouts | undefined, want: Timeouts): string[] {
  const out: string[] = [];
  for (const k of ["tcp", "tcpFin", "udp"] as const) {
    if (want[k] !== 0 && found?.[k] !== want[k]) out.push(`${k} ${found?.[k] ?? "unknown"} (want ${want[k]})`);
  }
  return out;
}

/** sysctl values compare like the adapter reads them back (multi-value sysctls are tab-separated). */
export function sameSysctlValue(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.trim().split(/\s+/).join(" ") === b.trim().split(/\s+/).join(" ");
}
