/**
 * IP address and prefix literals, parsed strictly and printed canonically. Pure; no DNS, no node:net
 * (its isIP() accepts zone ids such as "fe80::1%eth0", which a VIP or real server can't have).
 *
 * Decisions (the model stores what the kernel will hold, so every literal must mean one thing):
 *  - IPv4: exactly four decimal octets 0..255. No leading zeros ("010.0.0.1"): inet_aton() reads
 *    them as octal while inet_pton() rejects them, so the same string means different addresses to
 *    different tools. No shorthand forms ("10.1", "0x0a.0.0.1").
 *  - IPv6: RFC 4291 §2.2 text forms, including an embedded dotted IPv4 tail; no zone id ("%eth0":
 *    IPVS services and destinations carry no scope id), no brackets. Printed per RFC 5952
 *    (lower case, no leading zeros, the longest run of two or more zero groups as "::", the first
 *    one on a tie; embedded IPv4 is printed as hex, since mapped/compatible forms are rejected).
 *  - IPv4-mapped (::ffff:0:0/96) and IPv4-compatible (::a.b.c.d, deprecated by RFC 4291 §2.5.5.1)
 *    IPv6 addresses are rejected where an address is used: they would make a v4 endpoint look like
 *    a v6 one and defeat the address-family rules; write the IPv4 form instead.
 */
import { formatIpv6 } from "../../../lib/net/ipv6.js";

export type Family = 4 | 6;

export interface ParsedAddress {
  family: Family;
  /** Canonical text form. */
  canonical: string;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

export interface AddressError {
  /** UPPER_SNAKE reason for a FieldViolation. */
  reason: "INVALID_ADDRESS" | "INVALID_CIDR";
  description: string;
}

const MAX_LITERAL = 64; // the longest IPv6 text form with an IPv4 tail is 45 chars

function parseV4(s: string): Uint8Array | string {
  const parts = s.split(".");
  if (parts.length !== 4) return "an IPv4 address has four dot-separated decimal octets";
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^[0-9]{1,3}$/.test(p)) return "an IPv4 octet is 1-3 decimal digits";
    if (p.length > 1 && p[0] === "0") return "leading zeros are ambiguous (octal to some parsers); write the octet without them";
    const n = Number(p);
    if (n > 255) return "an IPv4 octet is 0..255";
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): Uint8Array | string {
  if (s.includes("%")) return "zone ids (\"%eth0\") are not allowed";
  if (s.startsWith("[") || s.endsWith("]")) return "write the IPv6 address without brackets";
  let tail: Uint8Array | undefined;
  let head = s;
  const lastColon = s.lastIndexOf(":");
  if (lastColon >= 0 && s.slice(lastColon + 1).includes(".")) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (typeof v4 === "string") return `bad embedded IPv4 part: ${v4}`;
    tail = v4;
    // keep "::" intact when the IPv4 part follows it directly ("::1.2.3.4")
    head = s.slice(0, lastColon + 1);
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsWanted = tail ? 6 : 8;
  const dbl = head.indexOf("::");
  if (dbl >= 0 && head.indexOf("::", dbl + 1) >= 0) return "\"::\" may appear only once";
  const parseGroups = (t: string): number[] | string => {
    if (t === "") return [];
    const out: number[] = [];
    for (const g of t.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return "an IPv6 group is 1-4 hex digits";
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const left = parseGroups(head.slice(0, dbl));
    const right = parseGroups(head.slice(dbl + 2));
    if (typeof left === "string") return left;
    if (typeof right === "string") return right;
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return "too many groups for \"::\"";
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    const all = parseGroups(head);
    if (typeof all === "string") return all;
    if (all.length !== groupsWanted) return `an IPv6 address has ${groupsWanted === 8 ? "eight" : "six"} groups${tail ? " before an IPv4 tail" : ""}`;
    groups = all;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

/** RFC 5952 text form of 16 bytes. */
export function formatV6(b: Uint8Array): string {
  return formatIpv6(b);
}

export function formatV4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** Parses an IPv4 or IPv6 literal. Never throws. */
export function parseAddress(input: unknown): ParsedAddress | AddressError {
  if (typeof input !== "string") return { reason: "INVALID_ADDRESS", description: "an address must be a string" };
  if (input === "") return { reason: "INVALID_ADDRESS", description: "an address is required" };
  if (input.length > MAX_LITERAL) return { reason: "INVALID_ADDRESS", description: "too long for an IP address" };
  const shown = JSON.stringify(input);
  if (input.includes(":")) {
    const r = parseV6(input);
    if (typeof r === "string") return { reason: "INVALID_ADDRESS", description: `${shown} is not a valid IPv6 address: ${r}` };
    return { family: 6, canonical: formatV6(r), bytes: r };
  }
  const r = parseV4(input);
  if (typeof r === "string") return { reason: "INVALID_ADDRESS", description: `${shown} is not a valid IPv4 address: ${r}` };
  return { family: 4, canonical: formatV4(r), bytes: r };
}

export function isAddressError(x: ParsedAddress | AddressError | ParsedPrefix | PrefixError): x is AddressError {
  return "reason" in x;
}

/**
 * Why an address can't be a VIP, a real server or a sorry server, or undefined when it can.
 * IPVS destinations must be unicast: ip_vs_ctl.c (ip_vs_add_dest) rejects an IPv4 destination whose
 * inet_addr_type() is not RTN_UNICAST/RTN_LOCAL and an IPv6 one that is not IPV6_ADDR_UNICAST or is
 * link-local (unless local); we apply the same rule to VIPs, plus the mapped/compatible rule above.
 */
export function endpointProblem(a: ParsedAddress): string | undefined {
  const b = a.bytes;
  if (a.family === 4) {
    if (b.every((x) => x === 0)) return "the unspecified address 0.0.0.0 can't be an endpoint";
    if (b[0]! >= 224 && b[0]! <= 239) return "a multicast address can't be an endpoint";
    if (b.every((x) => x === 255)) return "the broadcast address can't be an endpoint";
    return undefined;
  }
  if (b.every((x) => x === 0)) return "the unspecified address :: can't be an endpoint";
  if (b[0] === 0xff) return "a multicast address can't be an endpoint";
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return "a link-local address can't be an endpoint (IPVS rejects link-local destinations)";
  const first10Zero = b.subarray(0, 10).every((x) => x === 0);
  if (first10Zero && b[10] === 0xff && b[11] === 0xff) return "an IPv4-mapped IPv6 address is ambiguous; use the IPv4 form";
  if (first10Zero && b[10] === 0 && b[11] === 0 && !(b[12] === 0 && b[13] === 0 && b[14] === 0 && b[15]! <= 1)) {
    return "an IPv4-compatible IPv6 address is deprecated (RFC 4291 §2.5.5.1); use the IPv4 form";
  }
  return undefined;
}

/** True when the address is IPv4-mapped or IPv4-compatible (for host/interface addresses). */
export function isV4Embedded(a: ParsedAddress): boolean {
  if (a.family !== 6) return false;
  const b = a.bytes;
  const first10Zero = b.subarray(0, 10).every((x) => x === 0);
  if (!first10Zero) return false;
  if (b[10] === 0xff && b[11] === 0xff) return true;
  return b[10] === 0 && b[11] === 0 && !(b[12] === 0 && b[13] === 0 && b[14] === 0 && b[15]! <= 1);
}

export interface ParsedPrefix {
  address: ParsedAddress;
  length: number;
  /** Canonical "addr/len" (address canonical, host bits kept as written). */
  canonical: string;
  /** True when bits beyond `length` are set (e.g. "192.0.2.10/24"). */
  hostBitsSet: boolean;
  /** Canonical network form ("192.0.2.0/24"). */
  network: string;
}

export interface PrefixError {
  reason: "INVALID_CIDR";
  description: string;
}

/**
 * Parses "addr/len". With `allowBare`, a plain address means a /32 or /128. Never throws.
 */
export function parsePrefix(input: unknown, opts: { allowBare: boolean }): ParsedPrefix | PrefixError {
  if (typeof input !== "string" || input === "") return { reason: "INVALID_CIDR", description: "a CIDR prefix (\"192.0.2.0/24\") is required" };
  if (input.length > MAX_LITERAL + 4) return { reason: "INVALID_CIDR", description: "too long for a CIDR prefix" };
  const slash = input.indexOf("/");
  if (slash < 0 && !opts.allowBare) {
    return { reason: "INVALID_CIDR", description: `${JSON.stringify(input)} has no prefix length; write it as address/length ("192.0.2.10/24")` };
  }
  const addrText = slash < 0 ? input : input.slice(0, slash);
  const a = parseAddress(addrText);
  if ("reason" in a) return { reason: "INVALID_CIDR", description: a.description };
  const max = a.family === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const lenText = input.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) {
      return { reason: "INVALID_CIDR", description: `${JSON.stringify(input)}: the prefix length is a decimal number without leading zeros` };
    }
    length = Number(lenText);
    if (length > max) return { reason: "INVALID_CIDR", description: `${JSON.stringify(input)}: an IPv${a.family} prefix length is 0..${max}` };
  }
  const net = new Uint8Array(a.bytes);
  let hostBitsSet = false;
  for (let bit = length; bit < max; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if (net[byte]! & mask) {
      hostBitsSet = true;
      net[byte] = net[byte]! & ~mask;
    }
  }
  const fmt = a.family === 4 ? formatV4 : formatV6;
  return { address: a, length, canonical: `${a.canonical}/${length}`, hostBitsSet, network: `${fmt(net)}/${length}` };
}

/** Canonical text of a valid address, or the input unchanged when it is not one. */
export function canonicalAddress(input: string): string {
  const a = parseAddress(input);
  return "reason" in a ? input : a.canonical;
}
