import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  addressToBigInt,
  addressToBytes,
  bigIntToAddress,
  bytesToAddress,
  canonicalAddress,
  canonicalCidrList,
  formatCidr,
  intervalToCidrs,
  mergeIntervals,
  parseCidr,
} from "./ipaddr.js";

describe("address text ⇄ bytes", () => {
  it("matches Node's canonical form for IPv4 and IPv6 (incl. embedded IPv4)", () => {
    expect(bytesToAddress(addressToBytes("198.51.100.7"))).toBe("198.51.100.7");
    expect(bytesToAddress(addressToBytes("2001:DB8:0:0:0:0:0:10"))).toBe("2001:db8::10");
    expect(addressToBytes("::ffff:192.0.2.1").toString("hex")).toBe("00000000000000000000ffffc0000201");
    expect(canonicalAddress("2001:0db8::0001")).toBe("2001:db8::1");
  });

  it("round-trips any 4- or 16-byte address", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), (b) => {
        expect(addressToBytes(bytesToAddress(b)).equals(Buffer.from(b))).toBe(true);
      }),
    );
  });
});

describe("CIDRs", () => {
  it("clears host bits and rejects junk", () => {
    expect(formatCidr(parseCidr("198.51.100.77/24"))).toBe("198.51.100.0/24");
    expect(formatCidr(parseCidr("2001:db8::1"))).toBe("2001:db8::1/128");
    for (const bad of ["198.51.100.0/33", "2001:db8::/129", "198.51.100.300", "x", "198.51.100.0/", "198.51.100.0/-1"]) {
      expect(() => parseCidr(bad)).toThrow(TypeError);
    }
  });

  it("decomposes an interval into the minimal prefix list that covers exactly it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 5000 }), (lo, len) => {
        const hi = Math.min(0xffffffff, lo + len);
        const cidrs = intervalToCidrs(BigInt(lo), BigInt(hi), 4);
        let next = BigInt(lo);
        for (const c of cidrs) {
          const start = addressToBigInt(c.address);
          expect(start).toBe(next); // contiguous, ascending, aligned
          expect(start % (1n << BigInt(32 - c.prefixLen))).toBe(0n);
          next = start + (1n << BigInt(32 - c.prefixLen));
        }
        expect(next - 1n).toBe(BigInt(hi));
        // minimal: no two neighbours could be one prefix
        for (let i = 1; i < cidrs.length; i++) {
          const a = cidrs[i - 1], b = cidrs[i];
          const mergeable = a.prefixLen === b.prefixLen && addressToBigInt(a.address) % (1n << BigInt(33 - a.prefixLen)) === 0n;
          expect(mergeable).toBe(false);
        }
      }),
    );
  });

  it("canonical lists are order-independent and idempotent", () => {
    const arbCidr = fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 24, max: 32 })).map(([o, p]) => `198.51.100.${o}/${p}`),
      fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 112, max: 128 })).map(([g, p]) => `2001:db8::${g.toString(16)}/${p}`),
    );
    fc.assert(
      fc.property(fc.array(arbCidr, { minLength: 1, maxLength: 30 }), (list) => {
        const a = canonicalCidrList(list.map(parseCidr)).map(formatCidr);
        const b = canonicalCidrList([...list].reverse().map(parseCidr)).map(formatCidr);
        expect(b).toEqual(a);
        expect(canonicalCidrList(a.map(parseCidr)).map(formatCidr)).toEqual(a);
        // v4 first
        const firstV6 = a.findIndex((x) => x.includes(":"));
        if (firstV6 >= 0) expect(a.slice(firstV6).every((x) => x.includes(":"))).toBe(true);
      }),
    );
  });

  it("merges adjacent and overlapping intervals", () => {
    expect(mergeIntervals([[5n, 9n], [0n, 4n], [20n, 30n], [25n, 26n]])).toEqual([[0n, 9n], [20n, 30n]]);
    expect(canonicalCidrList(["198.51.100.0/25", "198.51.100.128/25"].map(parseCidr)).map(formatCidr)).toEqual(["198.51.100.0/24"]);
    expect(bigIntToAddress(addressToBigInt("2001:db8::ffff"), 6)).toBe("2001:db8::ffff");
  });
});
