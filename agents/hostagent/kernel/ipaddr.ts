// IPv4/IPv6 address helpers shared by the nftables and rtnetlink adapters: text ⇄ bytes ⇄ bigint,
// CIDR parsing, interval merging and decomposition into a minimal prefix list (the form `nft`
// prints an interval set back in, which is what drift detection compares against).

import { isIP, SocketAddress } from "node:net";
import type { IpFamily } from "./types.js";

export interface Cidr {
  family: IpFamily;
  /** Network address (host bits cleared), canonical text. */
  address: string;
  prefixLen: number;
}

/** 4, 6, or undefined for anything else — including scoped IPv6 ("fe80::1%eth0"), which net.isIP accepts. */
export function ipFamily(address: string): IpFamily | undefined {
  if (address.includes("%")) return undefined;
  const v = isIP(address);
  return v === 4 ? 4 : v === 6 ? 6 : undefined;
}

export function bitsOf(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** Canonical text (lower case, compressed IPv6) via the same code Node uses for sockets. */
export function canonicalAddress(address: string): string {
  const family = ipFamily(address);
  if (!family) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  return new SocketAddress({ address, family: family === 4 ? "ipv4" : "ipv6" }).address;
}

export function addressToBytes(address: string): Buffer {
  const family = ipFamily(address);
  if (family === 4) return Buffer.from(address.split(".").map((o) => Number(o)));
  if (family === 6) {
    const [head, tail] = address.includes("::") ? address.split("::") : [address, undefined];
    const parseGroups = (s: string): number[] => {
      if (s === "") return [];
      const out: number[] = [];
      for (const g of s.split(":")) {
        if (g.includes(".")) {
          const b = addressToBytes(g);
          out.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
        } else out.push(parseInt(g, 16));
      }
      return out;
    };
    const h = parseGroups(head);
    const t = tail === undefined ? [] : parseGroups(tail);
    const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    const buf = Buffer.alloc(16);
    groups.forEach((g, i) => buf.writeUInt16BE(g, i * 2));
    return buf;
  }
  throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
}

export function bytesToAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
    return canonicalAddress(groups.join(":"));
  }
  throw new TypeError(`address must be 4 or 16 bytes, got ${bytes.length}`);
}

export function addressToBigInt(address: string): bigint {
  let n = 0n;
  for (const b of addressToBytes(address)) n = (n << 8n) | BigInt(b);
  return n;
}

export function bigIntToAddress(n: bigint, family: IpFamily): string {
  const len = family === 4 ? 4 : 16;
  const buf = Buffer.alloc(len);
  for (let i = len - 1; i >= 0; i--) {
    buf[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return bytesToAddress(buf);
}

/** "198.51.100.7" → /32, "2001:db8::/64" → /64. Host bits are cleared. Throws TypeError on junk. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = ipFamily(addr);
  if (!family) throw new TypeError(`not an IP address or CIDR: ${JSON.stringify(text)}`);
  const bits = bitsOf(family);
  let prefixLen = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) throw new TypeError(`bad prefix length in ${JSON.stringify(text)}`);
    prefixLen = Number(p);
  }
  const [lo] = cidrInterval(addressToBigInt(addr), prefixLen, bits);
  return { family, address: bigIntToAddress(lo, family), prefixLen };
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefixLen}`;
}

function cidrInterval(addr: bigint, prefixLen: number, bits: number): [bigint, bigint] {
  const hostBits = BigInt(bits - prefixLen);
  const lo = (addr >> hostBits) << hostBits;
  return [lo, lo + (1n << hostBits) - 1n];
}

export type Interval = [bigint, bigint];

/** Sorts and merges overlapping and adjacent intervals. */
export function mergeIntervals(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Interval[] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else out.push([lo, hi]);
  }
  return out;
}

/** Minimal list of prefixes exactly covering [lo, hi]. */
export function intervalToCidrs(lo: bigint, hi: bigint, family: IpFamily): Cidr[] {
  const bits = bitsOf(family);
  const out: Cidr[] = [];
  let cur = lo;
  while (cur <= hi) {
    // Largest block aligned at cur that does not pass hi.
    let size = 0;
    while (size < bits) {
      const next = size + 1;
      const mask = (1n << BigInt(next)) - 1n;
      if ((cur & mask) !== 0n || cur + mask > hi) break;
      size = next;
    }
    out.push({ family, address: bigIntToAddress(cur, family), prefixLen: bits - size });
    cur += 1n << BigInt(size);
  }
  return out;
}

/**
 * Canonical destination list: merged per family, decomposed into minimal prefixes, IPv4 first,
 * ascending. Two lists cover the same addresses iff their canonical forms are equal.
 */
export function canonicalCidrList(cidrs: Array<Cidr | { family: IpFamily; lo: bigint; hi: bigint }>): Cidr[] {
  const out: Cidr[] = [];
  for (const family of [4, 6] as const) {
    const bits = bitsOf(family);
    const ivs: Interval[] = [];
    for (const c of cidrs) {
      if (c.family !== family) continue;
      ivs.push("lo" in c ? [c.lo, c.hi] : cidrInterval(addressToBigInt(c.address), c.prefixLen, bits));
    }
    for (const [lo, hi] of mergeIntervals(ivs)) out.push(...intervalToCidrs(lo, hi, family));
  }
  return out;
}

/** Host routes print without "/32" or "/128", like nft and ip do. */
export function formatCidrShort(c: Cidr): string {
  return c.prefixLen === bitsOf(c.family) ? c.address : formatCidr(c);
}
