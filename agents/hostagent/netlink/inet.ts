// IPv4 / IPv6 address text <-> bytes, pure. Formatting follows RFC 5952 (what glibc's inet_ntop and
// therefore `ipvsadm -Ln` print for ordinary addresses): lower-case hex, longest run (>= 2) of zero
// groups compressed to "::", first run on a tie. No embedded-IPv4 form (not used for IPVS addresses).
import { isIPv4, isIPv6 } from "node:net";
import { NetlinkDecodeError, NetlinkEncodeError } from "./errors.js";
import { formatIpv6 } from "../../../lib/net/ipv6.js";

export type InetFamily = "ipv4" | "ipv6";

export function familyOf(address: string): InetFamily {
  if (isIPv4(address)) return "ipv4";
  if (isIPv6(address)) return "ipv6";
  throw new NetlinkEncodeError(`not an IP address: ${JSON.stringify(address)}`);
}

/** Parse a dotted quad into buf[off..off+4) without allocating; false if `a` is not one. */
function writeIpv4(a: string, buf: Uint8Array, off: number): boolean {
  let part = 0;
  let digits = 0;
  let n = 0;
  for (let i = 0; i <= a.length; i++) {
    const c = i < a.length ? a.charCodeAt(i) : 46; /* '.' */
    if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return false; // no leading zeros ("01")
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return false;
    } else if (c === 46) {
      if (digits === 0 || n > 3) return false;
      buf[off + n++] = part;
      part = 0;
      digits = 0;
    } else return false;
  }
  return n === 4;
}

/** Write an address into buf at off (4 or 16 bytes). Throws NetlinkEncodeError on a bad address. */
export function writeAddress(a: string, family: InetFamily, buf: Uint8Array, off: number): void {
  if (family === "ipv4") {
    if (!writeIpv4(a, buf, off)) throw new NetlinkEncodeError(`not an IPv4 address: ${JSON.stringify(a)}`);
  } else buf.set(ipv6ToBytes(a), off);
}

export function ipv4ToBytes(a: string): Buffer {
  if (!isIPv4(a)) throw new NetlinkEncodeError(`not an IPv4 address: ${JSON.stringify(a)}`);
  return Buffer.from(a.split(".").map((x) => Number(x)));
}

export function ipv6ToBytes(a: string): Buffer {
  if (!isIPv6(a) || a.includes("%")) throw new NetlinkEncodeError(`not an IPv6 address: ${JSON.stringify(a)}`);
  let head = a;
  let tail4: number[] = [];
  const lastColon = a.lastIndexOf(":");
  if (a.slice(lastColon + 1).includes(".")) {
    tail4 = [...ipv4ToBytes(a.slice(lastColon + 1))];
    head = a.slice(0, lastColon + 1) + "0:0";
  }
  const [l, r] = head.split("::") as [string, string | undefined];
  const left = l ? l.split(":") : [];
  const right = r === undefined ? [] : r ? r.split(":") : [];
  const groups = r === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill("0"), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (tail4.length) out.set(tail4, 12);
  return out;
}

export function addressToBytes(a: string, family: InetFamily): Buffer {
  return family === "ipv4" ? ipv4ToBytes(a) : ipv6ToBytes(a);
}

export function ipv4FromBytes(b: Uint8Array): string {
  if (b.length < 4) throw new NetlinkDecodeError(`IPv4 address needs 4 bytes, got ${b.length}`);
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

export function ipv6FromBytes(b: Uint8Array): string {
  if (b.length < 16) throw new NetlinkDecodeError(`IPv6 address needs 16 bytes, got ${b.length}`);
  return formatIpv6(b);
}

export function addressFromBytes(b: Uint8Array, family: InetFamily): string {
  return family === "ipv4" ? ipv4FromBytes(b) : ipv6FromBytes(b);
}

/** Canonical text form (what addressFromBytes(addressToBytes(a)) returns). */
export function canonicalAddress(a: string): string {
  const f = familyOf(a);
  return addressFromBytes(addressToBytes(a, f), f);
}
