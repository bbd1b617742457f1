// Incremental compile: which hosts' desired state can a change of some resources affect?
//
// A host's compiled state reads: the Site (its id; timeouts on Directors), its own Host, every
// VirtualService that lists it as a Director or has a RealServer on it, those services' RealServers
// (destinations) and FirewallMarks (VIPs, nftables rules), and — for a NAT real server — the Host
// resources of the service's Directors (their addresses form the return path). hostsReading(topo, R)
// is the set of hosts whose state reads any resource in R *in that topology*. A change from topology
// A to topology B that touches only the resources R can change a host's state only if the host reads
// one of R in A or in B (what it reads is itself decided by resources in R, or the set would be the
// same on both sides), so
//
//   affected(A → B, R) = hostsReading(A, R) ∪ hostsReading(B, R)
//
// and compileHosts(B, affected) gives every state that changed; all other hosts keep theirs.
// Over-approximating is safe (an unchanged state hashes the same and is not published); missing one
// would leave a host stale, which the property test in incremental.test.ts looks for on random
// topologies and random multi-resource changes, comparing with a full compileSite.
import type { FirewallMark, Host, RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { SiteTopology } from "./compile.js";
import { hostId, realServerParent } from "./names.js";

export type ResourceKind = "site" | "host" | "virtualService" | "realServer" | "firewallMark";

/** A written resource, as the outbox records it. */
export interface ResourceRef {
  kind: ResourceKind;
  /** Full resource name (`sites/a/virtualServices/web/realServers/r1`). */
  name: string;
}

/** The kind of a resource name (`sites/{s}`, `…/hosts/{h}`, …), or undefined if it is none of them. */
export function resourceKind(name: string): ResourceKind | undefined {
  const p = name.split("/");
  if (p[0] !== "sites" || !p[1]) return undefined;
  if (p.length === 2) return "site";
  if (p.length === 4 && p[2] === "hosts") return "host";
  if (p.length === 4 && p[2] === "firewallMarks") return "firewallMark";
  if (p.length === 4 && p[2] === "virtualServices") return "virtualService";
  if (p.length === 6 && p[2] === "virtualServices" && p[4] === "realServers") return "realServer";
  return undefined;
}

/** Host ids of the site whose compiled state reads any of `refs` in `topo` (sorted). */
export function hostsReading(topo: SiteTopology, refs: Iterable<ResourceRef>): string[] {
  const out = new Set<string>();
  const add = (hostName: string) => {
    const id = hostId(hostName);
    if (id !== "") out.add(id);
  };
  let vsByName: Map<string, VirtualService> | undefined;
  let rsByVs: Map<string, RealServer[]> | undefined;
  const services = () => (vsByName ??= new Map(topo.virtualServices.map((v) => [v.name, v])));
  const realServersOf = (vs: string): RealServer[] => {
    if (!rsByVs) {
      rsByVs = new Map();
      for (const r of topo.realServers) {
        const parent = realServerParent(r.name);
        const list = rsByVs.get(parent) ?? [];
        list.push(r);
        rsByVs.set(parent, list);
      }
    }
    return rsByVs.get(vs) ?? [];
  };
  /** Everyone a service's compile output lands on: its Directors and its real servers' hosts. */
  const service = (v: VirtualService) => {
    for (const d of v.directors) add(d);
    for (const r of realServersOf(v.name)) if (r.host !== "") add(r.host);
  };

  for (const ref of refs) {
    switch (ref.kind) {
      case "site":
        // Every host state carries the site; every Director its IPVS timeouts.
        for (const h of topo.hosts) add(h.name);
        return [...out].sort();
      case "host": {
        add(ref.name);
        // Its addresses appear in the NAT return paths of the real servers of the services it
        // directs (and its role decides whether it directs them at all).
        for (const v of topo.virtualServices) {
          if (!v.directors.includes(ref.name)) continue;
          for (const r of realServersOf(v.name)) if (r.host !== "") add(r.host);
        }
        break;
      }
      case "virtualService": {
        const v = services().get(ref.name);
        if (v) service(v);
        break;
      }
      case "realServer": {
        const r = topo.realServers.find((x) => x.name === ref.name);
        if (!r) break;
        if (r.host !== "") add(r.host);
        const v = services().get(realServerParent(r.name));
        if (v) for (const d of v.directors) add(d);
        break;
      }
      case "firewallMark": {
        const m = topo.firewallMarks.find((x) => x.name === ref.name);
        if (!m) break;
        for (const v of topo.virtualServices) if (v.fwmark !== 0 && v.fwmark === m.mark) service(v);
        break;
      }
    }
  }
  return [...out].sort();
}

/** hostsReading on both sides of a change: every host whose state the change can have changed. */
export function affectedByChange(before: SiteTopology | undefined, after: SiteTopology | undefined, refs: readonly ResourceRef[]): string[] {
  const out = new Set<string>();
  if (before) for (const h of hostsReading(before, refs)) out.add(h);
  if (after) for (const h of hostsReading(after, refs)) out.add(h);
  return [...out].sort();
}

/**
 * A site's topology held by name, so a few re-read resources can be swapped in (the relay's cache).
 * `topology()` gives the arrays compileSite/compileHosts take (in insertion order: the compiler's
 * output does not depend on input order — compile.property.test.ts).
 */
export class MutableTopology {
  readonly hosts = new Map<string, Host>();
  readonly virtualServices = new Map<string, VirtualService>();
  readonly realServers = new Map<string, RealServer>();
  readonly firewallMarks = new Map<string, FirewallMark>();
  private snapshot: SiteTopology | undefined;

  constructor(private site: SiteTopology["site"]) {}

  static from(t: SiteTopology): MutableTopology {
    const m = new MutableTopology(t.site);
    for (const h of t.hosts) m.hosts.set(h.name, h);
    for (const v of t.virtualServices) m.virtualServices.set(v.name, v);
    for (const r of t.realServers) m.realServers.set(r.name, r);
    for (const f of t.firewallMarks) m.firewallMarks.set(f.name, f);
    return m;
  }

  /** Sets (a value) or removes (undefined) one resource of the kind. The site itself cannot be removed here. */
  set(kind: Exclude<ResourceKind, "site">, name: string, value: Host | VirtualService | RealServer | FirewallMark | undefined): void;
  set(kind: "site", name: string, value: SiteTopology["site"]): void;
  set(kind: ResourceKind, name: string, value: unknown): void {
    this.snapshot = undefined;
    if (kind === "site") {
      this.site = value as SiteTopology["site"];
      return;
    }
    const map = {
      host: this.hosts,
      virtualService: this.virtualServices,
      realServer: this.realServers,
      firewallMark: this.firewallMarks,
    }[kind] as Map<string, unknown>;
    if (value === undefined) map.delete(name);
    else map.set(name, value);
  }

  topology(): SiteTopology {
    return (this.snapshot ??= {
      site: this.site,
      hosts: [...this.hosts.values()],
      virtualServices: [...this.virtualServices.values()],
      realServers: [...this.realServers.values()],
      firewallMarks: [...this.firewallMarks.values()],
    });
  }
}
