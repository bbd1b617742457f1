// rtnetlink message codec: pure functions from typed requests to netlink payloads and from reply
// payloads to typed objects. No I/O. The payload is everything after the 16-byte nlmsghdr:
//
//   RTM_*LINK   ifinfomsg (16 bytes)                              then attributes (IFLA_*)
//   0               1               2               3
//   +---------------+---------------+-------------------------------+
//   | ifi_family    | (pad)         | ifi_type (u16)                |
//   +---------------+---------------+-------------------------------+
//   | ifi_index (s32)                                               |
//   | ifi_flags (u32, IFF_*)                                        |
//   | ifi_change (u32, mask of ifi_flags bits to change)            |
//   +---------------------------------------------------------------+
//
//   RTM_*ADDR   ifaddrmsg (8 bytes)                               then attributes (IFA_*)
//   +---------------+---------------+---------------+---------------+
//   | ifa_family    | ifa_prefixlen | ifa_flags     | ifa_scope     |
//   +---------------+---------------+---------------+---------------+
//   | ifa_index (u32)                                               |
//   +---------------------------------------------------------------+
//
//   RTM_*ROUTE  rtmsg (12 bytes)                                  then attributes (RTA_*)
//   +---------------+---------------+---------------+---------------+
//   | rtm_family    | rtm_dst_len   | rtm_src_len   | rtm_tos       |
//   +---------------+---------------+---------------+---------------+
//   | rtm_table     | rtm_protocol  | rtm_scope     | rtm_type      |
//   +---------------+---------------+---------------+---------------+
//   | rtm_flags (u32)                                               |
//   +---------------------------------------------------------------+
//
// Attribute order follows what iproute2 6.1 sends for the same command (fixtures in
// codec.test.ts were captured with strace), so a request can be compared byte for byte.

import { AttrWriter, NLM_F_CREATE, NLM_F_EXCL, attrMap, attrNested, attrString, attrU32, attrU8, decodeAttrs, type NetlinkAttr } from "../wire.js";
import { NetlinkDecodeError, NetlinkEncodeError } from "../errors.js";
import type { NetlinkRequest } from "../socket.js";
import { addressToBytes, bytesToAddress, ipFamily } from "../../kernel/ipaddr.js";
import type { IpFamily } from "../../kernel/types.js";
import * as C from "./constants.js";

// --- fixed headers ------------------------------------------------------------------------------

export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}

export function encodeIfInfoMsg(h: Partial<IfInfoMsg> = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(h.family ?? C.AF_UNSPEC, 0);
  b.writeUInt16LE(h.type ?? 0, 2);
  b.writeInt32LE(h.index ?? 0, 4);
  b.writeUInt32LE((h.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((h.change ?? 0) >>> 0, 12);
  return b;
}

export function decodeIfInfoMsg(p: Buffer): IfInfoMsg {
  if (p.length < 16) throw new NetlinkDecodeError(`ifinfomsg too short (${p.length})`);
  return { family: p.readUInt8(0), type: p.readUInt16LE(2), index: p.readInt32LE(4), flags: p.readUInt32LE(8), change: p.readUInt32LE(12) };
}

export interface IfAddrMsg {
  family: number;
  prefixLen: number;
  flags: number;
  scope: number;
  index: number;
}

export function encodeIfAddrMsg(h: IfAddrMsg): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(h.family, 0);
  b.writeUInt8(h.prefixLen, 1);
  b.writeUInt8(h.flags & 0xff, 2);
  b.writeUInt8(h.scope, 3);
  b.writeUInt32LE(h.index >>> 0, 4);
  return b;
}

export function decodeIfAddrMsg(p: Buffer): IfAddrMsg {
  if (p.length < 8) throw new NetlinkDecodeError(`ifaddrmsg too short (${p.length})`);
  return { family: p.readUInt8(0), prefixLen: p.readUInt8(1), flags: p.readUInt8(2), scope: p.readUInt8(3), index: p.readUInt32LE(4) };
}

export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}

export function encodeRtMsg(h: RtMsg): Buffer {
  const b = Buffer.alloc(12);
  [h.family, h.dstLen, h.srcLen, h.tos, h.table, h.protocol, h.scope, h.type].forEach((v, i) => b.writeUInt8(v, i));
  b.writeUInt32LE(h.flags >>> 0, 8);
  return b;
}

export function decodeRtMsg(p: Buffer): RtMsg {
  if (p.length < 12) throw new NetlinkDecodeError(`rtmsg too short (${p.length})`);
  return {
    family: p[0],
    dstLen: p[1],
    srcLen: p[2],
    tos: p[3],
    table: p[4],
    protocol: p[5],
    scope: p[6],
    type: p[7],
    flags: p.readUInt32LE(8),
  };
}

// --- helpers ------------------------------------------------------------------------------------

export function familyOf(address: string, field = "address"): IpFamily {
  const f = ipFamily(address);
  if (!f) throw new NetlinkEncodeError(`${field}: not an IP address: ${JSON.stringify(address)}`);
  return f;
}

export const afOf = (f: IpFamily): number => (f === 4 ? C.AF_INET : C.AF_INET6);

function checkIfname(name: string, field = "ifname"): void {
  const n = Buffer.byteLength(name);
  if (n === 0 || n >= C.IFNAMSIZ || /[/:\s]/.test(name) || name === "." || name === "..") {
    throw new NetlinkEncodeError(`${field}: invalid interface name ${JSON.stringify(name)} (1..15 bytes, no '/', ':' or whitespace)`);
  }
}

function addrAttr(a: NetlinkAttr, field: string): string {
  if (a.data.length !== 4 && a.data.length !== 16) throw new NetlinkDecodeError(`${field}: address of ${a.data.length} bytes`);
  return bytesToAddress(a.data);
}

// --- links --------------------------------------------------------------------------------------

/** RTM_GETLINK for one name (iproute2's ll_name_to_index request). */
export function getLinkByNameRequest(name: string): NetlinkRequest {
  checkIfname(name);
  const w = new AttrWriter().raw(encodeIfInfoMsg()).u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_VF | C.RTEXT_FILTER_SKIP_STATS).string(C.IFLA_IFNAME, name);
  return { type: C.RTM_GETLINK, payload: w.finish(), op: `RTM_GETLINK ${name}` };
}

export function dumpLinksRequest(): NetlinkRequest {
  const w = new AttrWriter().raw(encodeIfInfoMsg()).u32(C.IFLA_EXT_MASK, C.RTEXT_FILTER_SKIP_STATS);
  return { type: C.RTM_GETLINK, payload: w.finish(), op: "RTM_GETLINK dump" };
}

export interface IpipRequestSpec {
  name: string;
  local?: string;
  remote?: string;
  ttl?: number;
  mtu?: number;
}

/**
 * RTM_NEWLINK kind "ipip", NLM_F_CREATE|NLM_F_EXCL. Same attributes in the same order as
 * `ip link add name N type ipip local L remote R ttl T` (iproute2 6.1 link_iptnl.c), so the
 * kernel sees exactly what it sees from iproute2: pmtudisc on, tos inherit, no encap, no fwmark.
 */
export function newIpipRequest(spec: IpipRequestSpec): NetlinkRequest {
  checkIfname(spec.name, "name");
  const v4 = (a: string | undefined, field: string): Buffer => {
    if (a === undefined) return Buffer.alloc(4);
    if (ipFamily(a) !== 4) throw new NetlinkEncodeError(`${field}: ipip endpoints are IPv4, got ${JSON.stringify(a)}`);
    return addressToBytes(a);
  };
  const local = v4(spec.local, "local");
  const remote = v4(spec.remote, "remote");
  const w = new AttrWriter().raw(encodeIfInfoMsg()).string(C.IFLA_IFNAME, spec.name);
  if (spec.mtu !== undefined) w.u32(C.IFLA_MTU, spec.mtu);
  w.nested(C.IFLA_LINKINFO, (li) => {
    // iproute2 sends the kind without a terminating NUL (NLA_STRING accepts both).
    li.bytes(C.IFLA_INFO_KIND, Buffer.from("ipip"));
    li.nested(C.IFLA_INFO_DATA, (d) => {
      d.u8(C.IFLA_IPTUN_PROTO, 0);
      d.bytes(C.IFLA_IPTUN_LOCAL, local);
      d.bytes(C.IFLA_IPTUN_REMOTE, remote);
      d.u8(C.IFLA_IPTUN_PMTUDISC, 1);
      d.u8(C.IFLA_IPTUN_TOS, 0);
      d.u8(C.IFLA_IPTUN_TTL, spec.ttl ?? 0);
      d.u32(C.IFLA_IPTUN_LINK, 0);
      d.u32(C.IFLA_IPTUN_FWMARK, 0);
      d.u16(C.IFLA_IPTUN_ENCAP_TYPE, 0);
      d.u16(C.IFLA_IPTUN_ENCAP_FLAGS, 0);
      d.be16(C.IFLA_IPTUN_ENCAP_SPORT, 0);
      d.be16(C.IFLA_IPTUN_ENCAP_DPORT, 0);
    });
  });
  return { type: C.RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, payload: w.finish(), op: `RTM_NEWLINK ipip ${spec.name}` };
}

/**
 * `ip link add NAME type KIND` with no parameters (RTM_NEWLINK, NLM_F_CREATE|NLM_F_EXCL): only the
 * kind in IFLA_LINKINFO. The kernel loads the module behind the kind on demand ("rtnl-link-KIND").
 */
export function newLinkOfKindRequest(name: string, kind: string): NetlinkRequest {
  checkIfname(name, "name");
  if (!/^[a-z0-9_]{1,15}$/.test(kind)) throw new NetlinkEncodeError(`link kind: ${JSON.stringify(kind)} is not a link kind name`);
  const w = new AttrWriter().raw(encodeIfInfoMsg()).string(C.IFLA_IFNAME, name);
  w.nested(C.IFLA_LINKINFO, (li) => li.bytes(C.IFLA_INFO_KIND, Buffer.from(kind)));
  return { type: C.RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, payload: w.finish(), op: `RTM_NEWLINK ${kind} ${name}` };
}

/** `ip link set dev X up|down`: RTM_NEWLINK with ifi_change = IFF_UP. */
export function setLinkUpRequest(index: number, name: string, up: boolean): NetlinkRequest {
  const w = new AttrWriter().raw(encodeIfInfoMsg({ index, flags: up ? C.IFF_UP : 0, change: C.IFF_UP }));
  return { type: C.RTM_NEWLINK, payload: w.finish(), op: `RTM_NEWLINK ${name} ${up ? "up" : "down"}` };
}

export function delLinkRequest(index: number, name: string): NetlinkRequest {
  return { type: C.RTM_DELLINK, payload: new AttrWriter().raw(encodeIfInfoMsg({ index })).finish(), op: `RTM_DELLINK ${name}` };
}

export interface DecodedLink {
  index: number;
  name: string;
  kind?: string;
  flags: number;
  up: boolean;
  mtu: number;
  operState: string;
  tunnel?: { local: string; remote: string; ttl: number };
}

export function decodeLink(payload: Buffer): DecodedLink {
  const h = decodeIfInfoMsg(payload);
  const a = attrMap(decodeAttrs(payload, 16));
  const name = a.get(C.IFLA_IFNAME);
  if (!name) throw new NetlinkDecodeError(`link ${h.index} without IFLA_IFNAME`);
  const op = a.get(C.IFLA_OPERSTATE);
  const out: DecodedLink = {
    index: h.index,
    name: attrString(name),
    flags: h.flags,
    up: (h.flags & C.IFF_UP) !== 0,
    mtu: a.get(C.IFLA_MTU) ? attrU32(a.get(C.IFLA_MTU)!) : 0,
    operState: op ? (C.OPER_STATES[attrU8(op)] ?? String(attrU8(op))) : "unknown",
  };
  const li = a.get(C.IFLA_LINKINFO);
  if (li) {
    const info = attrMap(attrNested(li));
    const kind = info.get(C.IFLA_INFO_KIND);
    if (kind) out.kind = attrString(kind);
    const data = info.get(C.IFLA_INFO_DATA);
    if (out.kind === "ipip" && data) {
      const d = attrMap(attrNested(data));
      out.tunnel = {
        local: d.get(C.IFLA_IPTUN_LOCAL) ? addrAttr(d.get(C.IFLA_IPTUN_LOCAL)!, "IFLA_IPTUN_LOCAL") : "0.0.0.0",
        remote: d.get(C.IFLA_IPTUN_REMOTE) ? addrAttr(d.get(C.IFLA_IPTUN_REMOTE)!, "IFLA_IPTUN_REMOTE") : "0.0.0.0",
        ttl: d.get(C.IFLA_IPTUN_TTL) ? attrU8(d.get(C.IFLA_IPTUN_TTL)!) : 0,
      };
    }
  }
  return out;
}

// --- addresses ----------------------------------------------------------------------------------

export function dumpAddressesRequest(family?: IpFamily): NetlinkRequest {
  const w = new AttrWriter().raw(encodeIfAddrMsg({ family: family ? afOf(family) : C.AF_UNSPEC, prefixLen: 0, flags: 0, scope: 0, index: 0 }));
  return { type: C.RTM_GETADDR, payload: w.finish(), op: "RTM_GETADDR dump" };
}

export interface AddressRequestSpec {
  index: number;
  ifname: string;
  address: string;
  prefixLen: number;
  /** IFA_LABEL (IPv4 only; the kernel stores labels only for IPv4). */
  label?: string;
  /** IFA_PROTO; omitted = not sent. */
  proto?: number;
  /** ifa_flags (e.g. IFA_F_NODAD for IPv6). */
  flags?: number;
}

/**
 * RTM_NEWADDR, NLM_F_CREATE|NLM_F_EXCL: IFA_LOCAL, [IFA_LABEL], IFA_ADDRESS (iproute2's order),
 * then IFA_PROTO (which iproute2 < 6.3 cannot send).
 */
export function newAddressRequest(s: AddressRequestSpec): NetlinkRequest {
  const family = familyOf(s.address);
  const bits = family === 4 ? 32 : 128;
  if (!Number.isInteger(s.prefixLen) || s.prefixLen < 0 || s.prefixLen > bits) throw new NetlinkEncodeError(`prefixLen: ${s.prefixLen} out of 0..${bits}`);
  const bytes = addressToBytes(s.address);
  const w = new AttrWriter()
    .raw(encodeIfAddrMsg({ family: afOf(family), prefixLen: s.prefixLen, flags: s.flags ?? 0, scope: 0, index: s.index }))
    .bytes(C.IFA_LOCAL, bytes);
  if (s.label !== undefined) {
    if (family !== 4) throw new NetlinkEncodeError("label: IPv6 addresses have no label");
    w.string(C.IFA_LABEL, s.label, C.IFNAMSIZ);
  }
  w.bytes(C.IFA_ADDRESS, bytes);
  if (s.proto !== undefined) w.u8(C.IFA_PROTO, s.proto);
  return { type: C.RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL, payload: w.finish(), op: `RTM_NEWADDR ${s.address}/${s.prefixLen} dev ${s.ifname}` };
}

/** RTM_DELADDR: IFA_LOCAL, IFA_ADDRESS (iproute2's `ip addr del`). */
export function delAddressRequest(s: Omit<AddressRequestSpec, "label" | "proto" | "flags">): NetlinkRequest {
  const family = familyOf(s.address);
  const bytes = addressToBytes(s.address);
  const w = new AttrWriter()
    .raw(encodeIfAddrMsg({ family: afOf(family), prefixLen: s.prefixLen, flags: 0, scope: 0, index: s.index }))
    .bytes(C.IFA_LOCAL, bytes)
    .bytes(C.IFA_ADDRESS, bytes);
  return { type: C.RTM_DELADDR, payload: w.finish(), op: `RTM_DELADDR ${s.address}/${s.prefixLen} dev ${s.ifname}` };
}

export interface DecodedAddress {
  index: number;
  family: IpFamily;
  address: string;
  prefixLen: number;
  label?: string;
  proto: number;
  flags: number;
  scope: number;
}

export function decodeAddress(payload: Buffer): DecodedAddress | undefined {
  const h = decodeIfAddrMsg(payload);
  if (h.family !== C.AF_INET && h.family !== C.AF_INET6) return undefined;
  const a = attrMap(decodeAttrs(payload, 8));
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
  const local = a.get(C.IFA_LOCAL) ?? a.get(C.IFA_ADDRESS);
  if (!local) return undefined;
  const out: DecodedAddress = {
    index: h.index,
    family: h.family === C.AF_INET ? 4 : 6,
    address: addrAttr(local, "IFA_LOCAL"),
    prefixLen: h.prefixLen,
    proto: a.get(C.IFA_PROTO) ? attrU8(a.get(C.IFA_PROTO)!) : 0,
    flags: a.get(C.IFA_FLAGS) ? attrU32(a.get(C.IFA_FLAGS)!) : h.flags,
    scope: h.scope,
  };
  const label = a.get(C.IFA_LABEL);
  if (label) out.label = attrString(label);
  return out;
}

// --- routes -------------------------------------------------------------------------------------

export function dumpRoutesRequest(family?: IpFamily): NetlinkRequest {
  const w = new AttrWriter().raw(
    encodeRtMsg({ family: family ? afOf(family) : C.AF_UNSPEC, dstLen: 0, srcLen: 0, tos: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 }),
  );
  return { type: C.RTM_GETROUTE, payload: w.finish(), op: "RTM_GETROUTE dump" };
}

export interface RouteRequestSpec {
  family: IpFamily;
  /** Network address and prefix length of the destination. */
  dst: string;
  dstLen: number;
  gateway?: string;
  oif?: number;
  table: number;
  protocol: number;
  metric?: number;
}

function routeMessage(s: RouteRequestSpec, type: number, flags: number, op: string): NetlinkRequest {
  const del = type === C.RTM_DELROUTE;
  const af = afOf(s.family);
  const w = new AttrWriter().raw(
    encodeRtMsg({
      family: af,
      dstLen: s.dstLen,
      srcLen: 0,
      tos: 0,
      // Tables above 255 only fit RTA_TABLE; the header then says RT_TABLE_UNSPEC (iproute2 does the same).
      table: s.table < 256 ? s.table : 0,
      protocol: s.protocol,
      // A route via a gateway is universe scope; a direct ("dev X") route is link scope. Deletes
      // use the wildcards RT_SCOPE_NOWHERE and RTN_UNSPEC, as iproute2 does (fib_table_delete
      // treats them as "any").
      scope: del ? C.RT_SCOPE_NOWHERE : s.gateway ? C.RT_SCOPE_UNIVERSE : C.RT_SCOPE_LINK,
      type: del ? C.RTN_UNSPEC : C.RTN_UNICAST,
      flags: 0,
    }),
  );
  if (s.table >= 256) w.u32(C.RTA_TABLE, s.table);
  if (s.dstLen > 0) w.bytes(C.RTA_DST, addressToBytes(s.dst));
  if (s.gateway) {
    if (ipFamily(s.gateway) !== s.family) throw new NetlinkEncodeError(`gateway: ${s.gateway} is not IPv${s.family}`);
    w.bytes(C.RTA_GATEWAY, addressToBytes(s.gateway));
  }
  if (s.metric !== undefined) w.u32(C.RTA_PRIORITY, s.metric);
  if (s.oif !== undefined) w.u32(C.RTA_OIF, s.oif);
  return { type, flags, payload: w.finish(), op };
}

export function newRouteRequest(s: RouteRequestSpec): NetlinkRequest {
  return routeMessage(s, C.RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, `RTM_NEWROUTE ${s.dst}/${s.dstLen}`);
}

export function delRouteRequest(s: RouteRequestSpec): NetlinkRequest {
  return routeMessage(s, C.RTM_DELROUTE, 0, `RTM_DELROUTE ${s.dst}/${s.dstLen}`);
}

export interface DecodedRoute {
  family: IpFamily;
  dst: string;
  dstLen: number;
  gateway?: string;
  oif?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  metric?: number;
}

export function decodeRoute(payload: Buffer): DecodedRoute | undefined {
  const h = decodeRtMsg(payload);
  if (h.family !== C.AF_INET && h.family !== C.AF_INET6) return undefined;
  const family: IpFamily = h.family === C.AF_INET ? 4 : 6;
  const a = attrMap(decodeAttrs(payload, 12));
  const dst = a.get(C.RTA_DST);
  const out: DecodedRoute = {
    family,
    dst: dst ? addrAttr(dst, "RTA_DST") : family === 4 ? "0.0.0.0" : "::",
    dstLen: h.dstLen,
    table: a.get(C.RTA_TABLE) ? attrU32(a.get(C.RTA_TABLE)!) : h.table,
    protocol: h.protocol,
    scope: h.scope,
    type: h.type,
  };
  if (a.get(C.RTA_GATEWAY)) out.gateway = addrAttr(a.get(C.RTA_GATEWAY)!, "RTA_GATEWAY");
  if (a.get(C.RTA_OIF)) out.oif = attrU32(a.get(C.RTA_OIF)!);
  if (a.get(C.RTA_PRIORITY)) out.metric = attrU32(a.get(C.RTA_PRIORITY)!);
  return out;
}
