import { clone, create, equals } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { FirewallMarkMatchSchema, NetworkInterfaceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, HostRole, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { affectedHosts, compileSite, hashDesiredState, type SiteTopology } from "./compile.js";
import { build, hex, hostName, rng, shuffled, topoSpecArb } from "./testing.js";

/** Same topology, every list (and nested list whose order carries no meaning) in another order. */
function shuffleTopology(t: SiteTopology, seed: number): SiteTopology {
  const r = rng(seed);
  const c = structuredClone(t);
  return {
    site: c.site,
    hosts: shuffled(c.hosts, r).map((h) => {
      h.interfaces = shuffled(h.interfaces, r).map((i) => create(NetworkInterfaceSchema, { name: i.name, addresses: shuffled(i.addresses, r) }));
      h.addresses = shuffled(h.addresses, r);
      return h;
    }),
    virtualServices: shuffled(c.virtualServices, r).map((v) => {
      v.directors = shuffled(v.directors, r);
      v.schedulerFlags = shuffled(v.schedulerFlags, r);
      return v;
    }),
    realServers: shuffled(c.realServers, r),
    firewallMarks: shuffled(c.firewallMarks, r).map((f) => {
      f.matches = shuffled(f.matches, r).map((m) =>
        create(FirewallMarkMatchSchema, { destinations: shuffled(m.destinations, r), protocol: m.protocol, ports: shuffled(m.ports, r) }),
      );
      return f;
    }),
  };
}

function withoutStamp(s: HostDesiredState): HostDesiredState {
  const c = clone(HostDesiredStateSchema, s);
  c.revision = 0n;
  c.hash = "";
  return c;
}

const RUNS = { numRuns: 150 };

// --- properties ---------------------------------------------------------------------------------------

describe("compileSite properties", () => {
  it("input order does not matter: shuffled topologies compile to equal states and equal hashes", () => {
    fc.assert(
      fc.property(topoSpecArb, fc.integer(), (spec, seed) => {
        const t = build(spec);
        const a = compileSite(t, 5n);
        const b = compileSite(shuffleTopology(t, seed), 5n);
        expect([...b.keys()]).toEqual([...a.keys()]);
        for (const [id, s] of a) {
          expect(b.get(id)!.hash).toBe(s.hash);
          expect(equals(HostDesiredStateSchema, b.get(id)!, s)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it("the revision is stamped on but never hashed", () => {
    fc.assert(
      fc.property(topoSpecArb, fc.bigInt({ min: 1n, max: (1n << 62n) - 1n }), (spec, rev) => {
        const t = build(spec);
        const a = compileSite(t, 1n);
        const b = compileSite(t, rev);
        for (const [id, s] of b) {
          expect(s.revision).toBe(rev);
          expect(s.hash).toBe(a.get(id)!.hash);
          expect(s.hash).toBe(hashDesiredState(s));
        }
      }),
      RUNS,
    );
  });

  it("changing one real server's weight changes exactly the hashes of the Directors carrying its service", () => {
    fc.assert(
      fc.property(topoSpecArb, fc.nat(), fc.nat(65535), (spec, pick, newWeight) => {
        const before = build(spec);
        fc.pre(before.realServers.length > 0);
        const after = structuredClone(before);
        const target = after.realServers[pick % after.realServers.length];
        fc.pre((target.weight ?? 1) !== newWeight);
        target.weight = newWeight;
        const svc = after.virtualServices.find((v) => target.name.startsWith(`${v.name}/`))!;
        const directorHosts = new Set(after.hosts.filter((h) => h.roles.includes(HostRole.DIRECTOR)).map((h) => h.name));
        const want = [...new Set(svc.directors)].filter((d) => directorHosts.has(d)).map((d) => d.split("/")[3]).sort();
        expect(affectedHosts(before, after)).toEqual(want);
      }),
      RUNS,
    );
  });

  it("affectedHosts is exactly the set of hosts whose compiled state differs (by structural equality, not by hash)", () => {
    const mutation = fc.record({
      kind: fc.constantFrom("weight", "vip", "dropVs", "dropRs", "method", "timeouts", "dropHost", "addDirector", "interfaces", "nothing"),
      pick: fc.nat(),
      pick2: fc.nat(),
    });
    fc.assert(
      fc.property(topoSpecArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), (spec, muts) => {
        const before = build(spec);
        const after = structuredClone(before);
        for (const m of muts) {
          const vsI = after.virtualServices.length ? m.pick % after.virtualServices.length : -1;
          const rsI = after.realServers.length ? m.pick % after.realServers.length : -1;
          switch (m.kind) {
            case "weight":
              if (rsI >= 0) after.realServers[rsI].weight = ((after.realServers[rsI].weight ?? 1) + 1) % 65536;
              break;
            case "vip":
              if (vsI >= 0 && after.virtualServices[vsI].fwmark === 0) {
                const v = after.virtualServices[vsI];
                v.address = v.addressFamily === AddressFamily.IPV6 ? `2001:db8::${hex(0x500 + m.pick2 % 100)}` : `192.0.2.${150 + (m.pick2 % 100)}`;
              }
              break;
            case "dropVs":
              if (vsI >= 0) {
                const name = after.virtualServices[vsI].name;
                after.virtualServices.splice(vsI, 1);
                after.realServers = after.realServers.filter((r) => !r.name.startsWith(`${name}/`));
              }
              break;
            case "dropRs":
              if (rsI >= 0) after.realServers.splice(rsI, 1);
              break;
            case "method":
              if (rsI >= 0) {
                const r = after.realServers[rsI];
                r.forwardMethod = r.forwardMethod === ForwardMethod.DR ? ForwardMethod.TUN : ForwardMethod.DR;
                r.port = 0;
              }
              break;
            case "timeouts":
              after.site.ipvsTimeouts!.udpSeconds += 1 + (m.pick2 % 5);
              break;
            case "dropHost":
              if (after.hosts.length > 1) after.hosts.splice(m.pick % after.hosts.length, 1);
              break;
            case "addDirector":
              if (vsI >= 0) after.virtualServices[vsI].directors.push(after.hosts[m.pick2 % after.hosts.length].name);
              break;
            case "interfaces": {
              const h = after.hosts[m.pick2 % after.hosts.length];
              h.interfaces.push(create(NetworkInterfaceSchema, { name: `eth${5 + (m.pick % 3)}`, addresses: [`203.0.113.${m.pick % 250}/24`] }));
              break;
            }
            case "nothing":
              break;
          }
        }
        const a = compileSite(before, 1n);
        const b = compileSite(after, 2n);
        const want = [...new Set([...a.keys(), ...b.keys()])]
          .filter((id) => {
            const x = a.get(id);
            const y = b.get(id);
            return !x || !y || !equals(HostDesiredStateSchema, withoutStamp(x), withoutStamp(y));
          })
          .sort();
        expect(affectedHosts(before, after)).toEqual(want);
      }),
      RUNS,
    );
  });

  it("LVS invariants hold on every compiled state", () => {
    fc.assert(
      fc.property(topoSpecArb, (spec) => {
        const t = build(spec);
        const states = compileSite(t, 3n);
        // One state per host, in host-id order.
        expect([...states.keys()]).toEqual(t.hosts.map((h) => h.name.split("/")[3]).sort());
        for (const [id, s] of states) {
          const h = t.hosts.find((x) => x.name === hostName(id))!;
          const keys = s.sysctls.map((x) => x.key);
          // Sysctls sorted, unique; never an ARP knob on lo (lo does no ARP).
          expect(keys).toEqual([...new Set(keys)].sort());
          expect(keys.some((k) => k.startsWith("net.ipv4.conf.lo."))).toBe(false);

          const isDirector = h.roles.includes(HostRole.DIRECTOR) && t.virtualServices.some((v) => v.directors.includes(h.name));
          expect(s.director !== undefined).toBe(isDirector);
          if (s.director) {
            const d = s.director;
            for (const a of d.addresses) expect(a.prefixLength).toBe(a.address.includes(":") ? 128 : 32);
            const nat4 = d.services.some((svc) =>
              [...svc.destinations, ...(svc.sorryServer ? [svc.sorryServer] : [])].some(
                (x) => x.forwardMethod === ForwardMethod.NAT && x.addressFamily === AddressFamily.IPV4,
              ),
            );
            expect(keys.includes("net.ipv4.ip_forward")).toBe(nat4);
            expect(keys).toContain("net.ipv4.vs.expire_nodest_conn");
            // Each fwmark service has its rule; each rule belongs to a service.
            const marks = [...new Set(d.services.filter((x) => x.fwmark !== 0).map((x) => x.fwmark))].sort((x, y) => x - y);
            expect(d.fwmarkRules.map((r) => r.mark)).toEqual(marks);
            for (const svc of d.services) {
              if (svc.fwmark !== 0) expect([svc.address, svc.port, svc.protocol]).toEqual(["", 0, Protocol.UNSPECIFIED]);
              expect(svc.persistencePrefixLength).toBeGreaterThan(0);
              if (svc.persistenceTimeout === 0) expect(svc.persistencePrefixLength).toBe(svc.addressFamily === AddressFamily.IPV6 ? 128 : 32);
            }
          } else {
            expect(keys.some((k) => k.startsWith("net.ipv4.vs."))).toBe(false);
          }

          // Every DR real server linked to this host holds each VIP of its service on lo — unless the
          // host holds it already as a Director — and never both.
          const directorVips = new Set(s.director?.addresses.map((x) => x.address) ?? []);
          for (const r of t.realServers.filter((x) => x.host === h.name && x.forwardMethod === ForwardMethod.DR)) {
            const v = t.virtualServices.find((x) => r.name.startsWith(`${x.name}/`))!;
            if (v.fwmark !== 0) continue;
            const onLo = expect.objectContaining({ interface: "lo", address: v.address, prefixLength: v.address.includes(":") ? 128 : 32 });
            if (directorVips.has(v.address)) expect(s.realServer?.addresses ?? []).not.toContainEqual(onLo);
            else expect(s.realServer?.addresses).toContainEqual(onLo);
          }
          // ARP sysctls exactly when an IPv4 VIP is held as a DR/TUN real server, on the listed interfaces.
          const v4Vip = (s.realServer?.addresses ?? []).some((a) => !a.address.includes(":"));
          const arpIfs = keys.filter((k) => k.endsWith(".arp_ignore")).map((k) => k.split(".")[3]);
          const listed = h.interfaces.map((i) => i.name.replaceAll(".", "/")).sort();
          expect(arpIfs).toEqual(v4Vip ? (listed.length ? listed : ["all"]) : []);
          // Tunnel devices named after their VIPs' devices; rp_filter only on tunnel devices + all.
          for (const a of s.realServer?.addresses ?? []) {
            if (a.interface !== "lo") expect(s.realServer!.tunnels.map((x) => x.name)).toContain(a.interface);
          }
          for (const k of keys.filter((x) => x.endsWith(".rp_filter"))) {
            const dev = k.split(".")[3];
            expect(dev === "all" || s.realServer!.tunnels.some((x) => x.name === dev)).toBe(true);
          }
          // GUE receive ports: exactly one per (outer family, port) of the GUE TUN real servers on this
          // host, sorted by family then port; none for anything else.
          const gue = t.realServers.filter((r) => r.host === h.name && r.forwardMethod === ForwardMethod.TUN && r.tunnel?.type === TunnelType.GUE);
          const wantFou = [...new Set(gue.map((r) => `${r.address.includes(":") ? AddressFamily.IPV6 : AddressFamily.IPV4} ${r.tunnel!.port}`))]
            .map((k) => k.split(" ").map(Number))
            .sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!);
          expect((s.realServer?.fouPorts ?? []).map((p) => [p.addressFamily, p.port])).toEqual(wantFou);
        }
      }),
      RUNS,
    );
  });
});
