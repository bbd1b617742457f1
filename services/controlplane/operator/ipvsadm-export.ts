/**
 * What a Director should hold, in exactly the format `ipvsadm -S -n` prints (ipvsadm 1.31), so that
 * `ipvsadm -R` restores it on a host without an agent (break-glass). Pure.
 *
 * Lines and option order, as ipvsadm's print_service_entry() writes them (checked byte for byte
 * against the real ipvsadm in the VM harness, test/kernel/ipvsadm-roundtrip.test.ts):
 *
 *   -A -t 192.0.2.10:80 -s wlc[ -p T[ -M MASK]][ --pe NAME][ -o][ -b FLAGS]
 *   -a -t 192.0.2.10:80 -r 198.51.100.11:80 -g|-m -w W
 *   -a -t 192.0.2.10:80 -r 198.51.100.12:80 -i -w W --tun-type ipip
 *   -a -t 192.0.2.10:80 -r 198.51.100.13:80 -i -w W --tun-type gue --tun-port P --tun-nocsum|--tun-csum|--tun-remcsum
 *   -a -t 192.0.2.10:80 -r 198.51.100.14:80 -i -w W --tun-type gre --tun-nocsum|--tun-csum
 *
 * `-M` only when the prefix is not the full length (32 / 128; IPv4 as a dotted netmask, IPv6 as a
 * length); `-b` flags in bit order (…-fallback, …-port); `-6` after `-f N` for IPv6 fwmark services;
 * IPv6 in brackets, RFC 5952 text (glibc inet_ntop's). GUE/GRE without a checksum flag print
 * `--tun-nocsum` (the kernel's flags 0).
 *
 * One addition: `ipvsadm -S` never prints the connection thresholds (-x/-y), so a restore from its
 * output silently drops them. We append ` -x U -y L` to a real server line when either is set, so a
 * break-glass restore keeps them; files written by `ipvsadm -S` never carry thresholds, so their
 * round trip stays byte-identical.
 *
 * Ordering — the round-trip rule. `ipvsadm -S` does not print the kernel's hash-table order: unless
 * --nosort, list_all() sorts services with libipvs ipvs_cmp_services() (fwmark, address family,
 * protocol, address, port) and each service's destinations with ipvs_cmp_dests() (address, port).
 * We sort with the same comparators, including their C `int` arithmetic (unsigned differences
 * wrapped to int32), so an import → export of an `ipvsadm -S -n` file is byte-identical without
 * storing any import order, and an export equals what `ipvsadm -S -n` prints after `ipvsadm -R`.
 */
import type { RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { parseAddress } from "../domain/address.js";

export interface ExportService {
  virtualService: VirtualService;
  realServers: readonly RealServer[];
}

const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO: Partial<Record<Protocol, number>> = { [Protocol.TCP]: 6, [Protocol.UDP]: 17, [Protocol.SCTP]: 132 };
const SCHED_FLAG_ORDER = ["sh-fallback", "sh-port", "mh-fallback", "mh-port"];

/** The address as four host-order 32-bit words (IPv4: [ip, 0, 0, 0], as in union nf_inet_addr). */
function words(address: string): { af: number; w: number[] } {
  const a = parseAddress(address);
  if ("reason" in a) return { af: AF_INET, w: [0, 0, 0, 0] };
  const b = a.bytes;
  const w = [0, 0, 0, 0];
  for (let i = 0; i < b.length / 4; i++) w[i] = ((b[4 * i]! << 24) | (b[4 * i + 1]! << 16) | (b[4 * i + 2]! << 8) | b[4 * i + 3]!) >>> 0;
  return { af: a.family === 4 ? AF_INET : AF_INET6, w };
}

/** C: `int r = (unsigned)a - (unsigned)b;` */
function cdiff(a: number, b: number): number {
  return (a - b) | 0;
}

interface SvcKey {
  fwmark: number;
  af: number;
  protocol: number;
  w: number[];
  port: number;
}

function svcKey(vs: VirtualService): SvcKey {
  if (vs.fwmark !== 0) {
    return { fwmark: vs.fwmark >>> 0, af: vs.addressFamily === AddressFamily.IPV6 ? AF_INET6 : AF_INET, protocol: 0, w: [0, 0, 0, 0], port: 0 };
  }
  const { af, w } = words(vs.address);
  return { fwmark: 0, af, protocol: IPPROTO[vs.protocol] ?? 0, w, port: vs.port };
}

/** libipvs ipvs_cmp_services(). */
export function compareServices(a: SvcKey, b: SvcKey): number {
  let r = cdiff(a.fwmark, b.fwmark);
  if (r !== 0) return r;
  r = a.af - b.af;
  if (r !== 0) return r;
  r = a.protocol - b.protocol;
  if (r !== 0) return r;
  if (a.af === AF_INET6) {
    for (let i = 0; r === 0 && i < 4; i++) r = cdiff(a.w[i]!, b.w[i]!);
  } else r = cdiff(a.w[0]!, b.w[0]!);
  if (r !== 0) return r;
  return a.port - b.port;
}

interface DestKey {
  af: number;
  w: number[];
  port: number;
}

/** libipvs ipvs_cmp_dests(): the first destination's family decides how many words compare. */
export function compareDests(a: DestKey, b: DestKey): number {
  let r = 0;
  if (a.af === AF_INET6) {
    for (let i = 0; r === 0 && i < 4; i++) r = cdiff(a.w[i]!, b.w[i]!);
  } else r = cdiff(a.w[0]!, b.w[0]!);
  if (r !== 0) return r;
  return a.port - b.port;
}

function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function ipv4Netmask(prefix: number): string {
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** The service selector: `-t 192.0.2.1:80`, `-u [2001:db8::1]:53`, `--sctp-service …`, `-f 10`, `-f 10 -6`. */
export function serviceSelector(vs: VirtualService): string {
  if (vs.fwmark !== 0) return `-f ${vs.fwmark}${vs.addressFamily === AddressFamily.IPV6 ? " -6" : ""}`;
  const flag = vs.protocol === Protocol.UDP ? "-u" : vs.protocol === Protocol.SCTP ? "--sctp-service" : "-t";
  return `${flag} ${hostPort(canonical(vs.address), vs.port)}`;
}

function canonical(address: string): string {
  const a = parseAddress(address);
  return "reason" in a ? address : a.canonical;
}

function serviceLine(vs: VirtualService): string {
  let s = `-A ${serviceSelector(vs)} -s ${vs.scheduler || "wlc"}`;
  const p = vs.persistence;
  if (p && p.timeoutSeconds > 0) {
    s += ` -p ${p.timeoutSeconds}`;
    const v6 = vs.fwmark !== 0 ? vs.addressFamily === AddressFamily.IPV6 : canonical(vs.address).includes(":");
    const plen = p.prefixLength ?? (v6 ? 128 : 32);
    if (v6 && plen !== 128) s += ` -M ${plen}`;
    if (!v6 && plen !== 32) s += ` -M ${ipv4Netmask(plen)}`;
  }
  if (vs.persistenceEngine) s += ` --pe ${vs.persistenceEngine}`;
  if (vs.onePacket) s += " -o";
  // Last, after --pe and -o (measured: `-p 60 -M 255.255.0.0 --pe sip -o -b sh-fallback`).
  if (vs.schedulerFlags.length > 0) {
    const flags = [...vs.schedulerFlags].sort((a, b) => rank(a) - rank(b));
    s += ` -b ${flags.join(",")}`;
  }
  return s;
}

function rank(flag: string): number {
  const i = SCHED_FLAG_ORDER.indexOf(flag);
  return i < 0 ? SCHED_FLAG_ORDER.length : i;
}

const FWD_SWITCH: Partial<Record<ForwardMethod, string>> = { [ForwardMethod.NAT]: "-m", [ForwardMethod.DR]: "-g", [ForwardMethod.TUN]: "-i" };

function serverLine(vs: VirtualService, sel: string, rs: RealServer): string {
  // Port 0 means "the service's port" in lvsfleet; the kernel holds the service port then.
  const port = rs.port !== 0 ? rs.port : vs.fwmark !== 0 ? 0 : vs.port;
  const fwd = rs.forwardMethod === ForwardMethod.UNSPECIFIED ? ForwardMethod.DR : rs.forwardMethod;
  let s = `-a ${sel} -r ${hostPort(canonical(rs.address), port)} ${FWD_SWITCH[fwd] ?? "-g"} -w ${rs.weight ?? 1}`;
  if (fwd === ForwardMethod.TUN) {
    const t = rs.tunnel;
    const type = t?.type ?? TunnelType.IPIP;
    const csum = t?.remoteChecksum ? "--tun-remcsum" : t?.checksum ? "--tun-csum" : "--tun-nocsum";
    if (type === TunnelType.GUE) s += ` --tun-type gue --tun-port ${t?.port ?? 0} ${csum}`;
    else if (type === TunnelType.GRE) s += ` --tun-type gre ${csum}`;
    else s += " --tun-type ipip";
  }
  if (rs.upperThreshold || rs.lowerThreshold) s += ` -x ${rs.upperThreshold} -y ${rs.lowerThreshold}`;
  return s;
}

/** The `ipvsadm -S -n` text of these services and their real servers, in ipvsadm's order. */
export function formatIpvsadmSave(services: readonly ExportService[]): string {
  const sorted = services.map((s) => ({ s, k: svcKey(s.virtualService) })).sort((a, b) => compareServices(a.k, b.k));
  const out: string[] = [];
  for (const { s } of sorted) {
    const vs = s.virtualService;
    const sel = serviceSelector(vs);
    out.push(serviceLine(vs));
    const dests = s.realServers
      .map((rs) => {
        const { af, w } = words(rs.address);
        return { rs, k: { af, w, port: rs.port !== 0 ? rs.port : vs.fwmark !== 0 ? 0 : vs.port } };
      })
      .sort((a, b) => compareDests(a.k, b.k));
    for (const { rs } of dests) out.push(serverLine(vs, sel, rs));
  }
  return out.length ? out.join("\n") + "\n" : "";
}
