// NftFwmarkManager against the real kernel's nf_tables, in namespaces made here.
//
// Oracles (none of them is the adapter's code):
//  - `nft -j list ruleset` run in the namespace by the test process;
//  - real packets: a client namespace sends TCP/UDP (IPv4 and IPv6) through a veth to destinations
//    in 198.51.100.0/24 / 2001:db8:ff::/64 routed to the director namespace; an oracle table written
//    in nft's text syntax counts, at prerouting priority 0 (after lvsfleet's mangle chain), the
//    packets of each probe flow that carry the expected mark and those that do not.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetnsPool, type Netns, type NetnsWorker, type Remote } from "../harness/netns.js";
import { canonicalFwmarkRules, type NftFwmarkManager } from "../../agents/hostagent/kernel/nftables.js";
import { FwmarkInputError, NftError } from "../../agents/hostagent/kernel/errors.js";
import type { FwmarkManager, FwmarkRule } from "../../agents/hostagent/kernel/types.js";

const pool = new NetnsPool();
let client: Netns;
let director: Netns;
let worker: NetnsWorker;
let fw: Remote<FwmarkManager & Pick<NftFwmarkManager, "runTransaction">>;
const scratch = mkdtempSync(join(tmpdir(), "lvsf-nft-test-"));

async function nftFile(ns: Netns, text: string): Promise<void> {
  const f = join(scratch, `f${Math.random().toString(36).slice(2)}.nft`);
  writeFileSync(f, text);
  await ns.exec("nft", ["-f", f]);
}

/** The ruleset minus lvsfleet's table, for "nothing else touched". */
async function foreignRuleset(ns: Netns): Promise<unknown[]> {
  const j = await ns.nftJson("list", "ruleset");
  return j.nftables.filter((o: any) => !o.metainfo && (o.table ?? o.chain ?? o.rule ?? o.set ?? o.counter)?.[o.table ? "name" : "table"] !== "lvsfleet");
}

beforeAll(async () => {
  client = await pool.create();
  director = await pool.create();
  await pool.veth(client, "c0", director, "d0", { a: "192.0.2.2/24", b: "192.0.2.1/24" });
  for (const [ns, ifname, addr] of [[client, "c0", "2001:db8:1::2/64"], [director, "d0", "2001:db8:1::1/64"]] as const) {
    await ns.exec("ip", ["addr", "add", addr, "dev", ifname, "nodad"]);
  }
  await client.exec("ip", ["route", "add", "198.51.100.0/24", "via", "192.0.2.1"]);
  await client.exec("ip", ["-6", "route", "add", "2001:db8:ff::/64", "via", "2001:db8:1::1"]);
  worker = await pool.worker(director);
  fw = worker.adapter("fwmark");
});

afterAll(async () => {
  await pool.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

interface Probe {
  proto: "tcp" | "udp";
  dst: string;
  port: number;
  mark: number; // expected; 0 = unmarked
}

const SEND = `
const [proto, host, port] = process.argv.slice(1);
const net = require("node:net"), dgram = require("node:dgram");
if (proto === "udp") {
  const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  s.send("probe", Number(port), host, (e) => { s.close(); process.exit(e ? 1 : 0); });
} else {
  // A SYN is all we need: nobody answers, the connection is abandoned.
  const s = net.connect({ host, port: Number(port) });
  s.on("error", () => {});
  setTimeout(() => process.exit(0), 150);
}`;

async function sendProbes(probes: Probe[]): Promise<void> {
  await Promise.all(probes.map((p) => client.exec(process.execPath, ["-e", SEND, p.proto, p.dst, String(p.port)])));
}

/** (Re)creates the oracle table: per probe, a counter for "right mark" and one for "any other mark". */
async function installOracle(probes: Probe[]): Promise<void> {
  const lines = probes.flatMap((p, i) => {
    const fam = p.dst.includes(":") ? "ip6" : "ip";
    const m = `${fam} daddr ${p.dst} ${p.proto} dport ${p.port}`;
    return [`    ${m} meta mark ${p.mark} counter comment "p${i}-ok"`, `    ${m} meta mark != ${p.mark} counter comment "p${i}-bad"`];
  });
  await nftFile(
    director,
    `table inet oracle\ndelete table inet oracle\ntable inet oracle {\n  chain pre {\n    type filter hook prerouting priority 0; policy accept;\n${lines.join("\n")}\n  }\n}\n`,
  );
}

async function oracleCounts(): Promise<Map<string, number>> {
  const j = await director.nftJson("list", "table", "inet", "oracle");
  const out = new Map<string, number>();
  for (const o of j.nftables) {
    if (!o.rule) continue;
    const c = o.rule.expr.find((e: any) => e.counter)?.counter;
    out.set(o.rule.comment, c.packets);
  }
  return out;
}

async function expectMarks(probes: Probe[]): Promise<void> {
  await installOracle(probes);
  await sendProbes(probes);
  const counts = await oracleCounts();
  const seen = probes.map((p, i) => ({ probe: `${p.proto} ${p.dst}:${p.port} want mark ${p.mark}`, ok: counts.get(`p${i}-ok`)! > 0, bad: counts.get(`p${i}-bad`) }));
  expect(seen).toEqual(probes.map((p) => ({ probe: `${p.proto} ${p.dst}:${p.port} want mark ${p.mark}`, ok: true, bad: 0 })));
}

const RULES: FwmarkRule[] = [
  { mark: 0x10, matches: [{ destinations: ["198.51.100.10", "2001:db8:ff::10"], protocol: "tcp", ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] },
  { mark: 0x20, matches: [{ destinations: ["198.51.100.0/28"], protocol: "udp", ports: [{ start: 5000, end: 5100 }] }] },
  {
    mark: 0x30,
    matches: [
      { destinations: ["198.51.100.64/26"], ports: [{ start: 7000, end: 7000 }] }, // no protocol: tcp, udp and sctp
      { destinations: ["198.51.100.200", "198.51.100.201"], protocol: "sctp", ports: [] },
    ],
  },
];

const PROBES: Probe[] = [
  { proto: "tcp", dst: "198.51.100.10", port: 80, mark: 0x10 },
  { proto: "tcp", dst: "198.51.100.10", port: 443, mark: 0x10 },
  { proto: "tcp", dst: "2001:db8:ff::10", port: 443, mark: 0x10 },
  { proto: "tcp", dst: "198.51.100.10", port: 8080, mark: 0 },
  { proto: "udp", dst: "198.51.100.10", port: 5050, mark: 0x20 },
  { proto: "udp", dst: "198.51.100.20", port: 5050, mark: 0 },
  { proto: "udp", dst: "198.51.100.70", port: 7000, mark: 0x30 },
  { proto: "tcp", dst: "198.51.100.70", port: 7000, mark: 0x30 },
  { proto: "tcp", dst: "198.51.100.70", port: 7001, mark: 0 },
  { proto: "udp", dst: "2001:db8:ff::10", port: 80, mark: 0 },
];

describe("fwmarks through nftables", () => {
  it("marks real packets by destination, protocol and port range", async () => {
    await nftFile(director, "table ip keepme {\n  counter c {\n  }\n  chain out {\n    type filter hook output priority 0; policy accept;\n    counter name c\n  }\n}\n");
    const foreignBefore = await foreignRuleset(director);
    await fw.apply(RULES);
    await expectMarks(PROBES);
    // Oracle: the table as nft lists it.
    const j = await director.nftJson("list", "table", "inet", "lvsfleet");
    const chain = j.nftables.find((o: any) => o.chain)?.chain;
    expect(chain).toMatchObject({ name: "prerouting", type: "filter", hook: "prerouting", prio: -150, policy: "accept" });
    expect(j.nftables.filter((o: any) => o.rule)).toHaveLength(5); // 0x10: IPv4 + IPv6 rule; 0x20: one; 0x30: one per match
    // Only our table changed (the oracle table was added by this test).
    const foreignAfter = (await foreignRuleset(director)).filter((o: any) => (o.table?.name ?? o.chain?.table ?? o.rule?.table) !== "oracle");
    expect(foreignAfter).toEqual(foreignBefore);
  });

  it("reads back exactly what it wrote (canonical form), with no problems", async () => {
    const st = await fw.read();
    expect(st).toEqual({ rules: canonicalFwmarkRules(RULES), problems: [] });
  });

  it("replaces the whole table: new marks take effect, old rules are gone", async () => {
    const next: FwmarkRule[] = [
      { mark: 0x11, matches: [{ destinations: ["198.51.100.10"], protocol: "tcp", ports: [{ start: 8080, end: 8080 }] }] },
      { mark: 0x20, matches: [{ destinations: ["198.51.100.0/24"], protocol: "udp", ports: [{ start: 5000, end: 5100 }] }] },
    ];
    await fw.apply(next);
    await expectMarks([
      { proto: "tcp", dst: "198.51.100.10", port: 80, mark: 0 },
      { proto: "tcp", dst: "198.51.100.10", port: 8080, mark: 0x11 },
      { proto: "udp", dst: "198.51.100.20", port: 5050, mark: 0x20 },
      { proto: "udp", dst: "198.51.100.70", port: 7000, mark: 0 },
    ]);
    expect((await fw.read())!.rules).toEqual(canonicalFwmarkRules(next));
  });

  it("canonicalises: adjacent prefixes and overlapping port ranges read back merged, as nft stores them", async () => {
    const rules: FwmarkRule[] = [
      {
        mark: 7,
        matches: [
          {
            destinations: ["198.51.100.0/25", "198.51.100.128/25", "203.0.113.5", "203.0.113.4", "2001:db8:ff::/65", "2001:db8:ff:0:8000::/65"],
            protocol: "tcp",
            ports: [{ start: 21, end: 21 }, { start: 30000, end: 30010 }, { start: 30005, end: 30020 }, { start: 22, end: 22 }],
          },
        ],
      },
    ];
    await fw.apply(rules);
    const st = await fw.read();
    expect(st!.problems).toEqual([]);
    expect(st!.rules).toEqual([
      {
        mark: 7,
        matches: [{ destinations: ["198.51.100.0/24", "203.0.113.4/31", "2001:db8:ff::/64"], protocol: "tcp", ports: [{ start: 21, end: 22 }, { start: 30000, end: 30020 }] }],
      },
    ]);
    expect(st!.rules).toEqual(canonicalFwmarkRules(rules));
    const text = (await director.nft("list", "table", "inet", "lvsfleet")).stdout;
    expect(text).toContain("ip daddr { 198.51.100.0/24, 203.0.113.4/31 } tcp dport { 21-22, 30000-30020 } meta mark set 0x00000007 accept");
  });

  it("reports drift: a hand-added rule, a deleted rule", async () => {
    await fw.apply(RULES);
    await director.nft("add", "rule", "inet", "lvsfleet", "prerouting", "ip", "daddr", "198.51.100.99", "meta", "mark", "set", "0x99", "accept");
    let st = await fw.read();
    expect(st!.problems.length).toBeGreaterThan(0);
    expect(st!.problems.join("\n")).toMatch(/without lvsfleet comment/);

    await fw.apply(RULES);
    expect((await fw.read())!.problems).toEqual([]);
    const j = await director.nftJson("-a", "list", "table", "inet", "lvsfleet");
    const handle = j.nftables.find((o: any) => o.rule?.comment === "lvsfleet mark=32 match=0").rule.handle;
    await director.nft("delete", "rule", "inet", "lvsfleet", "prerouting", "handle", String(handle));
    st = await fw.read();
    expect(st!.rules).not.toEqual(canonicalFwmarkRules(RULES));
    expect(st!.rules.map((r) => r.mark)).toEqual([0x10, 0x30]);
  });

  it("is atomic: a transaction that fails at its last command leaves the installed table untouched", async () => {
    await fw.apply(RULES);
    const before = await director.nftJson("list", "table", "inet", "lvsfleet");
    const t = { family: "inet", name: "lvsfleet" };
    const err = await fw
      .runTransaction("apply", {
        nftables: [
          { add: { table: t } },
          { delete: { table: t } },
          { add: { table: t } },
          { add: { rule: { family: "inet", table: "lvsfleet", chain: "no_such_chain", expr: [{ accept: null }] } } },
        ],
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(NftError);
    expect(await director.nftJson("list", "table", "inet", "lvsfleet")).toEqual(before);
  });

  it("rejects bad input with the field path and changes nothing", async () => {
    const before = await director.nftJson("list", "table", "inet", "lvsfleet");
    const bad: FwmarkRule[] = [{ mark: 1, matches: [{ destinations: ["198.51.100.1", "198.51.100.300"], ports: [] }] }];
    const err = await fw.apply(bad).catch((e) => e);
    expect(err).toBeInstanceOf(FwmarkInputError);
    expect(err.field).toBe("rules[0].matches[0].destinations[1]");
    await expect(fw.apply([{ mark: 0, matches: [{ destinations: ["198.51.100.1"], ports: [] }] }])).rejects.toMatchObject({ field: "rules[0].mark" });
    await expect(fw.apply([{ mark: 1, matches: [{ destinations: ["198.51.100.1"], protocol: "tcp", ports: [{ start: 90, end: 80 }] }] }])).rejects.toMatchObject({
      field: "rules[0].matches[0].ports[0].end",
    });
    expect(await director.nftJson("list", "table", "inet", "lvsfleet")).toEqual(before);
  });

  it("programs a large table in one transaction and reads it back", async () => {
    const rules: FwmarkRule[] = Array.from({ length: 1000 }, (_, i) => ({
      mark: i + 1,
      matches: [
        {
          destinations: [`198.18.${i >> 8}.${i & 0xff}`, `2001:db8:${(i + 1).toString(16)}::1`],
          protocol: (["tcp", "udp", "sctp"] as const)[i % 3],
          ports: [{ start: 80, end: 80 }, { start: 10000 + i, end: 10010 + i }],
        },
      ],
    }));
    const t0 = performance.now();
    await fw.apply(rules);
    const applyMs = performance.now() - t0;
    const st = await fw.read();
    expect(st).toEqual({ rules: canonicalFwmarkRules(rules), problems: [] });
    const count = (await director.nftJson("list", "table", "inet", "lvsfleet")).nftables.filter((o: any) => o.rule).length;
    expect(count).toBe(2000);
    console.log(`nft apply of 1000 marks / 2000 rules: ${applyMs.toFixed(0)} ms`);
  });

  it("clear() removes only lvsfleet's table; read() then says absent", async () => {
    const foreignBefore = await foreignRuleset(director);
    await fw.clear();
    const j = await director.nftJson("list", "ruleset");
    expect(j.nftables.some((o: any) => o.table?.name === "lvsfleet")).toBe(false);
    expect(await foreignRuleset(director)).toEqual(foreignBefore);
    expect(await fw.read()).toBeUndefined();
    await fw.clear(); // idempotent
    // and packets are no longer marked
    await expectMarks([{ proto: "tcp", dst: "198.51.100.10", port: 80, mark: 0 }]);
  });
});
