// Small interfaces, one per kernel concern the host agent touches (besides IPVS itself).
//
// The reconciler depends only on these interfaces (kube-proxy's IPVS proxier shape: desired state,
// observed state and the kernel calls are separate pieces). Every interface has a real adapter
// (rtnetlink, nft, /proc/sys) and an in-memory fake in ./fakes.ts for the reconciler's unit tests.
//
// Nothing here imports netlink, child_process or fs.

export type IpFamily = 4 | 6;

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

export interface LinkInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ("ipip", "veth", "bridge", ...); undefined for lo and other kind-less links. */
  kind?: string;
  /** Administrative state (IFF_UP). */
  up: boolean;
  /** IFF_* flags as the kernel reports them (ifi_flags). */
  flags: number;
  mtu: number;
  /** IFLA_OPERSTATE as a name ("up", "down", "unknown", ...). */
  operState: string;
  /** For ipip links: IFLA_IPTUN_LOCAL / IFLA_IPTUN_REMOTE ("0.0.0.0" = any). */
  tunnel?: { local: string; remote: string; ttl: number };
}

/** An ipip (IPv4-in-IPv4) tunnel device, as LVS TUN real servers use to receive the VIP. */
export interface IpipTunnelSpec {
  /** Interface name, 1..15 bytes, no '/', ':' or whitespace. */
  name: string;
  /** Local tunnel endpoint (IFLA_IPTUN_LOCAL); omitted = any. */
  local?: string;
  /** Remote tunnel endpoint (IFLA_IPTUN_REMOTE); omitted = any (what a TUN real server wants). */
  remote?: string;
  /** Outer TTL; 0 = inherit. */
  ttl?: number;
  mtu?: number;
}

/** Tunnel kinds with a per-namespace fallback device (see TUNNEL_FALLBACK_DEVICES). */
export type TunnelFallbackKind = "ipip" | "ip6tnl" | "sit" | "gre" | "ip6gre";

/** The fallback device each tunnel module creates in a namespace (net/ipv4/ipip.c, ip6_tunnel.c, …). */
export const TUNNEL_FALLBACK_DEVICES: Readonly<Record<TunnelFallbackKind, string>> = {
  ipip: "tunl0",
  ip6tnl: "ip6tnl0",
  sit: "sit0",
  gre: "gre0",
  ip6gre: "ip6gre0",
};

/** The tunnel kind whose fallback device has this name; undefined for any other name. */
export function fallbackKindOf(name: string): TunnelFallbackKind | undefined {
  for (const [kind, dev] of Object.entries(TUNNEL_FALLBACK_DEVICES)) if (dev === name) return kind as TunnelFallbackKind;
  return undefined;
}

export interface LinkManager {
  list(): Promise<LinkInfo[]>;
  /** undefined when no such link exists. */
  get(name: string): Promise<LinkInfo | undefined>;
  /**
   * Creates a named ipip tunnel. The kernel keys ipip tunnels by (local, remote): once the ipip
   * module is loaded every namespace has the fallback device tunl0 with any/any, so a second any/any
   * tunnel fails with EEXIST — give named tunnels a `local`, or use ensureIpipFallback().
   */
  createIpip(spec: IpipTunnelSpec): Promise<LinkInfo>;
  /**
   * The any/any ipip device that receives every IPIP packet — what an LVS TUN real server holds the
   * VIP on. Returns tunl0, loading ipip (which creates it) if needed; if fallback devices are
   * disabled for this namespace (net.core.fb_tunnels_only_for_init_net), creates an any/any ipip
   * link named tunl0 instead. Idempotent.
   */
  ensureIpipFallback(): Promise<LinkInfo>;
  /**
   * The wildcard ("fallback") device of a tunnel kind, as TUN real servers hold the VIP on it:
   * tunl0 (ipip), sit0 (IPv6 in IPv4), ip6tnl0 (IPv6 outer), gre0, ip6gre0 — loading the module
   * that creates it if needed, or creating a device of that name when fallback devices are disabled
   * for the namespace. Idempotent; EOPNOTSUPP when the kernel lacks the tunnel type.
   */
  ensureTunnelFallback(kind: TunnelFallbackKind): Promise<LinkInfo>;
  setUp(name: string, up: boolean): Promise<void>;
  delete(name: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// fou (Foo-over-UDP / GUE receive ports)
// ---------------------------------------------------------------------------------------------

/** A fou receive port as the kernel lists it (`ip fou show`). */
export interface FouPortInfo {
  port: number;
  family: IpFamily;
  encap: "gue" | "direct";
  /** Inner protocol of a "direct" port. */
  ipproto?: number;
}

/**
 * fou receive ports (generic netlink family "fou"): what a TUN real server whose Directors encapsulate
 * with GUE needs next to its tunnel device. The real adapter is kernel/fou.ts over netlink/fou.ts.
 */
export interface FouManager {
  list(): Promise<FouPortInfo[]>;
  /** A GUE port on (port, family) exists afterwards; EEXIST when it exists as a direct port, the kernel's error (EADDRINUSE) when another socket holds the UDP port. */
  ensureGue(port: number, family: IpFamily): Promise<void>;
  /** Deletes the port (any encapsulation); the kernel's error when there is none. */
  remove(port: number, family: IpFamily): Promise<void>;
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Addresses (VIPs)
// ---------------------------------------------------------------------------------------------

export interface InterfaceAddress {
  ifindex: number;
  ifname: string;
  family: IpFamily;
  /** Canonical textual address (Node's net.SocketAddress form: "198.51.100.10", "2001:db8::10"). */
  address: string;
  prefixLen: number;
  /** IFA_LABEL (IPv4 only). */
  label?: string;
  /** IFA_PROTO (kernel >= 5.18); 0 when unset. */
  proto: number;
  /** IFA_F_* flags (IFA_FLAGS, falling back to ifa_flags). */
  flags: number;
  scope: number;
  /** True when lvsfleet installed it (see rtnetlink/address.ts for the marker). */
  owned: boolean;
}

export interface VipSpec {
  ifname: string;
  address: string;
  /** Defaults to 32 for IPv4 and 128 for IPv6 (a VIP is a host address). */
  prefixLen?: number;
}

export interface AddressManager {
  list(filter?: { ifname?: string; family?: IpFamily; ownedOnly?: boolean }): Promise<InterfaceAddress[]>;
  /** Adds the address marked as ours. Rejects (EEXIST) when it is already there. */
  add(vip: VipSpec): Promise<void>;
  /** Removes the address. Rejects (EADDRNOTAVAIL) when it is not there. */
  remove(vip: VipSpec): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

export interface RouteInfo {
  family: IpFamily;
  /** Destination as CIDR ("198.51.100.0/24"; "0.0.0.0/0" for the default route). */
  destination: string;
  gateway?: string;
  ifname?: string;
  ifindex?: number;
  table: number;
  /** RTPROT_* (rtm_protocol). */
  protocol: number;
  scope: number;
  /** RTN_* (rtm_type). */
  type: number;
  metric?: number;
  /** True when rtm_protocol is lvsfleet's (see rtnetlink/route.ts). */
  owned: boolean;
}

export interface RouteSpec {
  destination: string;
  gateway?: string;
  ifname?: string;
  /** Defaults to RT_TABLE_MAIN (254). */
  table?: number;
  metric?: number;
}

export interface RouteManager {
  list(filter?: { family?: IpFamily; table?: number; ownedOnly?: boolean }): Promise<RouteInfo[]>;
  add(route: RouteSpec): Promise<void>;
  remove(route: RouteSpec): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Firewall marks (nftables)
// ---------------------------------------------------------------------------------------------

export type FwmarkProtocol = "tcp" | "udp" | "sctp";

export interface PortRange {
  start: number;
  end: number;
}

export interface FwmarkMatch {
  /** CIDRs or bare addresses, IPv4 and/or IPv6. */
  destinations: string[];
  /** Omitted: any of tcp/udp/sctp when ports are given, any protocol at all when not. */
  protocol?: FwmarkProtocol;
  /** Inclusive ranges; empty = any port. */
  ports: PortRange[];
}

/** Packets matching any of `matches` get `meta mark` = `mark` (an IPVS fwmark service's key). */
export interface FwmarkRule {
  mark: number;
  matches: FwmarkMatch[];
}

/** What `FwmarkManager.read` found installed. */
export interface FwmarkState {
  /** The rules, in canonical form (see nftables.ts canonicalFwmarkRules): compare with the desired rules' canonical form. */
  rules: FwmarkRule[];
  /**
   * Anything in lvsfleet's table that lvsfleet would not have written (a changed chain hook or
   * priority, an extra chain, set or hand-added rule). Non-empty means drift: re-apply.
   */
  problems: string[];
}

export interface FwmarkManager {
  /** Replaces lvsfleet's whole table in one kernel transaction. */
  apply(rules: FwmarkRule[]): Promise<void>;
  /** What is installed; undefined when lvsfleet's table does not exist. */
  read(): Promise<FwmarkState | undefined>;
  /** Removes lvsfleet's table (no-op when absent). */
  clear(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Sysctls
// ---------------------------------------------------------------------------------------------

/**
 * A sysctl as path components under /proc/sys, e.g. ["net", "ipv4", "conf", "eth0.100", "arp_ignore"].
 * Components, not a dotted string, because interface names may contain dots (see sysctl.ts).
 */
export type SysctlKey = readonly string[];

export interface SysctlManager {
  /** The value with surrounding whitespace trimmed (multi-value sysctls keep inner whitespace). */
  read(key: SysctlKey): Promise<string>;
  /** Writes and reads back; rejects with a SysctlError when the kernel refused or kept another value. */
  write(key: SysctlKey, value: string | number): Promise<void>;
}
