import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addressSortKey, compareAddressStrings, compareStrings, parseAddress, parsePrefix, prefixContains, sortByKey } from "./addr.js";
import { hostId, realServerParent, siteId } from "./names.js";

const bytesToBig = (b: Uint8Array) => b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);

/** RFC 5952-ish text of 16 bytes, compressing the longest zero run (the form the domain layer emits). */
function v6Text(b: Uint8Array, compress: boolean): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  if (!compress) return g.map((x) => x.toString(16)).join(":");
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.map((x) => x.toString(16)).join(":");
  const head = g.slice(0, best).map((x) => x.toString(16)).join(":");
  const tail = g.slice(best + bestLen).map((x) => x.toString(16)).join(":");
  return `${head}::${tail}`;
}

describe("addr", () => {
  it.each([
    ["192.0.2.1", 4, [192, 0, 2, 1]],
    ["0.0.0.0", 4, [0, 0, 0, 0]],
    ["::", 6, new Array(16).fill(0)],
    ["::1", 6, [...new Array(15).fill(0), 1]],
    ["2001:db8::", 6, [0x20, 0x01, 0x0d, 0xb8, ...new Array(12).fill(0)]],
    ["::ffff:192.0.2.1", 6, [...new Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 1]],
  ] as const)("parses %s", (text, family, bytes) => {
    const p = parseAddress(text)!;
    expect(p.family).toBe(family);
    expect([...p.bytes]).toEqual([...bytes]);
  });

  it.each(["", "1.2.3", "1.2.3.", ".1.2.3", "1..2.3", "1.2.3.4 ", "1234.1.1.1", "1.2.3.4.5", "256.0.0.1", "1.2.3.-1", "2001:db8:::1", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "a:b:c:d:e:f:1", "eth0"])(
    "rejects %j",
    (text) => expect(parseAddress(text)).toBeUndefined(),
  );

  it.each([
    ["192.0.2.0/24", "192.0.2.255", true],
    ["192.0.2.0/24", "192.0.3.0", false],
    ["192.0.2.10/25", "192.0.2.127", true],
    ["192.0.2.10/25", "192.0.2.128", false],
    ["0.0.0.0/0", "203.0.113.9", true],
    ["198.51.100.7", "198.51.100.7", true],
    ["198.51.100.7", "198.51.100.8", false],
    ["2001:db8::/32", "2001:db8:ffff::1", true],
    ["2001:db8::/33", "2001:db8:8000::1", false],
    ["2001:db8::/64", "192.0.2.1", false],
  ] as const)("%s contains %s: %s", (prefix, addr, want) => {
    expect(prefixContains(parsePrefix(prefix)!, parseAddress(addr)!)).toBe(want);
  });

  it("rejects bad prefix lengths", () => {
    expect(parsePrefix("192.0.2.0/33")).toBeUndefined();
    expect(parsePrefix("2001:db8::/129")).toBeUndefined();
    expect(parsePrefix("192.0.2.0/")).toBeUndefined();
    expect(parsePrefix("192.0.2.0/x")).toBeUndefined();
  });

  it("IPv6 text round-trips to the same bytes, compressed or not", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(fc.nat(7), { maxLength: 6 }), (raw, zeros) => {
        const b = new Uint8Array(raw);
        for (const z of zeros) { b[2 * z] = 0; b[2 * z + 1] = 0; } // make zero runs likely
        for (const compress of [false, true]) {
          const p = parseAddress(v6Text(b, compress))!;
          expect(p.family).toBe(6);
          expect([...p.bytes]).toEqual([...b]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("compareAddressStrings is numeric and agrees with the integer value", () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join("."));
    fc.assert(
      fc.property(v4, v4, (a, b) => {
        const ia = bytesToBig(parseAddress(a)!.bytes);
        const ib = bytesToBig(parseAddress(b)!.bytes);
        expect(Math.sign(compareAddressStrings(a, b))).toBe(ia < ib ? -1 : ia > ib ? 1 : 0);
      }),
      { numRuns: 300 },
    );
    expect(compareAddressStrings("192.0.2.9", "192.0.2.10")).toBeLessThan(0);
    expect(compareAddressStrings("255.255.255.255", "::")).toBeLessThan(0);
  });

  it("addressSortKey orders exactly like compareAddressStrings (mixed families and junk)", () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join("."));
    const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => v6Text(b, true));
    const any = fc.oneof(v4, v6, fc.constantFrom("not-an-ip", "", "1.2.3"));
    fc.assert(
      fc.property(any, any, (a, b) => {
        expect(Math.sign(compareStrings(addressSortKey(a), addressSortKey(b)))).toBe(Math.sign(compareAddressStrings(a, b)));
      }),
      { numRuns: 500 },
    );
    expect(sortByKey(["10.0.0.1", "::1", "9.0.0.1", "x", "10.0.0.0"], addressSortKey)).toEqual(["9.0.0.1", "10.0.0.0", "10.0.0.1", "::1", "x"]);
  });

  it("prefixContains agrees with integer masking", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(128), (p, a, len) => {
        const prefix = { family: 6 as const, bytes: p, prefixLength: len };
        const addr = { family: 6 as const, bytes: a };
        const shift = BigInt(128 - len);
        const want = bytesToBig(p) >> shift === bytesToBig(a) >> shift;
        expect(prefixContains(prefix, addr)).toBe(want);
      }),
      { numRuns: 300 },
    );
  });
});

describe("names", () => {
  it("takes resource names apart", () => {
    expect(siteId("sites/fra1")).toBe("fra1");
    expect(hostId("sites/fra1/hosts/lb1")).toBe("lb1");
    expect(hostId("sites/fra1/virtualServices/lb1")).toBe("");
    expect(realServerParent("sites/fra1/virtualServices/web/realServers/a")).toBe("sites/fra1/virtualServices/web");
    expect(realServerParent("sites/fra1/hosts/a")).toBe("");
  });
});
