// Firewall marks for IPVS fwmark services, through one nftables table owned by lvsfleet.
//
//   table inet lvsfleet {
//     chain prerouting {
//       type filter hook prerouting priority mangle; policy accept;
//       ip daddr { 198.51.100.0/24, 203.0.113.7 } tcp dport { 80, 443 } meta mark set 0x1 accept comment "lvsfleet mark=1 match=0"
//       ip6 daddr 2001:db8::/64 tcp dport { 80, 443 }                     meta mark set 0x1 accept comment "lvsfleet mark=1 match=0"
//       ip daddr 198.51.100.20 meta l4proto { tcp, udp, sctp } th dport 20000-20100 meta mark set 0x2 accept comment "lvsfleet mark=2 match=0"
//     }
//   }
//
// Why `nft -j -f FILE` and not nf_tables netlink from Node:
//  - nf_tables netlink is a VM bytecode interface: every rule is a list of expressions (payload
//    loads with protocol dependencies, cmp, lookup into anonymous interval sets encoded as
//    start/end-flagged elements, immediate + meta set), wrapped in a NFNL batch with generation ids.
//    Re-implementing libnftables' compiler (and its listing decompiler, needed for drift detection)
//    is a large amount of kernel-ABI code with no upside here: the ruleset changes only when the
//    topology changes, so ~20 ms per apply for a process spawn is irrelevant.
//  - `nft -f` submits the whole file as ONE netlink batch: the kernel commits it atomically or not
//    at all. The file starts with "add table; delete table; add table ...": the whole table is
//    replaced in one transaction, packets never see a half-written or empty table.
//  - JSON in and out (libnftables-json(5)), so no text quoting and the listing is machine-readable.
//  - Directors already carry the nftables package; the real nft is also the test oracle's tool.
// `nft -j -f -` fails when Node pipes stdin (/dev/stdin: No such device), so we write a temp file.
//
// Only lvsfleet's table is ever named in a command: other tables are never listed, flushed or touched.
//
// `accept` after `meta mark set` makes the first matching rule win (rules are written in input
// order); it ends this chain only — other tables' prerouting chains still see the packet.

import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FwmarkInputError, NftError } from "./errors.js";
import { canonicalCidrList, formatCidr, parseCidr, ipFamily, addressToBigInt, type Cidr } from "./ipaddr.js";
import type { FwmarkManager, FwmarkMatch, FwmarkProtocol, FwmarkRule, FwmarkState, IpFamily, PortRange } from "./types.js";

export interface NftFwmarkOptions {
  /** nft binary (default "nft" from PATH). */
  nft?: string;
  /** Table family and name (default inet lvsfleet). */
  family?: "inet";
  table?: string;
  chain?: string;
  /** Chain priority (default -150 = "mangle", before conntrack-dependent filters and IPVS at LOCAL_IN). */
  priority?: number;
  /** Timeout per nft run in ms (default 30 s). */
  timeoutMs?: number;
}

const PROTOCOLS: readonly FwmarkProtocol[] = ["tcp", "udp", "sctp"];
const COMMENT_RE = /^lvsfleet mark=(\d+) match=(\d+)$/;

// --- validation & canonical form --------------------------------------------------------------

export function validateFwmarkRules(rules: FwmarkRule[]): void {
  if (!Array.isArray(rules)) throw new FwmarkInputError("rules", "must be an array");
  const seen = new Map<number, number>();
  rules.forEach((r, i) => {
    const f = `rules[${i}]`;
    if (!Number.isInteger(r.mark) || r.mark < 1 || r.mark > 0xffffffff) {
      throw new FwmarkInputError(`${f}.mark`, `must be an integer in 1..4294967295, got ${r.mark}`);
    }
    if (seen.has(r.mark)) throw new FwmarkInputError(`${f}.mark`, `mark ${r.mark} already used by rules[${seen.get(r.mark)}]`);
    seen.set(r.mark, i);
    if (!Array.isArray(r.matches) || r.matches.length === 0) throw new FwmarkInputError(`${f}.matches`, "at least one match is required");
    r.matches.forEach((m, j) => {
      const g = `${f}.matches[${j}]`;
      if (!Array.isArray(m.destinations) || m.destinations.length === 0) {
        throw new FwmarkInputError(`${g}.destinations`, "at least one destination is required");
      }
      m.destinations.forEach((d, k) => {
        try {
          parseCidr(d);
        } catch (e) {
          throw new FwmarkInputError(`${g}.destinations[${k}]`, (e as Error).message);
        }
      });
      if (m.protocol !== undefined && !PROTOCOLS.includes(m.protocol)) {
        throw new FwmarkInputError(`${g}.protocol`, `must be one of ${PROTOCOLS.join(", ")}, got ${JSON.stringify(m.protocol)}`);
      }
      if (!Array.isArray(m.ports)) throw new FwmarkInputError(`${g}.ports`, "must be an array (empty = any port)");
      m.ports.forEach((p, k) => {
        for (const side of ["start", "end"] as const) {
          const v = p[side];
          if (!Number.isInteger(v) || v < 1 || v > 65535) throw new FwmarkInputError(`${g}.ports[${k}].${side}`, `must be an integer in 1..65535, got ${v}`);
        }
        if (p.end < p.start) throw new FwmarkInputError(`${g}.ports[${k}].end`, `must be >= start (${p.start}), got ${p.end}`);
      });
    });
  });
}

function canonicalPorts(ports: PortRange[]): PortRange[] {
  const sorted = [...ports].sort((a, b) => a.start - b.start);
  const out: PortRange[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && p.start <= last.end + 1) last.end = Math.max(last.end, p.end);
    else out.push({ start: p.start, end: p.end });
  }
  return out;
}

function canonicalMatch(m: FwmarkMatch): FwmarkMatch {
  const out: FwmarkMatch = {
    destinations: canonicalCidrList(m.destinations.map(parseCidr)).map(formatCidr),
    ports: canonicalPorts(m.ports),
  };
  if (m.protocol !== undefined) out.protocol = m.protocol;
  return out;
}

/**
 * The form `read()` returns and drift detection compares: destinations merged and decomposed into
 * minimal "addr/len" prefixes (IPv4 first), port ranges sorted and merged, rule and match order kept
 * (order is semantics: the first matching rule wins).
 */
export function canonicalFwmarkRules(rules: FwmarkRule[]): FwmarkRule[] {
  return rules.map((r) => ({ mark: r.mark, matches: r.matches.map(canonicalMatch) }));
}

// --- rules → nft JSON -------------------------------------------------------------------------

type Json = unknown;

function addrElem(c: Cidr): Json {
  const full = c.family === 4 ? 32 : 128;
  return c.prefixLen === full ? c.address : { prefix: { addr: c.address, len: c.prefixLen } };
}

function portElem(p: PortRange): Json {
  return p.start === p.end ? p.start : { range: [p.start, p.end] };
}

/** A single element is written as a value, several as an anonymous set (nft lists them back that way). */
function valueOrSet(elems: Json[]): Json {
  return elems.length === 1 ? elems[0] : { set: elems };
}

function match(left: Json, right: Json): Json {
  return { match: { op: "==", left, right } };
}

export function buildRuleExprs(family: IpFamily, dests: Cidr[], m: FwmarkMatch, mark: number): Json[] {
  const exprs: Json[] = [match({ payload: { protocol: family === 4 ? "ip" : "ip6", field: "daddr" } }, valueOrSet(dests.map(addrElem)))];
  const ports = m.ports.map(portElem);
  if (m.protocol !== undefined && ports.length > 0) {
    exprs.push(match({ payload: { protocol: m.protocol, field: "dport" } }, valueOrSet(ports)));
  } else if (m.protocol !== undefined) {
    exprs.push(match({ meta: { key: "l4proto" } }, m.protocol));
  } else if (ports.length > 0) {
    // th = transport header: the first 4 bytes are source/destination port for tcp, udp and sctp alike.
    exprs.push(match({ meta: { key: "l4proto" } }, { set: [...PROTOCOLS] }));
    exprs.push(match({ payload: { protocol: "th", field: "dport" } }, valueOrSet(ports)));
  }
  exprs.push({ mangle: { key: { meta: { key: "mark" } }, value: mark } });
  exprs.push({ accept: null });
  return exprs;
}

/** The complete transaction replacing lvsfleet's table. Input must be validated. */
export function buildNftDocument(rules: FwmarkRule[], opts: Required<Omit<NftFwmarkOptions, "nft" | "timeoutMs">>): { nftables: Json[] } {
  const t = { family: opts.family, name: opts.table };
  const cmds: Json[] = [
    { add: { table: t } }, // so that the delete below cannot fail when the table is absent
    { delete: { table: t } },
    { add: { table: t } },
    {
      add: {
        chain: { family: opts.family, table: opts.table, name: opts.chain, type: "filter", hook: "prerouting", prio: opts.priority, policy: "accept" },
      },
    },
  ];
  for (const r of canonicalFwmarkRules(rules)) {
    r.matches.forEach((m, i) => {
      const cidrs = m.destinations.map(parseCidr);
      for (const family of [4, 6] as const) {
        const dests = cidrs.filter((c) => c.family === family);
        if (dests.length === 0) continue;
        cmds.push({
          add: {
            rule: { family: opts.family, table: opts.table, chain: opts.chain, comment: `lvsfleet mark=${r.mark} match=${i}`, expr: buildRuleExprs(family, dests, m, r.mark) },
          },
        });
      }
    });
  }
  return { nftables: cmds };
}

// --- nft JSON listing → rules -------------------------------------------------------------------

interface ParsedRule {
  comment?: string;
  family: IpFamily;
  destinations: Array<Cidr | { family: IpFamily; lo: bigint; hi: bigint }>;
  protocol?: FwmarkProtocol;
  ports: PortRange[];
  mark: number;
}

function elems(right: any): any[] {
  return right && typeof right === "object" && Array.isArray(right.set) ? right.set : [right];
}

function parseAddrElem(e: any, family: IpFamily): Cidr | { family: IpFamily; lo: bigint; hi: bigint } {
  if (typeof e === "string" && ipFamily(e) === family) return parseCidr(e);
  if (e && typeof e === "object" && e.prefix && typeof e.prefix.addr === "string" && ipFamily(e.prefix.addr) === family) {
    return parseCidr(`${e.prefix.addr}/${e.prefix.len}`);
  }
  if (e && typeof e === "object" && Array.isArray(e.range) && e.range.every((a: unknown) => typeof a === "string" && ipFamily(a) === family)) {
    return { family, lo: addressToBigInt(e.range[0]), hi: addressToBigInt(e.range[1]) };
  }
  throw new Error(`unrecognised address element ${JSON.stringify(e)}`);
}

function parsePortElem(e: any): PortRange {
  if (Number.isInteger(e)) return { start: e, end: e };
  if (e && typeof e === "object" && Array.isArray(e.range) && e.range.every(Number.isInteger)) return { start: e.range[0], end: e.range[1] };
  throw new Error(`unrecognised port element ${JSON.stringify(e)}`);
}

function isMeta(left: any, key: string): boolean {
  return left && typeof left === "object" && left.meta && left.meta.key === key;
}

/** Parses one rule of ours; throws with a reason when the rule is not in the shape we write. */
function parseRule(rule: any): ParsedRule {
  const exprs: any[] = Array.isArray(rule.expr) ? rule.expr : [];
  let i = 0;
  const next = (): any => exprs[i++];
  const e0 = next();
  const daddr = e0?.match?.left?.payload;
  if (!(e0?.match?.op === "==" && daddr?.field === "daddr" && (daddr.protocol === "ip" || daddr.protocol === "ip6"))) {
    throw new Error("does not start with ip/ip6 daddr ==");
  }
  const family: IpFamily = daddr.protocol === "ip" ? 4 : 6;
  const destinations = elems(e0.match.right).map((e) => parseAddrElem(e, family));
  let protocol: FwmarkProtocol | undefined;
  let ports: PortRange[] = [];
  let e = next();
  const l4 = e?.match;
  if (l4?.op === "==" && isMeta(l4.left, "l4proto")) {
    const protos = elems(l4.right);
    if (protos.length === 1 && PROTOCOLS.includes(protos[0])) {
      protocol = protos[0];
    } else if (protos.length === 3 && PROTOCOLS.every((p) => protos.includes(p))) {
      const th = next()?.match;
      if (!(th?.op === "==" && th.left?.payload?.protocol === "th" && th.left.payload.field === "dport")) throw new Error("l4proto {tcp,udp,sctp} without th dport");
      ports = elems(th.right).map(parsePortElem);
    } else throw new Error(`unexpected l4proto ${JSON.stringify(l4.right)}`);
    e = next();
  } else if (l4?.op === "==" && PROTOCOLS.includes(l4.left?.payload?.protocol) && l4.left.payload.field === "dport") {
    protocol = l4.left.payload.protocol;
    ports = elems(l4.right).map(parsePortElem);
    e = next();
  }
  const mg = e?.mangle;
  if (!(mg && isMeta(mg.key, "mark") && Number.isInteger(mg.value))) throw new Error("no meta mark set");
  const acc = next();
  if (!(acc && "accept" in acc) || i !== exprs.length) throw new Error("does not end with meta mark set ... accept");
  const out: ParsedRule = { family, destinations, ports, mark: mg.value, comment: rule.comment };
  if (protocol !== undefined) out.protocol = protocol;
  return out;
}

/**
 * `nft -j list table` output → installed state. Rules written for one match (one per address
 * family) carry the same comment and are merged back into one match; consecutive matches with the
 * same mark form one FwmarkRule. Anything else is reported in `problems`.
 */
export function parseNftListing(listing: any, opts: Required<Omit<NftFwmarkOptions, "nft" | "timeoutMs">>): FwmarkState {
  const problems: string[] = [];
  const items: any[] = Array.isArray(listing?.nftables) ? listing.nftables : [];
  let chainSeen = false;
  const parsed: ParsedRule[] = [];
  for (const it of items) {
    if (it.metainfo || it.table) continue;
    if (it.chain) {
      const c = it.chain;
      if (c.name !== opts.chain) {
        problems.push(`unexpected chain ${c.name}`);
        continue;
      }
      chainSeen = true;
      if (c.type !== "filter" || c.hook !== "prerouting" || c.prio !== opts.priority || c.policy !== "accept") {
        problems.push(`chain ${c.name} is type ${c.type} hook ${c.hook} prio ${c.prio} policy ${c.policy}, want filter prerouting ${opts.priority} accept`);
      }
      continue;
    }
    if (it.rule) {
      if (it.rule.chain !== opts.chain) {
        problems.push(`rule in unexpected chain ${it.rule.chain}`);
        continue;
      }
      try {
        parsed.push(parseRule(it.rule));
      } catch (e) {
        problems.push(`unrecognised rule (handle ${it.rule.handle}): ${(e as Error).message}`);
      }
      continue;
    }
    problems.push(`unexpected object ${Object.keys(it).join(",")}`);
  }
  if (!chainSeen) problems.push(`chain ${opts.chain} is missing`);

  // Group by comment into matches, then by mark into rules.
  interface Group { mark: number; comment?: string; parts: ParsedRule[] }
  const groups: Group[] = [];
  for (const p of parsed) {
    const last = groups[groups.length - 1];
    const cm = p.comment ? COMMENT_RE.exec(p.comment) : null;
    if (!cm) problems.push(`rule without lvsfleet comment (mark ${p.mark})`);
    else if (Number(cm[1]) !== p.mark) problems.push(`rule "${p.comment}" sets mark ${p.mark}`);
    if (last && cm && last.comment === p.comment && last.mark === p.mark && !last.parts.some((q) => q.family === p.family)) last.parts.push(p);
    else groups.push({ mark: p.mark, comment: cm ? p.comment : undefined, parts: [p] });
  }
  const rules: FwmarkRule[] = [];
  for (const g of groups) {
    const [first, ...rest] = g.parts;
    for (const o of rest) {
      if (o.protocol !== first.protocol || JSON.stringify(canonicalPorts(o.ports)) !== JSON.stringify(canonicalPorts(first.ports))) {
        problems.push(`IPv4 and IPv6 rules of "${g.comment}" differ in protocol or ports`);
      }
    }
    const m: FwmarkMatch = {
      destinations: canonicalCidrList(g.parts.flatMap((p) => p.destinations)).map(formatCidr),
      ports: canonicalPorts(first.ports),
    };
    if (first.protocol !== undefined) m.protocol = first.protocol;
    const last = rules[rules.length - 1];
    if (last && last.mark === g.mark) last.matches.push(m);
    else rules.push({ mark: g.mark, matches: [m] });
  }
  return { rules, problems };
}

// --- the adapter ------------------------------------------------------------------------------

export class NftFwmarkManager implements FwmarkManager {
  private readonly nft: string;
  private readonly timeoutMs: number;
  readonly opts: Required<Omit<NftFwmarkOptions, "nft" | "timeoutMs">>;

  constructor(opts: NftFwmarkOptions = {}) {
    this.nft = opts.nft ?? "nft";
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.opts = { family: opts.family ?? "inet", table: opts.table ?? "lvsfleet", chain: opts.chain ?? "prerouting", priority: opts.priority ?? -150 };
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.opts.table) || !/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.opts.chain)) {
      throw new TypeError("table and chain names must be identifiers");
    }
  }

  async apply(rules: FwmarkRule[]): Promise<void> {
    validateFwmarkRules(rules);
    await this.runTransaction("apply", buildNftDocument(rules, this.opts));
  }

  async clear(): Promise<void> {
    const t = { family: this.opts.family, name: this.opts.table };
    await this.runTransaction("clear", { nftables: [{ add: { table: t } }, { delete: { table: t } }] });
  }

  async read(): Promise<FwmarkState | undefined> {
    const r = await this.run("read", ["-j", "list", "table", this.opts.family, this.opts.table]);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return undefined;
      throw new NftError("read", r.stderr.trim() || `exit ${r.code}`, r.code, r.stderr);
    }
    let listing: unknown;
    try {
      listing = JSON.parse(r.stdout);
    } catch (e) {
      throw new NftError("read", `unparsable JSON: ${(e as Error).message}`, r.code, r.stderr);
    }
    return parseNftListing(listing, this.opts);
  }

  /** Submits one JSON document as one `nft -f` run = one kernel transaction (all or nothing). */
  async runTransaction(operation: string, doc: { nftables: unknown[] }): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), "lvsfleet-nft-"));
    try {
      const file = join(dir, "ruleset.json");
      await writeFile(file, JSON.stringify(doc), { mode: 0o600 });
      const r = await this.run(operation, ["-j", "-f", file]);
      if (r.code !== 0) throw new NftError(operation, r.stderr.trim() || `exit ${r.code}`, r.code, r.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private run(operation: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      execFile(this.nft, args, { timeout: this.timeoutMs, maxBuffer: 256 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === "string") {
          const code = (err as NodeJS.ErrnoException).code;
          reject(new NftError(operation, code === "ENOENT" ? `${this.nft} not found (install the nftables package)` : err.message, null, stderr ?? ""));
          return;
        }
        if (err && (err as { killed?: boolean }).killed) {
          reject(new NftError(operation, `timed out after ${this.timeoutMs} ms`, null, stderr ?? ""));
          return;
        }
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
  }
}
