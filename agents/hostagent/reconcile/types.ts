// Plain data the reconciler works on: what the host must hold (DesiredHost), what the kernel holds
// (ObservedHost), what the agent manages (OwnedSet), and the ordered kernel operations (Op).
//
// These are deliberately the reconciler's own types (no netlink imports, no I/O). The IPVS shapes are
// structurally identical to netlink/ipvs/codec.ts (IpvsService, IpvsDestination, IpvsServiceState),
// so the Linux backend hands a snapshot in and the ops' payloads out without copying; the address,
// fwmark and sysctl shapes are the plain ones of kernel/types.ts.
import type { FwmarkRule } from "../kernel/types.js";

export type { FwmarkRule };

export type Family = "ipv4" | "ipv6";
export type Protocol = "tcp" | "udp" | "sctp";
/** masq = NAT (-m), route = DR (-g), tunnel = TUN (-i); local/bypass only as the kernel reports them. */
export type Forward = "masq" | "local" | "tunnel" | "route" | "bypass";
export type TunnelKind = "ipip" | "gue" | "gre";

/** protocol + address + port, or fwmark (then the other three are absent). */
export interface ServiceKey {
  family: Family;
  protocol?: Protocol;
  address?: string;
  port?: number;
  fwmark?: number;
}

export interface ServiceSpec extends ServiceKey {
  scheduler: string;
  /** IP_VS_SVC_F_* (HASHED, the kernel's own bit, is ignored when comparing). */
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** IPv4: the 32-bit mask as a number; IPv6: a prefix length. */
  netmask: number;
  peName?: string;
}

export interface DestinationKey {
  address: string;
  port: number;
  family?: Family;
}

export interface DestinationSpec extends DestinationKey {
  forward: Forward;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  tunnelType?: TunnelKind;
  tunnelPort?: number;
  tunnelFlags?: number;
}

/** One IPVS service with its destinations (IpvsClient.snapshot() returns exactly this shape). */
export interface ServiceState {
  service: ServiceSpec;
  destinations: DestinationSpec[];
}

/** IPVS connection timeouts in seconds; 0 = leave the kernel's value. */
export interface Timeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export interface Vip {
  ifname: string;
  /** Canonical text. */
  address: string;
  prefixLen: number;
}

/** A decapsulating tunnel device a TUN real server needs (the kernel's fallback device of its kind). */
export interface TunnelDevice {
  name: string;
  type: TunnelKind;
}

/**
 * A fou receive port in GUE mode (`ip fou add port <port> gue [-6]`) a GUE TUN real server needs: it
 * strips UDP + GUE and hands the inner packet to the tunnel device. Keyed by outer family + port.
 */
export interface FouPortSpec {
  port: number;
  /** Outer family (the real server's). */
  family: Family;
}

/** A fou port as the kernel lists it (FOU_CMD_GET): GUE, or "direct" with one fixed inner protocol. */
export interface ObservedFouPort extends FouPortSpec {
  encap: "gue" | "direct";
  ipproto?: number;
}

export interface SysctlSetting {
  /** sysctl(8) dotted form ("net.ipv4.conf.eth0/100.arp_ignore"). */
  key: string;
  value: string;
}

/** Everything one host must realise, in kernel terms (see desired.ts for the proto → this mapping). */
export interface DesiredHost {
  services: ServiceState[];
  /** Non-zero fields are enforced; undefined / 0 leave the kernel's value. */
  timeouts?: Timeouts;
  /** Director VIPs and real-server VIPs. */
  addresses: Vip[];
  /** Canonical form (nftables.ts canonicalFwmarkRules), so it compares with what the table reads back. */
  fwmarkRules: FwmarkRule[];
  sysctls: SysctlSetting[];
  tunnels: TunnelDevice[];
  /** GUE receive ports (absent = none). */
  fouPorts?: FouPortSpec[];
}

export interface ObservedAddress extends Vip {
  /** Carries lvsfleet's rtnetlink marker (IFA_PROTO 76 / "<if>:lvsf" label). */
  owned: boolean;
}

export interface ObservedLink {
  name: string;
  kind?: string;
  up: boolean;
}

export interface ObservedFwmark {
  /** Canonical rules of lvsfleet's table. */
  rules: FwmarkRule[];
  /** Anything in lvsfleet's table lvsfleet would not have written (FwmarkState.problems). */
  problems: string[];
}

/** What the kernel holds, as far as the backend looked (one dump per object type). */
export interface ObservedHost {
  /** undefined: IPVS was not read (no ip_vs and nothing to do with it) — treated as empty. */
  ipvs?: { services: ServiceState[]; timeouts?: Timeouts };
  addresses: ObservedAddress[];
  links: ObservedLink[];
  /** null: lvsfleet's table does not exist; undefined: not read. */
  fwmark?: ObservedFwmark | null;
  /** Current values of the sysctls looked at; undefined = the key does not exist (yet). */
  sysctls: Map<string, string | undefined>;
  /** Every fou port of the namespace; undefined: not read (nothing to do with fou, or the read failed). */
  fouPorts?: ObservedFouPort[];
}

/** A service the agent manages, as it last applied it. */
export interface OwnedService {
  state: ServiceState;
  /** false after a partly failed apply: differences are then not reported as drift. */
  clean: boolean;
}

/**
 * What the agent manages. IPVS has no owner field, so services are remembered here (persisted next
 * to the applied revision, owned.ts). Addresses are not: the rtnetlink marker on the address itself
 * says whether it is ours. lvsfleet's nftables table is ours by name; `fwmark` only remembers what
 * was last applied (for drift). Sysctls remember the value found before lvsfleet first changed them,
 * so a role change can put it back.
 */
export interface OwnedSet {
  services: Map<string, OwnedService>;
  sysctls: Map<string, { value: string; was?: string }>;
  /** Tunnel devices lvsfleet brought up (or created). */
  links: Set<string>;
  /**
   * VIPs (addressKey) as last applied — only to tell drift from change; whether an address may be
   * removed is decided by the marker on the address itself.
   */
  addresses: Set<string>;
  fwmark?: FwmarkRule[];
  timeouts?: Timeouts;
  /**
   * fou ports (fouKey) lvsfleet created. fou has no owner field either: only these are ever deleted;
   * a port found already there (someone's `ip fou add`) is reported as foreign, never taken over.
   */
  fouPorts?: Set<string>;
}

export type Op =
  | { kind: "link-up"; object: string; tunnel: TunnelDevice }
  | { kind: "link-down"; object: string; name: string }
  | { kind: "sysctl-set"; object: string; key: string; value: string; was?: string; restore?: boolean }
  | { kind: "fwmark-apply"; object: string; rules: FwmarkRule[]; interim?: boolean }
  | { kind: "fwmark-clear"; object: string }
  | { kind: "ipvs-timeouts"; object: string; timeouts: Timeouts }
  | { kind: "service-add"; object: string; key: string; service: ServiceSpec }
  | { kind: "service-edit"; object: string; key: string; service: ServiceSpec }
  | { kind: "service-del"; object: string; key: string; service: ServiceKey }
  | { kind: "dest-add"; object: string; key: string; service: ServiceKey; destination: DestinationSpec }
  | { kind: "dest-edit"; object: string; key: string; service: ServiceKey; destination: DestinationSpec }
  | { kind: "dest-del"; object: string; key: string; service: ServiceKey; destination: DestinationKey }
  | { kind: "address-add"; object: string; vip: Vip }
  | { kind: "address-del"; object: string; vip: Vip }
  | { kind: "fou-add"; object: string; port: FouPortSpec }
  | { kind: "fou-del"; object: string; port: FouPortSpec };

export type OpKind = Op["kind"];

export interface Drift {
  object: string;
  /** What was found, e.g. "weight 5 (want 1)", "missing", "scheduler rr (want wlc)". */
  found: string;
}

export interface ForeignObject {
  object: string;
  note: string;
}

export interface Plan {
  /** In execution order (make-before-break; see reconcile.ts for the rules). */
  ops: Op[];
  /** Differences from what was last applied, found behind the agent's back; the ops repair them. */
  drift: Drift[];
  /** Objects lvsfleet did not create: reported, never touched. */
  foreign: ForeignObject[];
  /** Objects found already as desired and taken over without a write (service keys). */
  adopted: string[];
  /** Object types the observed state lacks although desired or owned ("fou"): their ownership records stay as they were. */
  unread?: "fou"[];
}
