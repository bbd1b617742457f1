import { isIP, SocketAddress } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { endpointProblem, formatV6, isV4Embedded, parseAddress, parsePrefix, type ParsedAddress } from "./address.js";

function ok(s: string): ParsedAddress {
  const a = parseAddress(s);
  if ("reason" in a) throw new Error(`expected ${s} to parse: ${a.description}`);
  return a;
}

describe("parseAddress", () => {
  it.each([
    ["192.0.2.1", 4, "192.0.2.1"],
    ["0.0.0.0", 4, "0.0.0.0"],
    ["255.255.255.255", 4, "255.255.255.255"],
    ["2001:DB8::1", 6, "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", 6, "2001:db8::1"],
    ["::", 6, "::"],
    ["::1", 6, "::1"],
    ["1::", 6, "1::"],
    ["1:0:0:1:0:0:0:1", 6, "1:0:0:1::1"], // the longest run is compressed
    ["0:0:1:0:0:1:0:0", 6, "::1:0:0:1:0:0"], // the first of equal runs
    ["2001:db8:0:1:1:1:1:1", 6, "2001:db8:0:1:1:1:1:1"], // a single zero group is not compressed
    ["64:ff9b::192.0.2.33", 6, "64:ff9b::c000:221"],
    ["1:2:3:4:5:6:192.0.2.1", 6, "1:2:3:4:5:6:c000:201"],
  ])("accepts %s as IPv%i %s", (input, family, canonical) => {
    const a = ok(input);
    expect(a.family).toBe(family);
    expect(a.canonical).toBe(canonical);
  });

  it.each([
    ["", "required"],
    ["256.0.0.1", "0..255"],
    ["010.0.0.1", "leading zeros"],
    ["1.2.3", "four"],
    ["1.2.3.4.5", "four"],
    ["0x1.2.3.4", "decimal"],
    [" 1.2.3.4", "decimal"],
    ["fe80::1%eth0", "zone"],
    ["[2001:db8::1]", "brackets"],
    ["2001:db8::1::2", "only once"],
    ["1:2:3:4:5:6:7:8:9", "eight"],
    ["1:2:3:4:5:6:7", "eight"],
    ["12345::1", "hex"],
    ["g::1", "hex"],
    ["1:2:3:4:5:6:7::8", "too many"],
    ["::1.2.3.256", "IPv4"],
    ["1:2:3:4:5:6:7:1.2.3.4", "six"],
    [":1::2", "hex"],
    ["1::2:", "hex"],
    ["a".repeat(100), "too long"],
  ])("rejects %j (%s)", (input, why) => {
    const a = parseAddress(input);
    expect("reason" in a && a.reason).toBe("INVALID_ADDRESS");
    expect("description" in a && a.description).toContain(why);
  });

  it("rejects non-strings without throwing", () => {
    for (const v of [undefined, null, 42, {}, [], 1n, NaN]) expect(parseAddress(v)).toMatchObject({ reason: "INVALID_ADDRESS" });
  });
});

describe("endpointProblem", () => {
  it.each([
    ["0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.255", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["::", "unspecified"],
    ["ff02::1", "multicast"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["::ffff:192.0.2.1", "IPv4-mapped"],
    ["::192.0.2.1", "IPv4-compatible"],
  ])("%s is not an endpoint (%s)", (input, why) => {
    expect(endpointProblem(ok(input))).toContain(why);
  });

  it.each(["192.0.2.1", "10.0.0.1", "127.0.0.1", "223.255.255.255", "240.0.0.1", "2001:db8::1", "::1", "fec0::1", "fc00::1", "64:ff9b::1"])(
    "%s is an endpoint",
    (input) => {
      expect(endpointProblem(ok(input))).toBeUndefined();
    },
  );

  it("isV4Embedded matches mapped and compatible only", () => {
    expect(isV4Embedded(ok("::ffff:1.2.3.4"))).toBe(true);
    expect(isV4Embedded(ok("::1.2.3.4"))).toBe(true);
    expect(isV4Embedded(ok("::1"))).toBe(false);
    expect(isV4Embedded(ok("1.2.3.4"))).toBe(false);
    expect(isV4Embedded(ok("2001:db8::1.2.3.4"))).toBe(false);
  });
});

describe("parsePrefix", () => {
  it.each([
    ["192.0.2.0/24", false, "192.0.2.0/24", "192.0.2.0/24", false],
    ["192.0.2.10/24", false, "192.0.2.10/24", "192.0.2.0/24", true],
    ["0.0.0.0/0", false, "0.0.0.0/0", "0.0.0.0/0", false],
    ["2001:DB8::/32", false, "2001:db8::/32", "2001:db8::/32", false],
    ["2001:db8::1/127", false, "2001:db8::1/127", "2001:db8::/127", true],
    ["192.0.2.7", true, "192.0.2.7/32", "192.0.2.7/32", false],
    ["2001:db8::7", true, "2001:db8::7/128", "2001:db8::7/128", false],
  ])("%s (bare %s) → %s network %s hostBits %s", (input, allowBare, canonical, network, hostBits) => {
    const p = parsePrefix(input, { allowBare });
    expect(p).toMatchObject({ canonical, network, hostBitsSet: hostBits });
  });

  it.each([
    ["192.0.2.0", false, "no prefix length"],
    ["192.0.2.0/33", true, "0..32"],
    ["2001:db8::/129", true, "0..128"],
    ["192.0.2.0/024", true, "leading zeros"],
    ["192.0.2.0/", true, "decimal"],
    ["192.0.2.0/-1", true, "decimal"],
    ["192.0.2.0/24/1", true, "decimal"],
    ["300.0.2.0/24", true, "IPv4"],
    ["", true, "required"],
  ])("rejects %j (bare %s): %s", (input, allowBare, why) => {
    const p = parsePrefix(input, { allowBare });
    expect(p).toMatchObject({ reason: "INVALID_CIDR" });
    expect("description" in p && p.description).toContain(why);
  });
});

describe("properties", () => {
  const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });

  it("IPv6: format → parse gives the same bytes, and the canonical form is a fixed point", () => {
    fc.assert(
      fc.property(bytes16, (b) => {
        const text = formatV6(b);
        const a = ok(text);
        expect([...a.bytes]).toEqual([...b]);
        expect(a.canonical).toBe(text);
        expect(ok(a.canonical).canonical).toBe(a.canonical);
      }),
      { numRuns: 2000 },
    );
  });

  it("IPv6 canonical form equals the C library's inet_ntop (outside the v4-embedded ranges)", () => {
    fc.assert(
      fc.property(bytes16, (b) => {
        const text = formatV6(b);
        fc.pre(!isV4Embedded(ok(text)));
        // expanded, upper-case input: both sides must compress it the same way
        const groups: string[] = [];
        for (let i = 0; i < 8; i++) groups.push(((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16).toUpperCase().padStart(4, "0"));
        const expanded = groups.join(":");
        expect(ok(expanded).canonical).toBe(new SocketAddress({ address: expanded, family: "ipv6" }).address);
      }),
      { numRuns: 2000 },
    );
  });

  it("whatever parses is an IP literal to node:net too, of the same family", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string({ maxLength: 50 }), fc.stringMatching(/^[0-9a-fA-F:.%]{0,45}$/)), (s) => {
        const a = parseAddress(s);
        if (!("reason" in a)) expect(isIP(s)).toBe(a.family);
      }),
      { numRuns: 3000 },
    );
  });

  it("every dotted quad without leading zeros parses, every one with a leading zero is rejected", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 3 }), (octets, zeroAt) => {
        const text = octets.join(".");
        expect(ok(text).canonical).toBe(text);
        const padded = octets.map((o, i) => (i === zeroAt ? `0${o}` : `${o}`)).join(".");
        expect(parseAddress(padded)).toMatchObject({ reason: "INVALID_ADDRESS" });
      }),
    );
  });

  it("fast-check's IPv6 generator: every output parses (it never makes zone ids)", () => {
    fc.assert(
      fc.property(fc.ipV6(), (s) => {
        const a = ok(s);
        expect(a.family).toBe(6);
      }),
      { numRuns: 2000 },
    );
  });

  it("parsePrefix never throws and the network has no host bits", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 128 }), (addr, len) => {
        const p = parsePrefix(`${addr}/${len}`, { allowBare: false });
        const max = addr.includes(":") ? 128 : 32;
        if (len > max) {
          expect(p).toMatchObject({ reason: "INVALID_CIDR" });
          return;
        }
        if ("reason" in p) throw new Error(p.description);
        const net = parsePrefix(p.network, { allowBare: false });
        expect(net).toMatchObject({ hostBitsSet: false, network: p.network });
      }),
      { numRuns: 2000 },
    );
  });
});
