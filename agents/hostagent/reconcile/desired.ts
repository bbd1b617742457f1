// HostDesiredState (the control plane's message) → DesiredHost (kernel terms), pure.
//
// What the kernel will report back is what we must compare with, so this mapping normalises the way
// the kernel and ipvsadm do: scheduler default wlc, persistence netmask as a 32-bit mask (IPv4) or a
// prefix length (IPv6), flags from persistence/one-packet/scheduler flags, tunnel options only for
// TUN (the kernel reports ipip/0/0 for everything else), addresses in canonical text.
//
// Sorry servers are not programmed here: one takes over only when every real server is down, which
// is the health checker's decision (issue 5, "Health checks").
import type { HostDesiredState, IpvsDestination as PbDestination, IpvsService as PbService } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { addressKey, canonicalIp, destinationKey, serviceKey } from "./keys.js";
import type { DesiredHost, DestinationSpec, Family, FouPortSpec, Forward, FwmarkRule, ServiceSpec, ServiceState, TunnelDevice, TunnelKind, Vip } from "./types.js";

// linux/ip_vs.h (copied, not imported: reconcile/ imports nothing from netlink/).
const IP_VS_SVC_F_PERSISTENT = 0x0001;
const IP_VS_SVC_F_ONEPACKET = 0x0004;
const IP_VS_SVC_F_SCHED1 = 0x0008;
const IP_VS_SVC_F_SCHED2 = 0x0010;
const IP_VS_SVC_F_SCHED3 = 0x0020;
const IP_VS_TUNNEL_ENCAP_FLAG_CSUM = 1 << 0;
const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM = 1 << 1;

/** ipvsadm's names for the scheduler flags (-b): sh-fallback = mh-fallback = flag-1, sh-port = mh-port = flag-2. */
const SCHED_FLAGS: Record<string, number> = {
  "flag-1": IP_VS_SVC_F_SCHED1,
  "flag-2": IP_VS_SVC_F_SCHED2,
  "flag-3": IP_VS_SVC_F_SCHED3,
  "sh-fallback": IP_VS_SVC_F_SCHED1,
  "sh-port": IP_VS_SVC_F_SCHED2,
  "mh-fallback": IP_VS_SVC_F_SCHED1,
  "mh-port": IP_VS_SVC_F_SCHED2,
};

export interface DesiredOptions {
  /**
   * Canonical form of fwmark rules, as the fwmark adapter reads its table back (nftables.ts
   * canonicalFwmarkRules: merged prefixes and port ranges). Injected because that code lives with
   * the adapter; the default keeps the rules as they are.
   */
  canonicalFwmarkRules?: (rules: FwmarkRule[]) => FwmarkRule[];
}

export class DesiredStateError extends Error {
  override name = "DesiredStateError";
}

const familyOf = (af: AddressFamily, address: string): Family =>
  af === AddressFamily.IPV6 ? "ipv6" : af === AddressFamily.IPV4 ? "ipv4" : address.includes(":") ? "ipv6" : "ipv4";

function v4Mask(prefix: number): number {
  return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
}

export function serviceSpecFromProto(s: PbService): ServiceSpec {
  const family = familyOf(s.addressFamily, s.address);
  let flags = 0;
  if (s.persistenceTimeout > 0) flags |= IP_VS_SVC_F_PERSISTENT;
  if (s.onePacket) flags |= IP_VS_SVC_F_ONEPACKET;
  for (const f of s.schedulerFlags) {
    const bit = SCHED_FLAGS[f];
    if (bit === undefined) throw new DesiredStateError(`service ${s.virtualService}: unknown scheduler flag ${JSON.stringify(f)}`);
    flags |= bit;
  }
  const full = family === "ipv4" ? 32 : 128;
  const prefix = s.persistenceTimeout > 0 && s.persistencePrefixLength > 0 ? s.persistencePrefixLength : full;
  const spec: ServiceSpec =
    s.fwmark !== 0
      ? { family, fwmark: s.fwmark, scheduler: "", flags, timeout: 0, netmask: 0 }
      : { family, protocol: protocolOf(s.protocol, s.virtualService), address: canonicalIp(s.address), port: s.port, scheduler: "", flags, timeout: 0, netmask: 0 };
  spec.scheduler = s.scheduler || "wlc";
  spec.timeout = s.persistenceTimeout;
  spec.netmask = family === "ipv4" ? v4Mask(prefix) : prefix;
  if (s.persistenceEngine) spec.peName = s.persistenceEngine;
  return spec;
}

function protocolOf(p: Protocol, vs: string): "tcp" | "udp" | "sctp" {
  switch (p) {
    case Protocol.TCP:
      return "tcp";
    case Protocol.UDP:
      return "udp";
    case Protocol.SCTP:
      return "sctp";
    default:
      throw new DesiredStateError(`service ${vs}: no protocol`);
  }
}

function forwardOf(m: ForwardMethod): Forward {
  return m === ForwardMethod.NAT ? "masq" : m === ForwardMethod.TUN ? "tunnel" : "route"; // unspecified: ipvsadm's default -g
}

function tunnelKind(t: TunnelType | undefined): TunnelKind {
  return t === TunnelType.GUE ? "gue" : t === TunnelType.GRE ? "gre" : "ipip";
}

export function destinationSpecFromProto(d: PbDestination): DestinationSpec {
  const forward = forwardOf(d.forwardMethod);
  const address = canonicalIp(d.address);
  const spec: DestinationSpec = {
    address,
    port: d.port,
    family: familyOf(d.addressFamily, address),
    forward,
    weight: d.weight,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
    tunnelType: "ipip",
    tunnelPort: 0,
    tunnelFlags: 0,
  };
  if (forward === "tunnel" && d.tunnel) {
    spec.tunnelType = tunnelKind(d.tunnel.type);
    spec.tunnelPort = d.tunnel.port;
    spec.tunnelFlags = (d.tunnel.checksum ? IP_VS_TUNNEL_ENCAP_FLAG_CSUM : 0) | (d.tunnel.remoteChecksum ? IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM : 0);
  }
  return spec;
}

function fwmarkProtocol(p: Protocol): "tcp" | "udp" | "sctp" | undefined {
  return p === Protocol.TCP ? "tcp" : p === Protocol.UDP ? "udp" : p === Protocol.SCTP ? "sctp" : undefined;
}

/** One service with its destinations in kernel terms (duplicate destinations keep the first). */
export function serviceStateFromProto(s: PbService): ServiceState {
  const service = serviceSpecFromProto(s);
  const destinations: DestinationSpec[] = [];
  const dseen = new Set<string>();
  for (const d of s.destinations) {
    const spec = destinationSpecFromProto(d);
    const dk = destinationKey(spec);
    if (dseen.has(dk)) continue;
    dseen.add(dk);
    destinations.push(spec);
  }
  return { service, destinations };
}

/** The whole host in kernel terms. Duplicate keys (which compile never emits) keep the first. */
export function desiredFromProto(ds: HostDesiredState, opts: DesiredOptions = {}): DesiredHost {
  const services: ServiceState[] = [];
  const seen = new Set<string>();
  for (const s of ds.director?.services ?? []) {
    const st = serviceStateFromProto(s);
    const k = serviceKey(st.service);
    if (seen.has(k)) continue;
    seen.add(k);
    services.push(st);
  }

  const addresses: Vip[] = [];
  const aseen = new Set<string>();
  for (const a of [...(ds.director?.addresses ?? []), ...(ds.realServer?.addresses ?? [])]) {
    const address = canonicalIp(a.address);
    const vip: Vip = { ifname: a.interface || "lo", address, prefixLen: a.prefixLength || (address.includes(":") ? 128 : 32) };
    const k = addressKey(vip);
    if (aseen.has(k)) continue;
    aseen.add(k);
    addresses.push(vip);
  }

  const rules: FwmarkRule[] = (ds.director?.fwmarkRules ?? []).map((r) => ({
    mark: r.mark,
    matches: r.matches.map((m) => {
      const out: FwmarkRule["matches"][number] = { destinations: [...m.destinations], ports: m.ports.map((p) => ({ start: p.start, end: p.end })) };
      const proto = fwmarkProtocol(m.protocol);
      if (proto) out.protocol = proto;
      return out;
    }),
  }));

  const tunnels: TunnelDevice[] = [];
  for (const t of ds.realServer?.tunnels ?? []) if (!tunnels.some((x) => x.name === t.name)) tunnels.push({ name: t.name, type: tunnelKind(t.type) });

  const fouPorts: FouPortSpec[] = [];
  for (const p of ds.realServer?.fouPorts ?? []) {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new DesiredStateError(`fou port ${p.port}: not 1..65535`);
    const family: Family = p.addressFamily === AddressFamily.IPV6 ? "ipv6" : "ipv4";
    if (!fouPorts.some((x) => x.port === p.port && x.family === family)) fouPorts.push({ port: p.port, family });
  }

  const t = ds.director?.timeouts;
  const host: DesiredHost = {
    services,
    addresses,
    fwmarkRules: opts.canonicalFwmarkRules ? opts.canonicalFwmarkRules(rules) : rules,
    sysctls: ds.sysctls.map((s) => ({ key: s.key, value: s.value })),
    tunnels,
  };
  if (fouPorts.length > 0) host.fouPorts = fouPorts;
  if (t && (t.tcpSeconds || t.tcpFinSeconds || t.udpSeconds)) host.timeouts = { tcp: t.tcpSeconds, tcpFin: t.tcpFinSeconds, udp: t.udpSeconds };
  return host;
}

/** Nothing at all: what a host with no role must hold (everything lvsfleet owns goes). */
export function emptyDesired(): DesiredHost {
  return { services: [], addresses: [], fwmarkRules: [], sysctls: [], tunnels: [] };
}
