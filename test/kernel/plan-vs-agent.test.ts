// Plan vs what the agent really does on a real kernel (Debian 6.1 in the VM): a chain of topology
// changes (add a service with its VIP, another one, a weight change, a scheduler change, nothing,
// remove a service with its VIP, swap a real server, a fwmark service with its nftables rule, the
// site's IPVS timeouts, remove everything) is planned on the host with
// the pure planner (plan/planSite: compile before and after, diff per host), and the compiled desired
// states are applied one after the other by the host agent's LinuxBackend inside the VM
// (guest/agent-backend.ts, one agent process for the whole chain). Between applies the kernel is read
// with the oracles (`ipvsadm -Sn`, `ip -j addr show dev lo`, `sysctl`, `nft list table`,
// `ipvsadm -L --timeout`), and for each change:
//  - every planned IPVS service / destination / VIP / fwmark rule item happened in the kernel, with the planned new
//    values (scheduler, weight, forward method), and nothing else changed there;
//  - every sysctl and IPVS timeout that changed was planned, and planned values hold afterwards;
//  - the agent's cycle did work exactly when the plan for the Director was non-empty.
import { create, toBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { FirewallMarkSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { compileSite, type SiteTopology } from "../../services/controlplane/compile/index.js";
import { director, fmName, rs, site, topology, vs } from "../../services/controlplane/compile/testing.js";
import { planSite, type PlanDiff } from "../../services/controlplane/plan/index.js";
import { bundleForGuest, mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import type { AgentStep } from "./guest/agent-backend.js";

const HOST = "director";
const VIPS = ["192.0.2.100/32", "192.0.2.101/32", "192.0.2.102/32"];
// The Director's interface is a dummy device the test makes (lvsp0, 203.0.113.1/24). None holds
// 192.0.2.0/24: the compiler puts the VIPs on lo.
const DIRECTOR = director(HOST, { lvsp0: ["203.0.113.1/24"] });

// Mark 5: tcp 80 and 443 to 192.0.2.102 (port affinity), an IPVS fwmark service on it.
const MARK = create(FirewallMarkSchema, { name: fmName("m5"), mark: 5, matches: [{ destinations: ["192.0.2.102"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] });
const nat = (vsId: string, id: string, address: string, port: number, weight = 1) => rs(vsId, id, { address, port, weight, forwardMethod: ForwardMethod.NAT });
const web = (scheduler = "wlc") => vs("web", { address: "192.0.2.100", port: 80, scheduler, directors: [HOST] });
const api = vs("api", { address: "192.0.2.101", port: 443, scheduler: "rr", directors: [HOST] });

const T = {
  empty: topology({ hosts: [DIRECTOR] }),
  web: topology({ hosts: [DIRECTOR], virtualServices: [web()], realServers: [nat("web", "rs1", "198.51.100.11", 80), nat("web", "rs2", "198.51.100.12", 80)] }),
  webApi: topology({
    hosts: [DIRECTOR],
    virtualServices: [web(), api],
    realServers: [nat("web", "rs1", "198.51.100.11", 80), nat("web", "rs2", "198.51.100.12", 80), nat("api", "a1", "198.51.100.11", 8443)],
  }),
  weight: topology({
    hosts: [DIRECTOR],
    virtualServices: [web(), api],
    realServers: [nat("web", "rs1", "198.51.100.11", 80), nat("web", "rs2", "198.51.100.12", 80, 3), nat("api", "a1", "198.51.100.11", 8443)],
  }),
  scheduler: topology({
    hosts: [DIRECTOR],
    virtualServices: [web("rr"), api],
    realServers: [nat("web", "rs1", "198.51.100.11", 80), nat("web", "rs2", "198.51.100.12", 80, 3), nat("api", "a1", "198.51.100.11", 8443)],
  }),
  noApi: topology({ hosts: [DIRECTOR], virtualServices: [web("rr")], realServers: [nat("web", "rs1", "198.51.100.11", 80), nat("web", "rs2", "198.51.100.12", 80, 3)] }),
  swap: topology({ hosts: [DIRECTOR], virtualServices: [web("rr")], realServers: [nat("web", "rs2", "198.51.100.12", 80, 3), nat("web", "rs3", "198.51.100.13", 8080, 2)] }),
  fwmark: topology({
    hosts: [DIRECTOR],
    firewallMarks: [MARK],
    virtualServices: [web("rr"), vs("fw", { fwmark: 5, scheduler: "rr", directors: [HOST] })],
    realServers: [nat("web", "rs2", "198.51.100.12", 80, 3), nat("web", "rs3", "198.51.100.13", 8080, 2), nat("fw", "f1", "198.51.100.11", 80)],
  }),
  timeouts: topology({
    // Not the kernel defaults (900 120 300), so the agent has to write them.
    site: site({ ipvsTimeouts: { tcpSeconds: 7200, tcpFinSeconds: 60, udpSeconds: 120 } }),
    hosts: [DIRECTOR],
    firewallMarks: [MARK],
    virtualServices: [web("rr"), vs("fw", { fwmark: 5, scheduler: "rr", directors: [HOST] })],
    realServers: [nat("web", "rs2", "198.51.100.12", 80, 3), nat("web", "rs3", "198.51.100.13", 8080, 2), nat("fw", "f1", "198.51.100.11", 80)],
  }),
} satisfies Record<string, SiteTopology>;

/** The chain of changes: [name, from, to]. */
const CHAIN: Array<[string, SiteTopology, SiteTopology]> = [
  ["add a service and its VIP", T.empty, T.web],
  ["add a second service (port remap, NAT) and its VIP", T.web, T.webApi],
  ["weight change", T.webApi, T.weight],
  ["scheduler change", T.weight, T.scheduler],
  ["no change", T.scheduler, T.scheduler],
  ["remove a service and its VIP", T.scheduler, T.noApi],
  ["remove one real server, add another", T.noApi, T.swap],
  ["add a fwmark service, its nftables mark rule and VIP", T.swap, T.fwmark],
  ["set the site's IPVS timeouts (ipvsadm --set)", T.fwmark, T.timeouts],
  ["remove everything", T.timeouts, T.empty],
];

const desiredOf = (t: SiteTopology, revision: bigint): HostDesiredState =>
  compileSite(t, revision).get(HOST) ?? create(HostDesiredStateSchema, { site: t.site.name.split("/")[1], host: HOST, revision });
const b64 = (d: HostDesiredState) => Buffer.from(toBinary(HostDesiredStateSchema, d)).toString("base64");

interface Cycle {
  errors: { object: string; operation: string; message: string }[];
  ops: number;
  writes: number;
  thrown?: string;
}

/** What the oracles show after one apply. */
interface KernelView {
  /** "TCP 192.0.2.100:80" / "TCP 192.0.2.100:80 -> 198.51.100.11:80" → the ipvsadm -Sn line. */
  ipvs: Map<string, string>;
  /** "192.0.2.100/32 dev lo" of the addresses lvsfleet put on lo (label lo:lvsf). */
  vips: Set<string>;
  sysctls: Map<string, string>;
  /** Marks set by the lvsfleet nftables table. */
  marks: Set<number>;
  /** "tcp tcpfin udp" of ipvsadm -L --timeout. */
  timeouts: string;
}

const PROTO: Record<string, string> = { "-t": "TCP", "-u": "UDP", "--sctp-service": "SCTP" };

function parseSave(save: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of save.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const w = line.split(/\s+/);
    const svc = w[1] === "-f" ? `FWM ${w[2]}` : `${PROTO[w[1]!] ?? w[1]} ${w[2]}`;
    if (w[0] === "-A") out.set(svc, line);
    else if (w[0] === "-a") out.set(`${svc} -> ${w[w.indexOf("-r") + 1]}`, line);
    else throw new Error(`unexpected ipvsadm -Sn line ${line}`);
  }
  return out;
}

function parseVips(json: string): Set<string> {
  const info = (JSON.parse(json) as { addr_info: { local: string; prefixlen: number; label?: string }[] }[])[0]?.addr_info ?? [];
  return new Set(info.filter((a) => a.label === "lo:lvsf" || (a.local.includes(":") && a.local.startsWith("2001:db8"))).map((a) => `${a.local}/${a.prefixlen} dev lo`));
}

function parseSysctls(out: string): Map<string, string> {
  return new Map(
    out
      .split("\n")
      .filter((l) => l.includes(" = "))
      .map((l) => {
        const [k, v] = l.split(" = ");
        return [k!.trim(), v!.trim()] as [string, string];
      }),
  );
}

function parseMarks(nft: string): Set<number> {
  return new Set([...nft.matchAll(/mark set (0x[0-9a-f]+|\d+)/g)].map((m) => Number(m[1])));
}

function parseTimeouts(out: string): string {
  const m = /Timeout \(tcp tcpfin udp\): (\d+) (\d+) (\d+)/.exec(out);
  if (!m) throw new Error(`unexpected ipvsadm -L --timeout output ${out}`);
  return `${m[1]} ${m[2]} ${m[3]}`;
}

/** The kernel's change from one view to the next, as plan-like "ACTION kind object" strings. */
function kernelChanges(a: KernelView, b: KernelView): string[] {
  const out: string[] = [];
  for (const k of new Set([...a.ipvs.keys(), ...b.ipvs.keys()])) {
    const kind = k.includes(" -> ") ? "ipvs-destination" : "ipvs-service";
    const x = a.ipvs.get(k);
    const y = b.ipvs.get(k);
    if (x === undefined) out.push(`ADD ${kind} ${k}`);
    else if (y === undefined) out.push(`REMOVE ${kind} ${k}`);
    else if (x !== y) out.push(`CHANGE ${kind} ${k}`);
  }
  for (const v of b.vips) if (!a.vips.has(v)) out.push(`ADD address ${v}`);
  for (const v of a.vips) if (!b.vips.has(v)) out.push(`REMOVE address ${v}`);
  for (const m of b.marks) if (!a.marks.has(m)) out.push(`ADD fwmark-rule mark ${m}`);
  for (const m of a.marks) if (!b.marks.has(m)) out.push(`REMOVE fwmark-rule mark ${m}`);
  return out.sort();
}

const FORWARD: Record<string, string> = { masq: "-m", route: "-g", tunnel: "-i" };

/** The planned new values of an ADD / CHANGE item, checked against its ipvsadm line. */
function expectPlannedValues(d: PlanDiff, line: string): void {
  for (const part of d.after.split(", ")) {
    const [field, value] = part.split(" ");
    if (field === "scheduler") expect(line, d.object).toContain(` -s ${value}`);
    if (field === "weight") expect(line, d.object).toMatch(new RegExp(` -w ${value}( |$)`));
    if (field === "forward") expect(line, d.object).toContain(` ${FORWARD[value!]} `);
  }
}

let target: KernelTarget;
let entry: string;
let stateDir: string;

const CLEAN = `ipvsadm -C; ipvsadm --set 900 120 300; nft delete table inet lvsfleet 2>/dev/null; for a in ${VIPS.join(" ")}; do ip addr del $a dev lo 2>/dev/null; done; ip link del lvsp0 2>/dev/null; true`;
const SETUP = `set -e; ip link add lvsp0 type dummy; ip addr add 203.0.113.1/24 dev lvsp0; ip link set lvsp0 up`;

beforeAll(async () => {
  target = await kernelTarget();
  entry = await bundleForGuest("test/kernel/guest/agent-backend.ts");
  stateDir = join(target.shareDir, `plan-agent-state-${randomUUID()}`);
  await mustExec(target, CLEAN);
  await mustExec(target, SETUP);
});
afterAll(async () => {
  await target?.exec(CLEAN);
});

describe("plan vs the agent on a real kernel", () => {
  it("every planned kernel change is applied by the agent, and nothing unplanned", async () => {
    // The sysctl keys any of the states sets, read after every apply.
    const keys = new Set<string>();
    const states = [T.empty, ...CHAIN.map(([, , to]) => to)].map((t, i) => desiredOf(t, BigInt(i + 1)));
    for (const d of states) for (const s of d.sysctls) keys.add(s.key);
    const read: AgentStep[] = [
      { do: "exec", cmd: "ipvsadm -Sn" },
      { do: "exec", cmd: "ip -j addr show dev lo" },
      { do: "exec", cmd: keys.size ? `sysctl ${[...keys].join(" ")}` : "true" },
      { do: "exec", cmd: "nft list table inet lvsfleet 2>/dev/null; true" },
      { do: "exec", cmd: "ipvsadm -L --timeout" },
    ];
    const steps: AgentStep[] = [];
    for (const d of states) steps.push({ do: "apply", desired: b64(d) }, ...read);
    const file = join(target.shareDir, `plan-agent-steps-${randomUUID()}.json`);
    await writeFile(file, JSON.stringify(steps));
    const out = await mustExec(target, `node ${entry} ${file} ${stateDir}`, { timeoutMs: 360_000 });
    const { results } = JSON.parse(out) as { results: unknown[] };
    for (const r of results) if (r && typeof r === "object" && "thrown" in r) throw new Error(`guest step threw: ${(r as Cycle).thrown}`);

    const cycles: Cycle[] = [];
    const views: KernelView[] = [];
    const stride = 1 + read.length;
    for (let i = 0; i < results.length; i += stride) {
      const c = results[i] as Cycle;
      expect(c.errors).toEqual([]);
      cycles.push(c);
      views.push({
        ipvs: parseSave(results[i + 1] as string),
        vips: parseVips(results[i + 2] as string),
        sysctls: parseSysctls(results[i + 3] as string),
        marks: parseMarks(results[i + 4] as string),
        timeouts: parseTimeouts(results[i + 5] as string),
      });
    }
    // The start: an empty Director, nothing of ours in the kernel.
    expect([...views[0]!.ipvs.keys()]).toEqual([]);
    expect([...views[0]!.vips]).toEqual([]);

    const checked: string[] = [];
    CHAIN.forEach(([name, from, to], i) => {
      const plan = planSite(from, to);
      const items = plan.hosts.get(HOST) ?? [];
      const before = views[i]!;
      const after = views[i + 1]!;
      const planned = items
        .filter((d) => d.kind === "ipvs-service" || d.kind === "ipvs-destination" || d.kind === "address" || (d.kind === "fwmark-rule" && d.action !== "CHANGE"))
        .map((d) => `${d.action} ${d.kind} ${d.object}`)
        .sort();
      // Every planned item happened, and nothing else (IPVS table and VIPs).
      expect(kernelChanges(before, after), name).toEqual(planned);
      for (const d of items) {
        if ((d.kind === "ipvs-service" || d.kind === "ipvs-destination") && d.action !== "REMOVE") expectPlannedValues(d, after.ipvs.get(d.object)!);
      }
      // Sysctls: every value that moved was planned; planned values hold.
      const sysItems = new Map(items.filter((d) => d.kind === "sysctl").map((d) => [d.object, d]));
      for (const [k, v] of after.sysctls) {
        if (before.sysctls.get(k) !== v) expect(sysItems.has(k), `${name}: sysctl ${k} changed ${before.sysctls.get(k)} → ${v} unplanned`).toBe(true);
      }
      for (const d of sysItems.values()) if (d.action !== "REMOVE") expect(after.sysctls.get(d.object), `${name}: ${d.object}`).toBe(d.after);
      // IPVS timeouts: a kernel change was planned; planned values hold.
      const tItem = items.find((d) => d.kind === "ipvs-timeouts");
      if (before.timeouts !== after.timeouts) expect(tItem, `${name}: timeouts ${before.timeouts} → ${after.timeouts} unplanned`).toBeDefined();
      if (tItem && tItem.action !== "REMOVE") {
        const v = Object.fromEntries(tItem.after.split(", ").map((p) => p.split(" ") as [string, string]));
        const [tcp, fin, udp] = after.timeouts.split(" ");
        for (const [k, got] of [["tcp", tcp], ["tcpfin", fin], ["udp", udp]] as const) if (k in v) expect(got, `${name}: timeout ${k}`).toBe(v[k]);
      }
      // The agent worked exactly when the plan had something for the Director.
      const cycle = cycles[i + 1]!;
      if (items.length === 0) expect(cycle.writes, name).toBe(0);
      else expect(cycle.ops, name).toBeGreaterThan(0);
      checked.push(`${name}: ${planned.length} items`);
    });
    // The chain covered what it says (a plan that lists nothing would pass the checks above vacuously).
    const all = CHAIN.map(([, from, to]) => (planSite(from, to).hosts.get(HOST) ?? []).map((d) => `${d.action} ${d.kind}`)).flat();
    for (const want of [
      "ADD ipvs-service",
      "REMOVE ipvs-service",
      "CHANGE ipvs-service",
      "ADD ipvs-destination",
      "REMOVE ipvs-destination",
      "CHANGE ipvs-destination",
      "ADD address",
      "REMOVE address",
      "ADD fwmark-rule",
      "REMOVE fwmark-rule",
      "ADD ipvs-timeouts",
    ]) {
      expect(all).toContain(want);
    }
    expect(checked).toHaveLength(CHAIN.length);
  }, 400_000); // one agent process through 10 states on a 2-core host shared with the other tests
});
