// Small, pure IP address helpers for the compiler: parse to bytes, compare, test CIDR containment.
//
// Written by hand rather than through node:net (BlockList / isIP) so that compile/ imports nothing
// that does I/O and the behaviour is the same everywhere. Input addresses are already validated and
// canonical (the domain layer normalises them); parse errors therefore only mean a programming error
// upstream, and the helpers return undefined instead of throwing so the compiler can skip such an
// entry deterministically.

export type Family = 4 | 6;

export interface ParsedAddress {
  family: Family;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  bytes: Uint8Array;
}

export interface ParsedPrefix extends ParsedAddress {
  prefixLength: number;
}

function parseIpv4(s: string): Uint8Array | undefined {
  // Hand-rolled (no split/regex): this runs for every address the compiler sorts.
  const out = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // virtual trailing "."
    if (c === 46) {
      if (digits === 0 || part > 3) return undefined;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits > 3) return undefined;
      value = value * 10 + (c - 48);
      if (value > 255) return undefined;
    } else {
      return undefined;
    }
  }
  return part === 4 ? out : undefined;
}

function parseIpv6(s: string): Uint8Array | undefined {
  if (s.length === 0) return undefined;
  // An embedded IPv4 tail ("::ffff:192.0.2.1") counts as the last two groups.
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (lastColon >= 0 && s.indexOf(".", lastColon) > lastColon) {
    tail = parseIpv4(s.slice(lastColon + 1));
    if (!tail) return undefined;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = s.indexOf("::");
  if (dbl !== s.lastIndexOf("::")) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const groups = part.split(":");
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl));
    const rest = parseGroups(s.slice(dbl + 2));
    if (!head || !rest || head.length + rest.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    const all = parseGroups(s);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i] >> 8;
    out[2 * i + 1] = groups[i] & 0xff;
  }
  if (tail) out.set(tail, 12);
  return out;
}

/** Parses a bare IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1"). */
export function parseAddress(s: string): ParsedAddress | undefined {
  if (s.includes(":")) {
    const bytes = parseIpv6(s);
    return bytes ? { family: 6, bytes } : undefined;
  }
  const bytes = parseIpv4(s);
  return bytes ? { family: 4, bytes } : undefined;
}

/**
 * Parses "addr/len" or a bare address (a host prefix: /32 or /128). Used for interface addresses
 * ("192.0.2.10/24") and FirewallMark destinations ("198.51.100.7" or "198.51.100.0/24").
 */
export function parsePrefix(s: string): ParsedPrefix | undefined {
  const slash = s.indexOf("/");
  const addr = parseAddress(slash < 0 ? s : s.slice(0, slash));
  if (!addr) return undefined;
  const max = addr.family === 4 ? 32 : 128;
  if (slash < 0) return { ...addr, prefixLength: max };
  const lenText = s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(lenText)) return undefined;
  const prefixLength = Number(lenText);
  if (prefixLength > max) return undefined;
  return { ...addr, prefixLength };
}

export function hostPrefixLength(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** True when `addr` lies inside `prefix` (same family, first prefixLength bits equal). */
export function prefixContains(prefix: ParsedPrefix, addr: ParsedAddress): boolean {
  if (prefix.family !== addr.family) return false;
  let bits = prefix.prefixLength;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((prefix.bytes[i] & mask) !== (addr.bytes[i] & mask)) return false;
  }
  return true;
}

/** Total order: IPv4 before IPv6, then numerically. Unparsable strings sort last, by text. */
export function compareAddressStrings(a: string, b: string): number {
  const pa = parseAddress(a);
  const pb = parseAddress(b);
  if (!pa || !pb) {
    if (pa) return -1;
    if (pb) return 1;
    return compareStrings(a, b);
  }
  if (pa.family !== pb.family) return pa.family - pb.family;
  for (let i = 0; i < pa.bytes.length; i++) {
    if (pa.bytes[i] !== pb.bytes[i]) return pa.bytes[i] - pb.bytes[i];
  }
  return 0;
}

/** Locale-independent string order (code units), so sorting never depends on the environment. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The address part of "addr/len" (or the whole string when there is no prefix). */
export function stripPrefix(s: string): string {
  const slash = s.indexOf("/");
  return slash < 0 ? s : s.slice(0, slash);
}

/**
 * A string whose code-unit order is compareAddressStrings' order ("4:" + 8 hex digits, "6:" + 32,
 * unparsable "9:" + text): parse once, then sort by plain string comparison.
 */
export function addressSortKey(s: string): string {
  const p = parseAddress(s);
  if (!p) return `9:${s}`;
  let hex = "";
  for (const b of p.bytes) hex += b.toString(16).padStart(2, "0");
  return `${p.family}:${hex}`;
}

/** Sorts by a string key computed once per element (stable; code-unit order). */
export function sortByKey<T>(xs: Iterable<T>, key: (x: T) => string): T[] {
  return [...xs]
    .map((x) => [key(x), x] as const)
    .sort((a, b) => compareStrings(a[0], b[0]))
    .map(([, x]) => x);
}
