// Pure parts of the nftables adapter: validation, canonical form, JSON document, listing parser.
// The adapter against the real nf_tables is tested in test/kernel/nftables.test.ts.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { buildNftDocument, canonicalFwmarkRules, parseNftListing, validateFwmarkRules } from "./nftables.js";
import { FwmarkInputError } from "./errors.js";
import type { FwmarkRule } from "./types.js";

const OPTS = { family: "inet" as const, table: "lvsfleet", chain: "prerouting", priority: -150 };

describe("validateFwmarkRules", () => {
  const ok: FwmarkRule = { mark: 1, matches: [{ destinations: ["198.51.100.1"], ports: [] }] };
  const cases: Array<[string, unknown, string]> = [
    ["mark 0", [{ ...ok, mark: 0 }], "rules[0].mark"],
    ["mark > u32", [{ ...ok, mark: 2 ** 32 }], "rules[0].mark"],
    ["duplicate mark", [ok, ok], "rules[1].mark"],
    ["no matches", [{ mark: 1, matches: [] }], "rules[0].matches"],
    ["no destinations", [{ mark: 1, matches: [{ destinations: [], ports: [] }] }], "rules[0].matches[0].destinations"],
    ["bad address", [{ mark: 1, matches: [{ destinations: ["198.51.100.1", "fe80::1%eth0"], ports: [] }] }], "rules[0].matches[0].destinations[1]"],
    ["bad protocol", [{ mark: 1, matches: [{ destinations: ["198.51.100.1"], protocol: "icmp", ports: [] }] }], "rules[0].matches[0].protocol"],
    ["port 0", [{ mark: 1, matches: [{ destinations: ["198.51.100.1"], ports: [{ start: 0, end: 1 }] }] }], "rules[0].matches[0].ports[0].start"],
    ["end < start", [{ mark: 1, matches: [{ destinations: ["198.51.100.1"], ports: [{ start: 9, end: 8 }] }] }], "rules[0].matches[0].ports[0].end"],
  ];
  for (const [name, input, field] of cases) {
    it(`rejects ${name} naming ${field}`, () => {
      let err: unknown;
      try {
        validateFwmarkRules(input as FwmarkRule[]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FwmarkInputError);
      expect((err as FwmarkInputError).field).toBe(field);
    });
  }
  it("accepts a valid set", () => {
    expect(() => validateFwmarkRules([ok, { mark: 0xffffffff, matches: [{ destinations: ["2001:db8::/32"], protocol: "sctp", ports: [{ start: 1, end: 65535 }] }] }])).not.toThrow();
  });
});

describe("nft JSON document", () => {
  it("replaces the table in one transaction: add, delete, add table, then chain, then rules", () => {
    const doc = buildNftDocument([{ mark: 5, matches: [{ destinations: ["198.51.100.9", "2001:db8::9"], protocol: "udp", ports: [{ start: 53, end: 53 }] }] }], OPTS);
    const kinds = doc.nftables.map((c: any) => `${Object.keys(c)[0]} ${Object.keys(Object.values(c)[0] as object)[0]}`);
    expect(kinds).toEqual(["add table", "delete table", "add table", "add chain", "add rule", "add rule"]);
    const rule = (doc.nftables[4] as any).add.rule;
    expect(rule.comment).toBe("lvsfleet mark=5 match=0");
    expect(rule.expr).toEqual([
      { match: { op: "==", left: { payload: { protocol: "ip", field: "daddr" } }, right: "198.51.100.9" } },
      { match: { op: "==", left: { payload: { protocol: "udp", field: "dport" } }, right: 53 } },
      { mangle: { key: { meta: { key: "mark" } }, value: 5 } },
      { accept: null },
    ]);
    // Nothing outside the lvsfleet table is ever named.
    for (const c of doc.nftables as any[]) {
      const o: any = Object.values(Object.values(c)[0] as object)[0];
      expect(o.table ?? o.name).toBe("lvsfleet");
    }
  });
});

describe("listing parser", () => {
  it("parses a real `nft -j list table inet lvsfleet` (nft 1.0.6) into the canonical rules", () => {
    const listing = JSON.parse(readFileSync(new URL("./testdata/nft-list-table.json", import.meta.url), "utf8"));
    const written: FwmarkRule[] = [
      { mark: 1, matches: [{ destinations: ["198.51.100.0/25", "198.51.100.128/25", "203.0.113.7", "2001:db8::/64", "2001:db8:0:1::/64"], protocol: "tcp", ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }, { start: 81, end: 82 }] }] },
      { mark: 2, matches: [{ destinations: ["198.51.100.20"], ports: [{ start: 20000, end: 20100 }] }, { destinations: ["2001:db8::1"], protocol: "udp", ports: [] }] },
      { mark: 4294967295, matches: [{ destinations: ["198.51.100.1", "198.51.100.2", "198.51.100.3"], protocol: "sctp", ports: [{ start: 9, end: 9 }] }] },
    ];
    expect(parseNftListing(listing, OPTS)).toEqual({ rules: canonicalFwmarkRules(written), problems: [] });
  });

  it("reports a chain with another priority, an extra chain and foreign rules as problems", () => {
    const listing = JSON.parse(readFileSync(new URL("./testdata/nft-list-table.json", import.meta.url), "utf8"));
    const chain = listing.nftables.find((o: any) => o.chain).chain;
    chain.prio = 0;
    listing.nftables.push({ chain: { family: "inet", table: "lvsfleet", name: "extra", handle: 99 } });
    listing.nftables.push({ rule: { family: "inet", table: "lvsfleet", chain: "prerouting", handle: 100, expr: [{ counter: { packets: 0, bytes: 0 } }] } });
    const st = parseNftListing(listing, OPTS);
    expect(st.problems).toEqual([
      "chain prerouting is type filter hook prerouting prio 0 policy accept, want filter prerouting -150 accept",
      "unexpected chain extra",
      "unrecognised rule (handle 100): does not start with ip/ip6 daddr ==",
    ]);
  });

  const arbRule = (mark: number) =>
    fc.record({
      mark: fc.constant(mark),
      matches: fc.array(
        fc.record({
          destinations: fc.array(
            fc.oneof(
              fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 16, max: 32 })).map(([o, p]) => `198.51.${o}.${(o * 7) & 0xff}/${p}`),
              fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 32, max: 128 })).map(([g, p]) => `2001:db8:${g.toString(16)}::${g.toString(16)}/${p}`),
            ),
            { minLength: 1, maxLength: 6 },
          ),
          protocol: fc.option(fc.constantFrom("tcp" as const, "udp" as const, "sctp" as const), { nil: undefined }),
          ports: fc.array(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 300 })).map(([s, l]) => ({ start: s, end: Math.min(65535, s + l) })), { maxLength: 4 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    });

  it("parses back what the builder writes (as nft echoes it), for any valid input", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 0xffffffff }), { minLength: 1, maxLength: 5 }).chain((marks) => fc.tuple(...[...new Set(marks)].map(arbRule))), (rules) => {
        const input = rules.map((r) => ({ ...r, matches: r.matches.map((m) => (m.protocol === undefined ? { destinations: m.destinations, ports: m.ports } : m)) })) as FwmarkRule[];
        validateFwmarkRules(input);
        const doc = buildNftDocument(input, OPTS);
        // What `nft -j list` returns for what we add: the objects without the add wrapper, plus handles.
        const listing = {
          nftables: [{ metainfo: { json_schema_version: 1 } }, ...doc.nftables.slice(2).map((c: any, i) => ({ ...c.add, ...(c.add.rule ? { rule: { ...c.add.rule, handle: i } } : {}) }))],
        };
        expect(parseNftListing(listing, OPTS)).toEqual({ rules: canonicalFwmarkRules(input), problems: [] });
        expect(canonicalFwmarkRules(canonicalFwmarkRules(input))).toEqual(canonicalFwmarkRules(input));
      }),
      { numRuns: 200 },
    );
  });
});
