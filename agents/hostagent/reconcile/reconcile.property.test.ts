// Properties over random hosts: from any kernel state (foreign objects, what an earlier desired state
// left, changes behind the agent's back), executing the plan on the kernel model
//  - never fails (order and minimality are right: no EEXIST/ESRCH/ENOENT),
//  - makes the kernel hold exactly the desired state, foreign objects untouched,
//  - obeys the ordering rules, and a second reconcile is empty.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addressKey, destinationKey, emptyOwned, fouKey, nextOwned, reconcile, serviceKey } from "./index.js";
import { KernelModel, orderingViolations } from "./testing.js";
import type { DesiredHost, DestinationSpec, FwmarkRule, ServiceSpec, ServiceState, Vip } from "./types.js";

const VIPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1", "2001:db8::2"];
const RSS = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "2001:db8:1::1", "2001:db8:1::2"];
const FOREIGN_VIPS = ["203.0.113.1", "203.0.113.2", "2001:db8:f::1"];

const destArb = (v6: boolean): fc.Arbitrary<DestinationSpec> =>
  fc.record({
    address: fc.constantFrom(...RSS.filter((a) => a.includes(":") === v6)),
    port: fc.constantFrom(80, 8080),
    forward: fc.constantFrom("masq" as const, "route" as const, "tunnel" as const),
    weight: fc.integer({ min: 0, max: 5 }),
    upperThreshold: fc.constantFrom(0, 100),
    lowerThreshold: fc.constant(0),
  }).map((d) => ({ ...d, family: v6 ? ("ipv6" as const) : ("ipv4" as const), tunnelType: "ipip" as const, tunnelPort: 0, tunnelFlags: 0 }));

const serviceArb = (vips: string[]): fc.Arbitrary<ServiceState> =>
  fc
    .record({
      fwmark: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      address: fc.constantFrom(...vips),
      protocol: fc.constantFrom("tcp" as const, "udp" as const),
      port: fc.constantFrom(0, 80, 443),
      scheduler: fc.constantFrom("rr", "wlc", "sh"),
      persistent: fc.boolean(),
    })
    .chain((s) => {
      const v6 = s.address.includes(":");
      const family = v6 ? ("ipv6" as const) : ("ipv4" as const);
      const service: ServiceSpec = s.fwmark
        ? { family, fwmark: s.fwmark, scheduler: s.scheduler, flags: s.persistent ? 1 : 0, timeout: s.persistent ? 300 : 0, netmask: v6 ? 128 : 0xffffffff }
        : { family, protocol: s.protocol, address: s.address, port: s.port, scheduler: s.scheduler, flags: s.persistent ? 1 : 0, timeout: s.persistent ? 300 : 0, netmask: v6 ? 128 : 0xffffffff };
      return fc.uniqueArray(destArb(v6), { maxLength: 4, selector: destinationKey }).map((destinations) => ({ service, destinations }));
    });

const SYSCTL_KEYS = ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce", "net.ipv4.conf.tunl0.rp_filter", "net.ipv4.vs.expire_nodest_conn"];

const desiredArb: fc.Arbitrary<DesiredHost> = fc
  .record({
    services: fc.uniqueArray(serviceArb(VIPS), { maxLength: 5, selector: (s) => serviceKey(s.service) }),
    vips: fc.uniqueArray(fc.record({ ifname: fc.constantFrom("lo", "tunl0"), address: fc.constantFrom(...VIPS) }), { maxLength: 4, selector: addressKey }),
    sysctls: fc.uniqueArray(fc.record({ key: fc.constantFrom(...SYSCTL_KEYS), value: fc.constantFrom("0", "1", "2") }), { maxLength: 4, selector: (s) => s.key }),
    tunnel: fc.boolean(),
    marks: fc.uniqueArray(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    timeouts: fc.option(fc.record({ tcp: fc.constantFrom(0, 900, 7200), tcpFin: fc.constantFrom(0, 60), udp: fc.constant(0) }), { nil: undefined }),
    fou: fc.uniqueArray(fc.record({ port: fc.constantFrom(5555, 6080), family: fc.constantFrom("ipv4" as const, "ipv6" as const) }), { maxLength: 3, selector: fouKey }),
  })
  .map((r) => {
    const tunnel = r.tunnel || r.vips.some((v) => v.ifname === "tunl0");
    const fwmarkRules: FwmarkRule[] = [...new Set([...r.marks, ...r.services.flatMap((s) => (s.service.fwmark ? [s.service.fwmark] : []))])]
      .sort((a, b) => a - b)
      .map((mark) => ({ mark, matches: [{ destinations: [`198.18.0.${mark}/32`], protocol: "tcp", ports: [{ start: 80, end: 80 }] }] }));
    const d: DesiredHost = {
      services: r.services,
      addresses: r.vips.map((v): Vip => ({ ...v, prefixLen: v.address.includes(":") ? 128 : 32 })),
      fwmarkRules,
      sysctls: r.sysctls,
      tunnels: tunnel ? [{ name: "tunl0", type: "ipip" }] : [],
    };
    if (r.timeouts) d.timeouts = r.timeouts;
    if (r.fou.length > 0) d.fouPorts = r.fou;
    return d;
  });

/** Someone with ipvsadm / ip / sysctl, behind the agent's back. */
type Mutation =
  | { m: "weight"; i: number; w: number }
  | { m: "scheduler"; i: number; s: string }
  | { m: "delDest"; i: number }
  | { m: "delService"; i: number }
  | { m: "addDest"; i: number; d: DestinationSpec }
  | { m: "sysctl"; i: number; v: string }
  | { m: "delAddr"; i: number }
  | { m: "fwmark" }
  | { m: "delFou"; i: number }
  | { m: "fouDirect"; i: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ m: fc.constant("weight" as const), i: fc.nat(), w: fc.integer({ min: 0, max: 9 }) }),
  fc.record({ m: fc.constant("scheduler" as const), i: fc.nat(), s: fc.constantFrom("rr", "lc", "wlc") }),
  fc.record({ m: fc.constant("delDest" as const), i: fc.nat() }),
  fc.record({ m: fc.constant("delService" as const), i: fc.nat() }),
  fc.record({ m: fc.constant("addDest" as const), i: fc.nat(), d: destArb(false) }),
  fc.record({ m: fc.constant("sysctl" as const), i: fc.nat(), v: fc.constantFrom("0", "5") }),
  fc.record({ m: fc.constant("delAddr" as const), i: fc.nat() }),
  fc.record({ m: fc.constant("fwmark" as const) }),
  fc.record({ m: fc.constant("delFou" as const), i: fc.nat() }),
  fc.record({ m: fc.constant("fouDirect" as const), i: fc.nat() }),
);

function mutate(k: KernelModel, mut: Mutation, foreignKeys: Set<string>): void {
  const own = [...k.services.entries()].filter(([key]) => !foreignKeys.has(key));
  const pick = <T>(xs: T[], i: number): T | undefined => (xs.length ? xs[i % xs.length] : undefined);
  switch (mut.m) {
    case "weight": {
      const d = pick(own.flatMap(([, s]) => [...s.destinations.values()]), mut.i);
      if (d) d.weight = mut.w;
      return;
    }
    case "scheduler": {
      const s = pick(own, mut.i);
      if (s) s[1].service.scheduler = mut.s;
      return;
    }
    case "delDest": {
      const s = pick(own, mut.i);
      const dk = s && pick([...s[1].destinations.keys()], mut.i);
      if (dk) s[1].destinations.delete(dk);
      return;
    }
    case "delService": {
      const s = pick(own, mut.i);
      if (s) k.services.delete(s[0]);
      return;
    }
    case "addDest": {
      const s = pick(own.filter(([, x]) => x.service.family === "ipv4"), mut.i);
      if (s && !s[1].destinations.has(destinationKey(mut.d))) s[1].destinations.set(destinationKey(mut.d), mut.d);
      return;
    }
    case "sysctl": {
      const key = pick([...k.sysctls.keys()], mut.i);
      if (key) k.sysctls.set(key, mut.v);
      return;
    }
    case "delAddr": {
      const a = pick([...k.addresses.entries()].filter(([, x]) => x.owned), mut.i);
      if (a) k.addresses.delete(a[0]);
      return;
    }
    case "fwmark":
      if (k.fwmark) k.fwmark = { rules: k.fwmark.rules, problems: ["hand-added rule"] };
      return;
    case "delFou": {
      const key = pick([...k.fou.keys()].filter((x) => x !== FOREIGN_FOU), mut.i);
      if (key) k.fou.delete(key);
      return;
    }
    case "fouDirect": {
      const p = pick([...k.fou.values()].filter((x) => fouKey(x) !== FOREIGN_FOU), mut.i);
      if (p) k.fou.set(fouKey(p), { port: p.port, family: p.family, encap: "direct", ipproto: 4 });
      return;
    }
  }
}

const foreignArb = fc.uniqueArray(serviceArb(FOREIGN_VIPS), { maxLength: 2, selector: (s) => serviceKey(s.service) }).map((xs) => xs.filter((s) => !s.service.fwmark));

function newKernel(foreign: ServiceState[]): KernelModel {
  const k = new KernelModel();
  for (const f of foreign) k.addService(f);
  k.addresses.set("lo 127.0.0.1", { ifname: "lo", address: "127.0.0.1", prefixLen: 8, owned: false });
  for (const a of FOREIGN_VIPS) k.addresses.set(`lo ${a}`, { ifname: "lo", address: a, prefixLen: a.includes(":") ? 128 : 32, owned: false });
  for (const key of SYSCTL_KEYS) k.sysctls.set(key, "0");
  k.fou.set(FOREIGN_FOU, { port: 7777, family: "ipv4", encap: "gue" }); // someone's `ip fou add port 7777 gue`
  return k;
}

const FOREIGN_FOU = "ipv4 7777";

function snapshotForeign(k: KernelModel, foreign: ServiceState[]) {
  return {
    services: foreign.map((f) => JSON.stringify([...(k.services.get(serviceKey(f.service))?.destinations.entries() ?? [])])),
    addresses: [...k.addresses.values()].filter((a) => !a.owned),
    fou: k.fou.get(FOREIGN_FOU),
  };
}

function expectHolds(k: KernelModel, d: DesiredHost, foreign: ServiceState[], foreignBefore: ReturnType<typeof snapshotForeign>): void {
  const foreignKeys = new Set(foreign.map((f) => serviceKey(f.service)));
  const ours = [...k.services.entries()].filter(([key]) => !foreignKeys.has(key));
  expect(ours.map(([key]) => key).sort()).toEqual(d.services.map((s) => serviceKey(s.service)).sort());
  for (const s of d.services) {
    const got = k.services.get(serviceKey(s.service))!;
    expect({ ...got.service, flags: got.service.flags & ~2 }).toEqual(s.service);
    expect([...got.destinations.values()].sort((a, b) => destinationKey(a).localeCompare(destinationKey(b)))).toEqual(
      [...s.destinations].sort((a, b) => destinationKey(a).localeCompare(destinationKey(b))),
    );
  }
  expect([...k.addresses.values()].filter((a) => a.owned).map((a) => addressKey(a)).sort()).toEqual(d.addresses.map(addressKey).sort());
  for (const s of d.sysctls) expect(k.sysctls.get(s.key)).toBe(s.value);
  expect(k.fwmark?.rules ?? []).toEqual(d.fwmarkRules);
  for (const t of d.tunnels) expect(k.links.get(t.name)?.up).toBe(true);
  // Desired fou ports are GUE ports; a port someone turned direct after lvsfleet stopped needing it is theirs.
  const wantFou = new Set((d.fouPorts ?? []).map(fouKey));
  expect([...k.fou.values()].filter((p) => fouKey(p) !== FOREIGN_FOU && (p.encap === "gue" || wantFou.has(fouKey(p)))).map((p) => `${fouKey(p)} ${p.encap}`).sort()).toEqual(
    [...wantFou].map((x) => `${x} gue`).sort(),
  );
  expect(snapshotForeign(k, foreign)).toEqual(foreignBefore);
}

describe("reconcile: properties", () => {
  it("from any earlier state, with drift, the plan converges, is ordered, touches no foreign object, and is idempotent", () => {
    fc.assert(
      fc.property(desiredArb, desiredArb, foreignArb, fc.array(mutationArb, { maxLength: 4 }), (before, after, foreign, muts) => {
        const k = newKernel(foreign);
        const foreignKeys = new Set(foreign.map((f) => serviceKey(f.service)));
        const p1 = reconcile(before, k.observe(), emptyOwned());
        expect(orderingViolations(p1.ops)).toEqual([]);
        const r1 = k.run(p1.ops);
        expect(r1.errors.map((e) => e.message)).toEqual([]);
        let owned = nextOwned(emptyOwned(), before, p1, r1.failed).owned;
        for (const m of muts) mutate(k, m, foreignKeys);
        const foreignBefore = snapshotForeign(k, foreign);

        const p2 = reconcile(after, k.observe(), owned);
        expect(orderingViolations(p2.ops)).toEqual([]);
        for (const op of p2.ops) expect(op.object.includes("203.0.113.") || op.object.includes("2001:db8:f::")).toBe(false);
        const r2 = k.run(p2.ops);
        expect(r2.errors.map((e) => e.message)).toEqual([]);
        owned = nextOwned(owned, after, p2, r2.failed).owned;
        expectHolds(k, after, foreign, foreignBefore);
        expect(p2.foreign.map((f) => f.object).filter((o) => !o.startsWith("fou ")).sort()).toEqual(foreign.map((f) => `ipvs-service ${serviceKey(f.service)}`).sort());
        expect(p2.foreign.map((f) => f.object)).toContain("fou ipv4 port 7777");

        const p3 = reconcile(after, k.observe(), owned);
        expect(p3.ops).toEqual([]);
        expect(p3.drift).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it("without changes behind its back, re-applying what was applied finds no drift and writes nothing", () => {
    fc.assert(
      fc.property(desiredArb, foreignArb, (d, foreign) => {
        const k = newKernel(foreign);
        const p1 = reconcile(d, k.observe(), emptyOwned());
        const r1 = k.run(p1.ops);
        expect(p1.drift).toEqual([]);
        const owned = nextOwned(emptyOwned(), d, p1, r1.failed).owned;
        const p2 = reconcile(d, k.observe(), owned);
        expect(p2).toEqual({ ops: [], drift: [], foreign: p1.foreign, adopted: [] });
      }),
      { numRuns: 300 },
    );
  });

  it("every change behind the agent's back to an owned object is reported as drift and repaired", () => {
    fc.assert(
      fc.property(desiredArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (d, muts) => {
        const k = newKernel([]);
        const p1 = reconcile(d, k.observe(), emptyOwned());
        const owned = nextOwned(emptyOwned(), d, p1, k.run(p1.ops).failed).owned;
        const before = JSON.stringify(k.observe(), (_k, v) => (v instanceof Map ? [...v] : v));
        for (const m of muts) mutate(k, m, new Set());
        const after = JSON.stringify(k.observe(), (_k, v) => (v instanceof Map ? [...v] : v));
        const p2 = reconcile(d, k.observe(), owned);
        // Drift exactly when the kernel differs (sysctl mutations of keys not desired are not ours).
        const ownedChanged = p2.ops.length > 0;
        expect(p2.drift.length > 0).toBe(ownedChanged);
        if (before === after) expect(p2.ops).toEqual([]);
        // Adopting an unmarked VIP aside, every repaired object is named in the drift.
        const drifted = new Set(p2.drift.map((x) => x.object));
        for (const op of p2.ops) {
          if (op.kind === "service-add" || op.kind === "service-edit" || op.kind === "sysctl-set" || op.kind === "fwmark-apply" || op.kind === "fou-add" || op.kind === "fou-del") expect(drifted.has(op.object)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
