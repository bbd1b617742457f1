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
import type { SiteIndex, SiteTopology } from "./compile.js";
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
export function hostsReading(topo: SiteTopology | MutableTopology, refs: Iterable<ResourceRef>): string[] {
  return (topo instanceof MutableTopology ? topo : MutableTopology.from(topo)).hostsReading(refs);
}

/** hostsReading on both sides of a change: every host whose state the change can have changed. */
export function affectedByChange(before: SiteTopology | undefined, after: SiteTopology | undefined, refs: readonly ResourceRef[]): string[] {
  const out = new Set<string>();
  if (before) for (const h of hostsReading(before, refs)) out.add(h);
  if (after) for (const h of hostsReading(after, refs)) out.add(h);
  return [...out].sort();
}

/**
 * A site's topology held by name, so a few re-read resources can be swapped in (the relay's cache),
 * with the indexes the dependency analysis and the compiler need kept up to date by `set` — so a
 * change costs O(what it touches): no copy, no re-indexing of the site (the relay redid both on
 * every batch: ≈ 37 % of its CPU in bench:api). It is a SiteIndex: compileHosts(m, ids) compiles
 * only the services that name those hosts. `topology()` gives the arrays compileSite takes (in
 * insertion order: the compiler's output does not depend on input order — compile.property.test.ts).
 */
export class MutableTopology implements SiteIndex {
  readonly hosts = new Map<string, Host>();
  readonly virtualServices = new Map<string, VirtualService>();
  readonly realServers = new Map<string, RealServer>();
  readonly firewallMarks = new Map<string, FirewallMark>();
  private readonly hostNamesById = new Map<string, Set<string>>();
  private readonly realServersByVs = new Map<string, Map<string, RealServer>>();
  /** Host name → VirtualService name → how many times it names the host (Director entries, real servers). */
  private readonly servicesByHost = new Map<string, Map<string, number>>();
  private readonly servicesByFwmark = new Map<number, Set<string>>();
  /** mark → FirewallMark, rebuilt after a FirewallMark write (few, and rarely written). */
  private marks: Map<number, FirewallMark> | undefined;
  private snapshot: SiteTopology | undefined;

  constructor(private siteValue: SiteTopology["site"]) {}

  get site(): SiteTopology["site"] {
    return this.siteValue;
  }

  static from(t: SiteTopology): MutableTopology {
    const m = new MutableTopology(t.site);
    for (const h of t.hosts) m.set("host", h.name, h);
    for (const v of t.virtualServices) m.set("virtualService", v.name, v);
    for (const r of t.realServers) m.set("realServer", r.name, r);
    for (const f of t.firewallMarks) m.set("firewallMark", f.name, f);
    return m;
  }

  /** Sets (a value) or removes (undefined) one resource of the kind. The site itself cannot be removed here. */
  set(kind: Exclude<ResourceKind, "site">, name: string, value: Host | VirtualService | RealServer | FirewallMark | undefined): void;
  set(kind: "site", name: string, value: SiteTopology["site"]): void;
  set(kind: ResourceKind, name: string, value: unknown): void {
    this.snapshot = undefined;
    switch (kind) {
      case "site":
        this.siteValue = value as SiteTopology["site"];
        return;
      case "host": {
        const id = hostId(name);
        if (value === undefined) {
          this.hosts.delete(name);
          const s = this.hostNamesById.get(id);
          s?.delete(name);
          if (s?.size === 0) this.hostNamesById.delete(id);
        } else {
          this.hosts.set(name, value as Host);
          let s = this.hostNamesById.get(id);
          if (!s) this.hostNamesById.set(id, (s = new Set()));
          s.add(name);
        }
        return;
      }
      case "virtualService": {
        const old = this.virtualServices.get(name);
        if (old) {
          for (const d of old.directors) this.unref(d, name);
          if (old.fwmark !== 0) this.servicesByFwmark.get(old.fwmark)?.delete(name);
        }
        const v = value as VirtualService | undefined;
        if (v === undefined) {
          this.virtualServices.delete(name);
          return;
        }
        this.virtualServices.set(name, v);
        for (const d of v.directors) this.ref(d, name);
        if (v.fwmark !== 0) {
          let s = this.servicesByFwmark.get(v.fwmark);
          if (!s) this.servicesByFwmark.set(v.fwmark, (s = new Set()));
          s.add(name);
        }
        return;
      }
      case "realServer": {
        const parent = realServerParent(name);
        const old = this.realServers.get(name);
        if (old && old.host !== "") this.unref(old.host, parent);
        const r = value as RealServer | undefined;
        let siblings = this.realServersByVs.get(parent);
        if (r === undefined) {
          this.realServers.delete(name);
          siblings?.delete(name);
          if (siblings?.size === 0) this.realServersByVs.delete(parent);
          return;
        }
        this.realServers.set(name, r);
        if (!siblings) this.realServersByVs.set(parent, (siblings = new Map()));
        siblings.set(name, r);
        if (r.host !== "") this.ref(r.host, parent);
        return;
      }
      case "firewallMark":
        this.marks = undefined;
        if (value === undefined) this.firewallMarks.delete(name);
        else this.firewallMarks.set(name, value as FirewallMark);
        return;
    }
  }

  private ref(host: string, vs: string): void {
    let m = this.servicesByHost.get(host);
    if (!m) this.servicesByHost.set(host, (m = new Map()));
    m.set(vs, (m.get(vs) ?? 0) + 1);
  }

  private unref(host: string, vs: string): void {
    const m = this.servicesByHost.get(host);
    const n = m?.get(vs) ?? 0;
    if (n > 1) m!.set(vs, n - 1);
    else m?.delete(vs);
    if (m?.size === 0) this.servicesByHost.delete(host);
  }

  // --- SiteIndex ---------------------------------------------------------------------------------

  host(name: string): Host | undefined {
    return this.hosts.get(name);
  }

  hostNames(id: string): Iterable<string> {
    return this.hostNamesById.get(id) ?? [];
  }

  virtualService(name: string): VirtualService | undefined {
    return this.virtualServices.get(name);
  }

  realServersOf(virtualService: string): RealServer[] {
    const m = this.realServersByVs.get(virtualService);
    return m ? [...m.values()] : [];
  }

  firewallMarkOf(mark: number): FirewallMark | undefined {
    if (!this.marks) {
      this.marks = new Map();
      for (const f of this.firewallMarks.values()) this.marks.set(f.mark, f);
    }
    return this.marks.get(mark);
  }

  servicesOf(hostName: string): Iterable<string> {
    return this.servicesByHost.get(hostName)?.keys() ?? [];
  }

  // --- dependency analysis -----------------------------------------------------------------------

  /** Host ids whose compiled state reads any of `refs` in this topology (sorted). */
  hostsReading(refs: Iterable<ResourceRef>): string[] {
    const out = new Set<string>();
    const add = (hostName: string) => {
      const id = hostId(hostName);
      if (id !== "") out.add(id);
    };
    const realServersOf = (vs: string) => this.realServersByVs.get(vs)?.values() ?? [];
    /** Everyone a service's compile output lands on: its Directors and its real servers' hosts. */
    const service = (v: VirtualService) => {
      for (const d of v.directors) add(d);
      for (const r of realServersOf(v.name)) if (r.host !== "") add(r.host);
    };

    for (const ref of refs) {
      switch (ref.kind) {
        case "site":
          // Every host state carries the site; every Director its IPVS timeouts.
          for (const h of this.hosts.values()) add(h.name);
          return [...out].sort();
        case "host": {
          add(ref.name);
          // Its addresses appear in the NAT return paths of the real servers of the services it
          // directs (and its role decides whether it directs them at all).
          for (const name of this.servicesOf(ref.name)) {
            const v = this.virtualServices.get(name);
            if (!v || !v.directors.includes(ref.name)) continue;
            for (const r of realServersOf(v.name)) if (r.host !== "") add(r.host);
          }
          break;
        }
        case "virtualService": {
          const v = this.virtualServices.get(ref.name);
          if (v) service(v);
          break;
        }
        case "realServer": {
          const r = this.realServers.get(ref.name);
          if (!r) break;
          if (r.host !== "") add(r.host);
          const v = this.virtualServices.get(realServerParent(r.name));
          if (v) for (const d of v.directors) add(d);
          break;
        }
        case "firewallMark": {
          const m = this.firewallMarks.get(ref.name);
          if (!m || m.mark === 0) break;
          for (const name of this.servicesByFwmark.get(m.mark) ?? []) {
            const v = this.virtualServices.get(name);
            if (v) service(v);
          }
          break;
        }
      }
    }
    return [...out].sort();
  }

  topology(): SiteTopology {
    return (this.snapshot ??= {
      site: this.siteValue,
      hosts: [...this.hosts.values()],
      virtualServices: [...this.virtualServices.values()],
      realServers: [...this.realServers.values()],
      firewallMarks: [...this.firewallMarks.values()],
    });
  }
}
