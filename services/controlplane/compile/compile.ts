// Topology → one HostDesiredState per host. Pure: no I/O, no clock, no randomness, no grpc/pg/nats.
//
// Every list in the output is sorted and de-duplicated, so the same topology (in any input order)
// compiles to byte-identical messages and therefore the same hash. The revision is stamped on
// afterwards and is not part of the hash. The LVS reasoning behind each piece (which interface holds
// a VIP, which sysctls and why) is in README.md next to this file.

import { clone, create, toBinary } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import {
  DirectorStateSchema,
  FouPortSchema,
  FwmarkMatchSchema,
  FwmarkRuleSchema,
  HostDesiredStateSchema,
  IpvsDestinationSchema,
  IpvsServiceSchema,
  NatReturnPathSchema,
  RealServerStateSchema,
  SysctlSchema,
  TunnelInterfaceSchema,
  VipAddressSchema,
  type FouPort,
  type FwmarkMatch,
  type FwmarkRule,
  type HostDesiredState,
  type IpvsDestination,
  type IpvsService,
  type NatReturnPath,
  type Sysctl,
  type TunnelInterface,
  type VipAddress,
} from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { FirewallMark, Host, RealServer, Site, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  AddressFamily,
  FailureAction,
  ForwardMethod,
  HealthCheckSchema,
  HostRole,
  IpvsTimeoutsSchema,
  PortRangeSchema,
  TunnelConfigSchema,
  TunnelType,
  type PortRange,
} from "../../../gen/lvsfleet/v1/types_pb.js";
import {
  addressSortKey,
  compareAddressStrings,
  compareStrings,
  hostPrefixLength,
  parseAddress,
  parsePrefix,
  prefixContains,
  sortByKey,
  stripPrefix,
  type Family,
  type ParsedPrefix,
} from "./addr.js";
import { hostId, realServerParent, siteId } from "./names.js";

/** A site's whole topology, as read from the store in one transaction. */
export interface SiteTopology {
  site: Site;
  hosts: Host[];
  virtualServices: VirtualService[];
  realServers: RealServer[];
  firewallMarks: FirewallMark[];
}

/**
 * Something the compiler decided that an operator may want to know (e.g. a VIP placed on "lo"
 * because no interface of the Director has a prefix containing it). Notes never change the output;
 * they are returned so the API can surface them as warnings.
 */
export interface CompileNote {
  /** Host id the note is about ("" for site-wide notes). */
  host: string;
  /** The resource the note is about (a VirtualService, RealServer, FirewallMark or Host name). */
  resource: string;
  message: string;
}

export interface CompileResult {
  /** host id → desired state; iteration order is sorted by host id. */
  states: Map<string, HostDesiredState>;
  /** Sorted by (host, resource, message). */
  notes: CompileNote[];
}

// --- constants with their reasons -----------------------------------------------------------------

/** The loopback device: DR real servers hold VIPs here; Directors do when no interface prefix fits. */
export const LOOPBACK = "lo";

/**
 * IPVS sysctls every Director gets (docs.kernel.org/networking/ipvs-sysctl.html). They exist only
 * once ip_vs is loaded, so they are emitted only for hosts that carry at least one service.
 *  - expire_nodest_conn=1: when a destination is removed (failure action REMOVE, or the RealServer is
 *    deleted) the next packet of one of its connections expires the entry and the client sees a
 *    reset, instead of the default 0 which silently drops the packets until the entry times out
 *    (a blackhole of up to the tcp timeout, 15 min by default).
 *  - conn_reuse_mode=1: the kernel default, made explicit so a host that was tuned differently
 *    converges: with bit 1 set a new connection that reuses a client port of an old entry is
 *    rescheduled when that is safe, so traffic moves off quiesced/removed destinations. (Kernels
 *    before 5.9 had a 1 s SYN delay with this and conntrack; the Debian kernels we target are newer,
 *    and lvsfleet does not enable net.ipv4.vs.conntrack.)
 *  - expire_quiescent_template=1: persistence templates pointing at a quiesced (weight 0)
 *    destination expire, so persistent clients move to a healthy real server instead of sticking to
 *    the failed one until the persistence timeout — needed for failure action QUIESCE with
 *    persistence, harmless otherwise.
 */
export const DIRECTOR_IPVS_SYSCTLS: ReadonlyArray<readonly [string, string]> = [
  ["net.ipv4.vs.conn_reuse_mode", "1"],
  ["net.ipv4.vs.expire_nodest_conn", "1"],
  ["net.ipv4.vs.expire_quiescent_template", "1"],
];

/** Kernel fallback tunnel devices (see tunnelDevice()). */
export const TUNNEL_DEVICES = {
  ipip4: "tunl0",
  sit: "sit0",
  ip6tnl: "ip6tnl0",
  gre4: "gre0",
  gre6: "ip6gre0",
} as const;

// --- public API -------------------------------------------------------------------------------------

/** Compiles the topology into one HostDesiredState per host of the site, stamped with `revision`. */
export function compileSite(topo: SiteTopology, revision: bigint): Map<string, HostDesiredState> {
  return compileSiteWithNotes(topo, revision).states;
}

/** Like compileSite, also returning the notes (decisions an operator may want to see). */
export function compileSiteWithNotes(topo: SiteTopology, revision: bigint): CompileResult {
  return new Compiler(topo, arrayIndex(topo)).run(revision);
}

/**
 * compileSite restricted to the given host ids (ids not in the site are skipped): the same states,
 * byte for byte, as compileSite gives those hosts — services that touch none of them are not even
 * looked at. With hostsReading (incremental.ts) this recompiles only what a change can affect.
 */
export function compileHosts(topo: SiteTopology | SiteIndex, hostIds: Iterable<string>, revision: bigint): Map<string, HostDesiredState> {
  const only = new Set(hostIds);
  if (isSiteIndex(topo)) return new Compiler(undefined, topo, only).run(revision).states;
  return new Compiler(topo, arrayIndex(topo), only).run(revision).states;
}

/**
 * Hex SHA-256 of the deterministic binary encoding of `s` with revision, hash and site_revision
 * cleared (stamps, not content). protobuf-es
 * writes fields in field-number order and HostDesiredState has no map fields, so equal messages
 * encode to equal bytes. Unknown fields are left out: they are not kernel state.
 */
export function hashDesiredState(s: HostDesiredState): string {
  let unstamped = s;
  if (s.revision !== 0n || s.hash !== "" || s.siteRevision !== 0n) {
    // Copy rather than clear-and-restore: the caller's message is never touched.
    unstamped = clone(HostDesiredStateSchema, s);
    unstamped.revision = 0n;
    unstamped.hash = "";
    unstamped.siteRevision = 0n;
  }
  const bytes = toBinary(HostDesiredStateSchema, unstamped, { writeUnknownFields: false });
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Host ids whose desired state changed between two topologies of the same site (sorted): the
 * hosts the outbox must publish. A host present on one side only counts as changed (a new host gets
 * its first state; a deleted host's key must be removed).
 */
export function affectedHosts(before: SiteTopology, after: SiteTopology): string[] {
  return changedHosts(compileSite(before, 0n), compileSite(after, 0n));
}

/**
 * affectedHosts over already compiled states (or any host id → {hash} map, e.g. the hashes last
 * published), so a caller that keeps the previous compilation compiles only once per write.
 */
export function changedHosts(before: ReadonlyMap<string, { hash: string }>, after: ReadonlyMap<string, { hash: string }>): string[] {
  const out: string[] = [];
  for (const id of new Set([...before.keys(), ...after.keys()])) {
    if (before.get(id)?.hash !== after.get(id)?.hash) out.push(id);
  }
  return out.sort(compareStrings);
}

// --- the compiler -----------------------------------------------------------------------------------

/** Per-host accumulator; turned into messages (sorted) at the end. */
interface HostAcc {
  host: Host;
  id: string;
  services: IpvsService[];
  directorVips: Map<string, VipAddress>;
  fwmarks: Set<number>;
  nat4: boolean;
  nat6: boolean;
  rsVips: Map<string, VipAddress>;
  tunnels: Map<string, TunnelInterface>;
  /** GUE receive ports (fou), keyed "<family> <port>". */
  fouPorts: Map<string, FouPort>;
  /** Tunnel devices that receive IPv4 inner packets (need rp_filter relaxed). */
  rpFilterDevices: Set<string>;
  natPaths: Map<string, NatReturnPath>;
}

function familyOf(af: AddressFamily): Family {
  return af === AddressFamily.IPV6 ? 6 : 4;
}

function afOf(f: Family): AddressFamily {
  return f === 6 ? AddressFamily.IPV6 : AddressFamily.IPV4;
}

/**
 * The sysctl(8) spelling of a per-interface key: a "." inside an interface name ("eth0.100") is
 * written "/" because "." separates components (agents/hostagent/kernel/sysctl.ts parses it back).
 */
export function confKey(proto: "ipv4" | "ipv6", ifname: string, name: string): string {
  return `net.${proto}.conf.${ifname.replaceAll(".", "/")}.${name}`;
}

/**
 * The device that decapsulates IPVS tunnel traffic on a real server. These are the kernel's fallback
 * devices (created by the ipip / sit / ip6_tunnel / ip_gre / ip6_gre modules in each namespace unless
 * net.core.fb_tunnels_only_for_init_net says otherwise): a wildcard tunnel (no local, no remote) that
 * receives packets from any Director. A second wildcard tunnel of the same kind cannot be created
 * (EEXIST), so the agent adopts the fallback device when it exists and creates one of that name when
 * it does not. GUE is decapsulated by a fou port and handed to the inner protocol's handler, i.e. the
 * same ipip/ip6tnl devices.
 *   outer (real server) IPv4, inner IPv4 → tunl0 (ipip);   outer IPv4, inner IPv6 → sit0;
 *   outer IPv6 → ip6tnl0 (mode any: ip6ip6 and ipip6);     GRE → gre0 / ip6gre0.
 */
export function tunnelDevice(outer: Family, inner: Family, type: TunnelType): string {
  if (type === TunnelType.GRE) return outer === 4 ? TUNNEL_DEVICES.gre4 : TUNNEL_DEVICES.gre6;
  if (outer === 6) return TUNNEL_DEVICES.ip6tnl;
  return inner === 4 ? TUNNEL_DEVICES.ipip4 : TUNNEL_DEVICES.sit;
}

function vipKey(v: VipAddress): string {
  return `${v.interface}\u0000${v.address}\u0000${v.prefixLength}`;
}

// Sort keys (see addressSortKey): addresses are parsed once per element, not once per comparison —
// sorting thousands of destinations dominated compile time otherwise. NUL separates the fields.
const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** VIPs by interface, then address (numerically), then prefix length. */
function sortVips(vips: Iterable<VipAddress>): VipAddress[] {
  return sortByKey(vips, (v) => `${v.interface}\u0000${addressSortKey(v.address)}\u0000${pad(v.prefixLength, 3)}`);
}

/** Destinations by address (numerically), then port, then RealServer name. */
function sortDestinations(ds: Iterable<IpvsDestination>): IpvsDestination[] {
  return sortByKey(ds, (d) => `${addressSortKey(d.address)}\u0000${pad(d.port, 5)}\u0000${d.realServer}`);
}

function comparePrefixStrings(a: string, b: string): number {
  const pa = parsePrefix(a);
  const pb = parsePrefix(b);
  if (!pa || !pb) return pa ? -1 : pb ? 1 : compareStrings(a, b);
  return compareAddressStrings(stripPrefix(a), stripPrefix(b)) || pa.prefixLength - pb.prefixLength || compareStrings(a, b);
}

/** Sorted, de-duplicated port ranges (start, then end). */
function normalisePorts(ports: PortRange[]): PortRange[] {
  const seen = new Set<string>();
  const out: PortRange[] = [];
  for (const p of [...ports].sort((x, y) => x.start - y.start || x.end - y.end)) {
    const k = `${p.start}-${p.end}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(create(PortRangeSchema, { start: p.start, end: p.end }));
  }
  return out;
}

/**
 * A FirewallMark as nftables rules. All matches of one mark set the same mark, so their order does
 * not matter and they are sorted (as are the destinations and ports inside each) for a stable hash.
 */
function fwmarkRule(fm: FirewallMark): FwmarkRule {
  const matches: FwmarkMatch[] = fm.matches.map((m) =>
    create(FwmarkMatchSchema, {
      destinations: [...new Set(m.destinations)].sort(comparePrefixStrings),
      protocol: m.protocol,
      ports: normalisePorts(m.ports),
    }),
  );
  const keyOf = (m: FwmarkMatch) =>
    JSON.stringify([m.protocol, m.destinations, m.ports.map((p) => [p.start, p.end])]);
  const unique = new Map<string, FwmarkMatch>();
  for (const m of matches) unique.set(keyOf(m), m);
  const sorted = [...unique.entries()].sort((a, b) => compareStrings(a[0], b[0])).map(([, m]) => m);
  return create(FwmarkRuleSchema, { mark: fm.mark, matches: sorted });
}

/**
 * The lookups the compiler makes. compileSite builds one from the arrays (O(site) per call); the
 * relay's MutableTopology (incremental.ts) keeps one across compiles, so compileHosts over it costs
 * O(the wanted hosts' services), not O(site).
 */
export interface SiteIndex {
  readonly site: Site;
  host(name: string): Host | undefined;
  /** Names of the hosts with this id (one, for validated data). */
  hostNames(id: string): Iterable<string>;
  virtualService(name: string): VirtualService | undefined;
  realServersOf(virtualService: string): RealServer[];
  firewallMarkOf(mark: number): FirewallMark | undefined;
  /** Names of the VirtualServices that list `hostName` as a Director or have a RealServer on it. */
  servicesOf(hostName: string): Iterable<string>;
}

function isSiteIndex(t: SiteTopology | SiteIndex): t is SiteIndex {
  return typeof (t as SiteIndex).servicesOf === "function";
}

/** A SiteIndex over the arrays of one SiteTopology (what the compiler built per call before). */
function arrayIndex(topo: SiteTopology): SiteIndex {
  const hosts = new Map<string, Host>();
  for (const h of topo.hosts) hosts.set(h.name, h);
  const marks = new Map<number, FirewallMark>();
  for (const fm of topo.firewallMarks) marks.set(fm.mark, fm);
  const realServersByVs = new Map<string, RealServer[]>();
  for (const rs of topo.realServers) {
    const parent = realServerParent(rs.name);
    const list = realServersByVs.get(parent) ?? [];
    list.push(rs);
    realServersByVs.set(parent, list);
  }
  const unused = (): never => {
    throw new Error("arrayIndex: the array compile walks topo.virtualServices");
  };
  return {
    site: topo.site,
    host: (name) => hosts.get(name),
    hostNames: unused,
    virtualService: unused,
    realServersOf: (vs) => realServersByVs.get(vs) ?? [],
    firewallMarkOf: (mark) => marks.get(mark),
    servicesOf: unused,
  };
}

class Compiler {
  private readonly site: string;
  /** By host resource name; made on first use (null: not a host of the site, or a bad name). */
  private readonly hosts = new Map<string, HostAcc | null>();
  private readonly notes: CompileNote[] = [];

  /**
   * `topo`: compile over its arrays (every service is looked at); otherwise over `ix` alone, which
   * needs `only`. `only`: compile just these host ids (compileHosts). Other hosts still exist for
   * what they lend to the compiled ones (a Director's addresses in a real server's NAT return path),
   * but get no state.
   */
  constructor(
    private readonly topo: SiteTopology | undefined,
    private readonly ix: SiteIndex,
    private readonly only?: ReadonlySet<string>,
  ) {
    this.site = siteId(ix.site.name);
  }

  private acc(name: string): HostAcc | undefined {
    const have = this.hosts.get(name);
    if (have !== undefined) return have ?? undefined;
    const host = this.ix.host(name);
    const id = host ? hostId(host.name) : "";
    if (!host || id === "") {
      this.hosts.set(name, null);
      return undefined;
    }
    const acc: HostAcc = {
      host,
      id,
      services: [],
      directorVips: new Map(),
      fwmarks: new Set(),
      nat4: false,
      nat6: false,
      rsVips: new Map(),
      tunnels: new Map(),
      fouPorts: new Map(),
      rpFilterDevices: new Set(),
      natPaths: new Map(),
    };
    this.hosts.set(name, acc);
    return acc;
  }

  private note(host: string, resource: string, message: string): void {
    this.notes.push({ host, resource, message });
  }

  run(revision: bigint): CompileResult {
    const accs: HostAcc[] = [];
    if (this.topo) {
      for (const h of this.topo.hosts) {
        if (hostId(h.name) === "") this.note("", h.name, "host name is not sites/{site}/hosts/{host}; ignored");
        else this.acc(h.name);
      }
      for (const vs of this.topo.virtualServices) this.virtualService(vs);
      for (const a of this.hosts.values()) if (a && this.wanted(a)) accs.push(a);
    } else {
      // Indexed (compileHosts over a SiteIndex): only the services that name a wanted host.
      const names = [...this.only!].flatMap((id) => [...this.ix.hostNames(id)]);
      const services = new Set<string>();
      for (const n of names) for (const v of this.ix.servicesOf(n)) services.add(v);
      for (const v of services) {
        const vs = this.ix.virtualService(v);
        if (vs) this.virtualService(vs);
      }
      for (const n of new Set(names)) {
        const a = this.acc(n);
        if (a && this.wanted(a)) accs.push(a);
      }
    }
    accs.sort((a, b) => compareStrings(a.id, b.id));

    const states = new Map<string, HostDesiredState>();
    for (const acc of accs) {
      const state = this.hostState(acc);
      state.hash = hashDesiredState(state);
      state.revision = revision;
      states.set(acc.id, state);
    }
    const notes = this.notes.sort(
      (a, b) => compareStrings(a.host, b.host) || compareStrings(a.resource, b.resource) || compareStrings(a.message, b.message),
    );
    return { states, notes };
  }

  // --- per virtual service ---------------------------------------------------------------------

  private vsFamily(vs: VirtualService): Family {
    if (vs.addressFamily !== AddressFamily.UNSPECIFIED) return familyOf(vs.addressFamily);
    return parseAddress(vs.address)?.family ?? 4;
  }

  /**
   * The addresses traffic for `vs` is sent to: its VIP, or for a fwmark service the single-address
   * destinations of its FirewallMark in the service's family (an IPVS fwmark service of family F only
   * sees packets of family F). Prefix destinations ("198.51.100.0/24") cannot be held as an address
   * and are skipped with a note.
   */
  private serviceAddresses(vs: VirtualService, family: Family): string[] {
    if (vs.fwmark === 0) {
      const p = parseAddress(vs.address);
      if (!p) {
        this.note("", vs.name, `VIP ${JSON.stringify(vs.address)} is not an IP address; not placed on any host`);
        return [];
      }
      return [vs.address];
    }
    const fm = this.ix.firewallMarkOf(vs.fwmark);
    if (!fm) {
      this.note("", vs.name, `fwmark ${vs.fwmark} has no FirewallMark in the site; no VIPs and no nftables rule`);
      return [];
    }
    const out = new Set<string>();
    for (const m of fm.matches) {
      for (const d of m.destinations) {
        const p = parsePrefix(d);
        if (!p || p.family !== family) continue;
        if (p.prefixLength !== hostPrefixLength(p.family)) {
          this.note("", fm.name, `destination ${d} is a prefix, not a single address: not held as a VIP by ${vs.name}`);
          continue;
        }
        out.add(stripPrefix(d));
      }
    }
    return [...out].sort(compareAddressStrings);
  }

  private wanted(acc: HostAcc): boolean {
    return this.only === undefined || this.only.has(acc.id);
  }

  /** With a host filter: does this service contribute to any wanted host (as Director or real server)? */
  private relevant(vs: VirtualService, realServers: RealServer[]): boolean {
    if (this.only === undefined) return true;
    for (const d of vs.directors) {
      const acc = this.acc(d);
      if (acc && this.only.has(acc.id)) return true;
    }
    for (const rs of realServers) {
      const acc = this.acc(rs.host);
      if (acc && this.only.has(acc.id)) return true;
    }
    return false;
  }

  private virtualService(vs: VirtualService): void {
    const realServers = this.ix.realServersOf(vs.name);
    if (!this.relevant(vs, realServers)) return;
    const family = this.vsFamily(vs);
    const vips = this.serviceAddresses(vs, family);

    const directors: HostAcc[] = [];
    for (const name of new Set(vs.directors)) {
      const acc = this.acc(name);
      if (!acc) {
        this.note("", vs.name, `director ${name} is not a host of the site; ignored`);
        continue;
      }
      if (!acc.host.roles.includes(HostRole.DIRECTOR)) {
        this.note(acc.id, vs.name, `host ${name} is listed as a director but has no DIRECTOR role; ignored`);
        continue;
      }
      directors.push(acc);
    }

    for (const d of directors) if (this.wanted(d)) this.director(d, vs, family, vips, realServers);
    for (const rs of realServers) this.realServer(rs, vs, family, vips, directors);
  }

  // --- Director ---------------------------------------------------------------------------------

  private director(acc: HostAcc, vs: VirtualService, family: Family, vips: string[], realServers: RealServer[]): void {
    const svc = this.ipvsService(vs, family, realServers);
    acc.services.push(svc);
    for (const d of [...svc.destinations, ...(svc.sorryServer ? [svc.sorryServer] : [])]) {
      if (d.forwardMethod !== ForwardMethod.NAT) continue;
      if (d.addressFamily === AddressFamily.IPV6) acc.nat6 = true;
      else acc.nat4 = true;
    }
    if (vs.fwmark !== 0 && this.ix.firewallMarkOf(vs.fwmark)) acc.fwmarks.add(vs.fwmark);
    for (const vip of vips) {
      const v = this.directorVip(acc, vs, vip);
      acc.directorVips.set(vipKey(v), v);
    }
  }

  /**
   * Where a Director holds a VIP. Like keepalived's virtual_ipaddress: on the interface whose
   * configured prefix contains the VIP, as a /32 (/128) — so the Director answers ARP/NDP for it on
   * that segment and the upstream router finds it. The longest containing prefix wins (ties: the
   * interface name). When no interface prefix contains it the VIP cannot be ARPed for anyway: it
   * must be routed to the Director (static route or BGP), so it goes on "lo", which makes it local
   * without announcing it on any segment.
   */
  private directorVip(acc: HostAcc, vs: VirtualService, vip: string): VipAddress {
    const addr = parseAddress(vip)!;
    let best: { ifname: string; len: number } | undefined;
    for (const ifc of acc.host.interfaces) {
      if (ifc.name === LOOPBACK) continue;
      for (const a of ifc.addresses) {
        const p: ParsedPrefix | undefined = parsePrefix(a);
        if (!p || !prefixContains(p, addr)) continue;
        if (!best || p.prefixLength > best.len || (p.prefixLength === best.len && compareStrings(ifc.name, best.ifname) < 0)) {
          best = { ifname: ifc.name, len: p.prefixLength };
        }
      }
    }
    if (!best) {
      this.note(acc.id, vs.name, `no interface prefix of the Director contains VIP ${vip}: held on lo, so it must be routed to this host (static route or BGP)`);
    }
    return create(VipAddressSchema, {
      interface: best?.ifname ?? LOOPBACK,
      address: vip,
      prefixLength: hostPrefixLength(addr.family),
    });
  }

  private ipvsService(vs: VirtualService, family: Family, realServers: RealServer[]): IpvsService {
    const persistent = (vs.persistence?.timeoutSeconds ?? 0) > 0;
    const isFwmark = vs.fwmark !== 0;
    const destinations = sortDestinations(
      realServers.map((rs) => this.destination(rs, vs)).filter((d): d is IpvsDestination => d !== undefined),
    );
    let sorryServer: IpvsDestination | undefined;
    if (vs.sorryServer && vs.sorryServer.address !== "") {
      const p = parseAddress(vs.sorryServer.address);
      if (p) {
        sorryServer = create(IpvsDestinationSchema, {
          realServer: "",
          addressFamily: afOf(p.family),
          address: vs.sorryServer.address,
          port: vs.sorryServer.port !== 0 ? vs.sorryServer.port : vs.port,
          forwardMethod: vs.sorryServer.forwardMethod !== ForwardMethod.UNSPECIFIED ? vs.sorryServer.forwardMethod : ForwardMethod.DR,
          // keepalived adds its sorry_server with weight 1 once every real server is down.
          weight: 1,
        });
      } else {
        this.note("", vs.name, `sorry server address ${JSON.stringify(vs.sorryServer.address)} is not an IP address; ignored`);
      }
    }
    return create(IpvsServiceSchema, {
      virtualService: vs.name,
      addressFamily: afOf(family),
      // An IPVS fwmark service has no protocol, address or port (ipvsadm -f).
      protocol: isFwmark ? undefined : vs.protocol,
      address: isFwmark ? "" : vs.address,
      port: isFwmark ? 0 : vs.port,
      fwmark: vs.fwmark,
      scheduler: vs.scheduler !== "" ? vs.scheduler : "wlc",
      schedulerFlags: [...new Set(vs.schedulerFlags)].sort(compareStrings),
      persistenceTimeout: persistent ? vs.persistence!.timeoutSeconds : 0,
      // The kernel keeps a full netmask for non-persistent services (ipvsadm shows 255.255.255.255 /
      // 128); a user value there changes nothing, so it must not change the hash either.
      persistencePrefixLength: persistent ? (vs.persistence!.prefixLength ?? hostPrefixLength(family)) : hostPrefixLength(family),
      onePacket: vs.onePacket,
      persistenceEngine: vs.persistenceEngine,
      destinations,
      healthCheck: vs.healthCheck ? clone(HealthCheckSchema, vs.healthCheck) : undefined,
      failureAction: vs.failureAction !== FailureAction.UNSPECIFIED ? vs.failureAction : FailureAction.QUIESCE,
      sorryServer,
    });
  }

  private destination(rs: RealServer, vs: VirtualService): IpvsDestination | undefined {
    const p = parseAddress(rs.address);
    if (!p) {
      this.note("", rs.name, `address ${JSON.stringify(rs.address)} is not an IP address; not a destination`);
      return undefined;
    }
    const fwd = rs.forwardMethod !== ForwardMethod.UNSPECIFIED ? rs.forwardMethod : ForwardMethod.DR;
    return create(IpvsDestinationSchema, {
      realServer: rs.name,
      addressFamily: afOf(p.family),
      address: rs.address,
      // RealServer.port 0 = the service port; for port-0 and fwmark services that stays 0, which
      // IPVS reads as "the port the client connected to".
      port: rs.port !== 0 ? rs.port : vs.port,
      forwardMethod: fwd,
      // Draining (lvsfleet drain): weight 0 on every Director, the configured weight stays in the store.
      weight: rs.draining ? 0 : (rs.weight ?? 1),
      upperThreshold: rs.upperThreshold,
      lowerThreshold: rs.lowerThreshold,
      // Tunnel options mean nothing for NAT/DR: leave them out so they cannot change the hash.
      tunnel: fwd === ForwardMethod.TUN ? this.tunnelConfig(rs) : undefined,
    });
  }

  private tunnelConfig(rs: RealServer) {
    const t = rs.tunnel ? clone(TunnelConfigSchema, rs.tunnel) : create(TunnelConfigSchema, {});
    if (t.type === TunnelType.UNSPECIFIED) t.type = TunnelType.IPIP;
    return t;
  }

  // --- real server ------------------------------------------------------------------------------

  private realServer(rs: RealServer, vs: VirtualService, family: Family, vips: string[], directors: HostAcc[]): void {
    if (rs.host === "") return;
    const acc = this.acc(rs.host);
    if (!acc) {
      this.note("", rs.name, `host ${rs.host} is not a host of the site; no real-server state`);
      return;
    }
    if (!this.wanted(acc)) return;
    const rsAddr = parseAddress(rs.address);
    if (!rsAddr) return; // noted in destination()
    const fwd = rs.forwardMethod !== ForwardMethod.UNSPECIFIED ? rs.forwardMethod : ForwardMethod.DR;

    if (fwd === ForwardMethod.NAT) {
      // The reply must be un-NATed by the Director, so the real server's route to the clients must
      // go through one of the Directors' addresses (of the real server's family).
      const addrs = new Set<string>();
      for (const d of directors) {
        for (const a of [...d.host.addresses, ...d.host.interfaces.filter((i) => i.name !== LOOPBACK).flatMap((i) => i.addresses)]) {
          const bare = stripPrefix(a);
          if (parseAddress(bare)?.family === rsAddr.family) addrs.add(bare);
        }
      }
      const prev = acc.natPaths.get(vs.name);
      for (const a of prev?.directorAddresses ?? []) addrs.add(a);
      acc.natPaths.set(
        vs.name,
        create(NatReturnPathSchema, { virtualService: vs.name, directorAddresses: [...addrs].sort(compareAddressStrings) }),
      );
      return;
    }

    let ifname = LOOPBACK;
    if (fwd === ForwardMethod.TUN) {
      const cfg = this.tunnelConfig(rs);
      const type = cfg.type;
      ifname = tunnelDevice(rsAddr.family, family, type);
      const t = create(TunnelInterfaceSchema, { name: ifname, type });
      acc.tunnels.set(`${t.name}\u0000${t.type}`, t);
      if (type === TunnelType.GUE) {
        // GUE is IPIP (or IPv6) inside UDP to cfg.port: only a fou port in GUE mode on that port, of
        // the real server's (outer) family, strips the UDP + GUE header and hands the inner packet
        // to the device above. One port per (family, port), however many services share it.
        if (cfg.port === 0 || cfg.port > 65535) {
          this.note(acc.id, rs.name, `GUE tunnel without a valid port (${cfg.port}); no fou receive port`);
        } else {
          acc.fouPorts.set(`${rsAddr.family} ${cfg.port}`, create(FouPortSchema, { port: cfg.port, addressFamily: afOf(rsAddr.family) }));
        }
      }
      // rp_filter is IPv4 source validation: it applies when the decapsulated packet is IPv4.
      if (family === 4) acc.rpFilterDevices.add(ifname);
    }
    for (const vip of vips) {
      const v = create(VipAddressSchema, { interface: ifname, address: vip, prefixLength: hostPrefixLength(family) });
      acc.rsVips.set(vipKey(v), v);
    }
  }

  // --- assembling one host ------------------------------------------------------------------------

  /** The host's client-facing interfaces for ARP sysctls: its listed interfaces except lo. */
  private arpInterfaces(acc: HostAcc): string[] {
    const names = [...new Set(acc.host.interfaces.map((i) => i.name).filter((n) => n !== "" && n !== LOOPBACK))].sort(compareStrings);
    if (names.length === 0) {
      this.note(acc.id, acc.host.name, `real server lists no interfaces: arp_ignore/arp_announce set on "all"`);
      return ["all"];
    }
    return names;
  }

  private hostState(acc: HostAcc): HostDesiredState {
    const sysctls = new Map<string, string>();
    const set = (key: string, value: string) => {
      const prev = sysctls.get(key);
      if (prev !== undefined && prev !== value) {
        // Only possible through a bug in this file: every rule below agrees on shared keys.
        throw new Error(`compile: conflicting values for sysctl ${key}: ${prev} vs ${value} (host ${acc.id})`);
      }
      sysctls.set(key, value);
    };

    const state = create(HostDesiredStateSchema, { site: this.site, host: acc.id });

    if (acc.services.length > 0) {
      const fwmarkRules = [...acc.fwmarks].sort((a, b) => a - b).map((m) => fwmarkRule(this.ix.firewallMarkOf(m)!));
      state.director = create(DirectorStateSchema, {
        services: acc.services.sort((a, b) => compareStrings(a.virtualService, b.virtualService)),
        timeouts: create(IpvsTimeoutsSchema, {
          tcpSeconds: this.ix.site.ipvsTimeouts?.tcpSeconds ?? 0,
          tcpFinSeconds: this.ix.site.ipvsTimeouts?.tcpFinSeconds ?? 0,
          udpSeconds: this.ix.site.ipvsTimeouts?.udpSeconds ?? 0,
        }),
        addresses: sortVips(acc.directorVips.values()),
        fwmarkRules,
      });
      for (const [k, v] of DIRECTOR_IPVS_SYSCTLS) set(k, v);
      if (acc.nat4) {
        // NAT: replies from the real servers are forwarded (and un-NATed) by the Director.
        set("net.ipv4.ip_forward", "1");
        // ...and must not be answered with ICMP redirects: when real servers and the router share a
        // segment with the Director, a redirect tells the real server to bypass the Director and the
        // replies leave un-NATed. send_redirects is on when conf/all OR conf/<if> is on
        // (ip-sysctl.rst), so both must be 0.
        set(confKey("ipv4", "all", "send_redirects"), "0");
        for (const ifc of acc.host.interfaces) {
          if (ifc.name !== "" && ifc.name !== LOOPBACK) set(confKey("ipv4", ifc.name, "send_redirects"), "0");
        }
      }
      if (acc.nat6) set(confKey("ipv6", "all", "forwarding"), "1");
    }

    // A host that is both the Director and a real server of a VIP already holds it (Director side):
    // the address is local either way, and IPVS delivers to a destination that is a local address
    // itself (LOCALNODE). A second copy on lo / the tunnel would only duplicate the local route.
    const directorHeld = new Set(state.director?.addresses.map((a) => a.address) ?? []);
    const rsVips = sortVips([...acc.rsVips.values()].filter((v) => !directorHeld.has(v.address)));
    const hasRs = rsVips.length > 0 || acc.tunnels.size > 0 || acc.natPaths.size > 0 || acc.fouPorts.size > 0;
    if (hasRs) {
      state.realServer = create(RealServerStateSchema, {
        addresses: rsVips,
        tunnels: [...acc.tunnels.values()].sort((a, b) => compareStrings(a.name, b.name) || a.type - b.type),
        natReturnPaths: [...acc.natPaths.values()].sort((a, b) => compareStrings(a.virtualService, b.virtualService)),
        fouPorts: [...acc.fouPorts.values()].sort((a, b) => a.addressFamily - b.addressFamily || a.port - b.port),
      });
      if (rsVips.some((v) => parseAddress(v.address)?.family === 4)) {
        // The VIP is a local address, and by default Linux answers ARP for any local address on any
        // interface (weak host model): the real server would steal the VIP from the Director.
        // arp_ignore=1: answer only for addresses configured on the receiving interface.
        // arp_announce=2: never use the VIP as the source of our own ARP requests.
        // The kernel uses max(conf/all, conf/<if>) for both (ip-sysctl.rst), so setting them on each
        // client-facing interface is enough and leaves other interfaces (and "all") alone. Not on lo:
        // lo is IFF_NOARP, it never receives or sends ARP.
        for (const ifname of this.arpInterfaces(acc)) {
          set(confKey("ipv4", ifname, "arp_ignore"), "1");
          set(confKey("ipv4", ifname, "arp_announce"), "2");
        }
      }
      if (acc.rpFilterDevices.size > 0) {
        // A decapsulated packet arrives on the tunnel device with the client as source, but the route
        // back to the client leaves through another interface: strict reverse-path filtering (1)
        // drops it. The kernel uses max(conf/all, conf/<dev>), so relaxing the device alone is not
        // enough when all=1 (e.g. Ubuntu's default); 2 (loose: the source is reachable through some
        // interface) on both is the least relaxation that works, and keeps source validation on.
        set(confKey("ipv4", "all", "rp_filter"), "2");
        for (const dev of [...acc.rpFilterDevices].sort(compareStrings)) set(confKey("ipv4", dev, "rp_filter"), "2");
      }
    }

    state.sysctls = [...sysctls.entries()]
      .sort((a, b) => compareStrings(a[0], b[0]))
      .map(([key, value]): Sysctl => create(SysctlSchema, { key, value }));
    return state;
  }
}
