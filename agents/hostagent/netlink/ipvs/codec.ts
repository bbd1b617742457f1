/*
 * IPVS generic netlink codec — pure encode/decode, no I/O (the client does the talking).
 *
 * One IPVS message on the wire (host byte order unless marked "be" = network order):
 *
 *   0               1               2               3
 *   +---------------------------------------------------------------+
 *   |                      nlmsg_len (u32)                          |  nlmsghdr (16 bytes)
 *   +-------------------------------+-------------------------------+  -- framed by socket.ts
 *   |  nlmsg_type = IPVS family id  |  nlmsg_flags (REQUEST|ACK...) |
 *   +-------------------------------+-------------------------------+
 *   |                      nlmsg_seq (u32)                          |
 *   +---------------------------------------------------------------+
 *   |                      nlmsg_pid (u32, our port id)             |
 *   +===============+===============+===============================+
 *   | cmd IPVS_CMD_*| version = 1   |        reserved = 0           |  genlmsghdr (4 bytes)
 *   +===============+===============+===============================+  -- from here: this codec
 *   | nla_len       | nla_type = IPVS_CMD_ATTR_SERVICE (nested)     |
 *   +-------------------------------+-------------------------------+
 *   |   | IPVS_SVC_ATTR_AF          u16   2 (AF_INET) / 10 (AF_INET6)
 *   |   | IPVS_SVC_ATTR_PROTOCOL    u16   6 / 17 / 132     \
 *   |   | IPVS_SVC_ATTR_ADDR        16 bytes (v4 in first 4) } or IPVS_SVC_ATTR_FWMARK u32
 *   |   | IPVS_SVC_ATTR_PORT        be16                   /
 *   |   | IPVS_SVC_ATTR_SCHED_NAME  string, NUL-terminated, <= 15 chars
 *   |   | IPVS_SVC_ATTR_PE_NAME     string (optional, "sip")
 *   |   | IPVS_SVC_ATTR_FLAGS       struct ip_vs_flags { u32 flags; u32 mask }
 *   |   | IPVS_SVC_ATTR_TIMEOUT     u32 seconds
 *   |   | IPVS_SVC_ATTR_NETMASK     v4: be32 mask (ff ff ff 00); v6: u32 prefix length (80 00 00 00)
 *   |   | IPVS_SVC_ATTR_STATS / _STATS64   nested IPVS_STATS_ATTR_* (replies only)
 *   +-------------------------------+-------------------------------+
 *   | nla_len       | nla_type = IPVS_CMD_ATTR_DEST (nested)        |
 *   |   | IPVS_DEST_ATTR_ADDR_FAMILY u16 | _ADDR 16 bytes | _PORT be16
 *   |   | _FWD_METHOD u32 | _WEIGHT u32 | _TUN_TYPE u8 | _TUN_PORT be16 | _TUN_FLAGS u16
 *   |   | _U_THRESH u32 | _L_THRESH u32 | replies: _ACTIVE/_INACT/_PERSIST_CONNS u32, _STATS(64)
 *   +---------------------------------------------------------------+
 *   | IPVS_CMD_ATTR_DAEMON (nested) | IPVS_CMD_ATTR_TIMEOUT_TCP/_TCP_FIN/_UDP u32 | IPVS_INFO_ATTR_*
 *   +---------------------------------------------------------------+
 *   Every attribute: u16 nla_len (header + value), u16 nla_type, value, zero padding to 4 bytes.
 *
 * Attribute order follows what ipvsadm (libipvs, via libnl) sends, so encodings can be compared with
 * captures of `ipvsadm` byte for byte (testdata/). Kernel side: net/netfilter/ipvs/ip_vs_ctl.c
 * (ip_vs_genl_parse_service/_dest, ip_vs_genl_fill_service/_dest/_stats/_daemon).
 *
 * Decoding never throws anything but NetlinkDecodeError; encoding throws NetlinkEncodeError for
 * values that cannot be represented (bad address, name too long, number out of range).
 */
import { NetlinkDecodeError, NetlinkEncodeError } from "../errors.js";
import { addressFromBytes, addressToBytes, writeAddress, type InetFamily } from "../inet.js";
import { AttrWriter, NLA_HDRLEN, NLA_TYPE_MASK } from "../wire.js";
import * as C from "./constants.js";

// ---------------------------------------------------------------------------------------------
// Domain objects

export type IpvsFamily = InetFamily; // "ipv4" | "ipv6"
export type IpvsProtocol = "tcp" | "udp" | "sctp";
/** IP_VS_CONN_F_MASQ (NAT, ipvsadm -m), _LOCALNODE, _TUNNEL (-i), _DROUTE (DR, -g), _BYPASS. */
export type IpvsForward = "masq" | "local" | "tunnel" | "route" | "bypass";
export type IpvsTunnelType = "ipip" | "gue" | "gre";

/**
 * Identifies a virtual service: either protocol + address + port, or a firewall mark (then
 * protocol/address/port are absent). Port 0 is a valid "all ports" service (needs persistence).
 */
export interface IpvsServiceKey {
  family: IpvsFamily;
  protocol?: IpvsProtocol;
  address?: string;
  port?: number;
  fwmark?: number;
}

export interface IpvsStats {
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
  cps: bigint;
  inPps: bigint;
  outPps: bigint;
  inBps: bigint;
  outBps: bigint;
}

export interface IpvsService extends IpvsServiceKey {
  scheduler: string;
  /** IP_VS_SVC_F_* bits (PERSISTENT, ONEPACKET, SCHED1..3 = sh/mh-fallback, sh/mh-port; HASHED is kernel-owned). */
  flags: number;
  /** Persistence timeout in seconds (0 = not persistent). */
  timeout: number;
  /** Persistence netmask. IPv4: the 32-bit mask as a number (0xffffff00 = /24); IPv6: prefix length. */
  netmask: number;
  /** Persistence engine ("sip"). */
  peName?: string;
  /** Replies only: IPVS_SVC_ATTR_STATS (32-bit counters) and IPVS_SVC_ATTR_STATS64. */
  stats?: IpvsStats;
  stats64?: IpvsStats;
}

/** Service attributes as they appear in a message (requests may carry only the key). */
export type IpvsServiceAttrs = IpvsServiceKey & Partial<Omit<IpvsService, keyof IpvsServiceKey>> & { flagsMask?: number };

export interface IpvsDestinationKey {
  address: string;
  port: number;
  /** IPVS_DEST_ATTR_ADDR_FAMILY; defaults to the family of `address`. */
  family?: IpvsFamily;
}

export interface IpvsDestination extends IpvsDestinationKey {
  forward: IpvsForward;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  tunnelType?: IpvsTunnelType;
  /** UDP port for GUE tunnels. */
  tunnelPort?: number;
  /** IP_VS_TUNNEL_ENCAP_FLAG_* */
  tunnelFlags?: number;
  activeConns?: number;
  inactiveConns?: number;
  persistentConns?: number;
  stats?: IpvsStats;
  stats64?: IpvsStats;
}

export type IpvsDestinationAttrs = IpvsDestinationKey & Partial<Omit<IpvsDestination, keyof IpvsDestinationKey>>;

/** Connection timeouts in seconds (ipvsadm --set tcp tcpfin udp); 0 in a SET means "leave as is". */
export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export interface IpvsInfo {
  /** IP_VS_VERSION_CODE-style 0x00MMmmpp. */
  version: number;
  versionString: string;
  connTableSize: number;
}

export type IpvsDaemonState = "master" | "backup";

export interface IpvsDaemon {
  state: IpvsDaemonState;
  mcastInterface: string;
  syncId: number;
  syncMaxLen?: number;
  mcastGroup?: string;
  mcastPort?: number;
  mcastTtl?: number;
}

/** Any IPVS genl message, request or reply. */
export interface IpvsMessage {
  cmd: number;
  version?: number;
  service?: IpvsServiceAttrs;
  dest?: IpvsDestinationAttrs;
  daemon?: Partial<IpvsDaemon> & { state?: IpvsDaemonState };
  timeouts?: Partial<IpvsTimeouts>;
  info?: IpvsInfo;
}

// ---------------------------------------------------------------------------------------------
// Enum mappings

const AF = { ipv4: C.AF_INET, ipv6: C.AF_INET6 } as const;
const PROTO = { tcp: C.IPPROTO_TCP, udp: C.IPPROTO_UDP, sctp: C.IPPROTO_SCTP } as const;
const FWD = {
  masq: C.IP_VS_CONN_F_MASQ,
  local: C.IP_VS_CONN_F_LOCALNODE,
  tunnel: C.IP_VS_CONN_F_TUNNEL,
  route: C.IP_VS_CONN_F_DROUTE,
  bypass: C.IP_VS_CONN_F_BYPASS,
} as const;
const TUN = { ipip: C.IP_VS_CONN_F_TUNNEL_TYPE_IPIP, gue: C.IP_VS_CONN_F_TUNNEL_TYPE_GUE, gre: C.IP_VS_CONN_F_TUNNEL_TYPE_GRE } as const;
const DAEMON_STATE = { master: C.IP_VS_STATE_MASTER, backup: C.IP_VS_STATE_BACKUP } as const;

function reverse<K extends string>(m: Record<K, number>, what: string): (n: number) => K {
  const r = new Map<number, K>();
  for (const [k, v] of Object.entries(m) as [K, number][]) r.set(v, k);
  return (n) => {
    const k = r.get(n);
    if (k === undefined) throw new NetlinkDecodeError(`unknown ${what} ${n}`);
    return k;
  };
}
const afName = reverse(AF, "address family");
const protoName = reverse(PROTO, "protocol");
const fwdName = reverse(FWD, "forwarding method");
const tunName = reverse(TUN, "tunnel type");
const daemonStateName = reverse(DAEMON_STATE, "sync daemon state");

function lookup<K extends string>(m: Record<K, number>, k: K, what: string): number {
  const v = m[k];
  if (v === undefined) throw new NetlinkEncodeError(`unknown ${what} ${JSON.stringify(k)}`);
  return v;
}

export const IPVS_CMD_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(C)
    .filter(([k, v]) => /^IPVS_CMD_[A-Z_]+$/.test(k) && !k.startsWith("IPVS_CMD_ATTR") && k !== "IPVS_CMD_MAX" && typeof v === "number")
    .map(([k, v]) => [v as number, k]),
);

export function cmdName(cmd: number): string {
  return IPVS_CMD_NAMES[cmd] ?? `IPVS_CMD_${cmd}`;
}

/** IPv4 persistence mask for a prefix length (ipvsadm -M 255.255.255.0 ⇔ v4Netmask(24)). */
export function v4Netmask(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new NetlinkEncodeError(`bad IPv4 prefix ${prefix}`);
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Default persistence netmask ipvsadm uses: 255.255.255.255 for IPv4, /128 for IPv6. */
export function defaultNetmask(family: IpvsFamily): number {
  return family === "ipv4" ? 0xffffffff : 128;
}

export function formatVersion(v: number): string {
  return `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`;
}

// ---------------------------------------------------------------------------------------------
// Encoding

// Request nests carry NLA_F_NESTED, as libnl's nla_nest_start() sets it (and so ipvsadm sends it);
// the kernel's replies do not (nla_nest_start_noflag) — decoding ignores the bit either way.
const NESTED = true;

function putService(w: AttrWriter, s: IpvsServiceAttrs): void {
  w.nested(C.IPVS_CMD_ATTR_SERVICE, (n) => {
    const family = s.family;
    n.u16(C.IPVS_SVC_ATTR_AF, lookup(AF, family, "address family"));
    if (s.fwmark !== undefined) {
      if (s.fwmark === 0) throw new NetlinkEncodeError("fwmark 0 does not name a service");
      n.u32(C.IPVS_SVC_ATTR_FWMARK, s.fwmark);
    } else {
      if (s.protocol === undefined || s.address === undefined || s.port === undefined) {
        throw new NetlinkEncodeError("a service needs fwmark, or protocol + address + port");
      }
      n.u16(C.IPVS_SVC_ATTR_PROTOCOL, lookup(PROTO, s.protocol, "protocol"));
      putAddr(n, C.IPVS_SVC_ATTR_ADDR, s.address, family);
      n.be16(C.IPVS_SVC_ATTR_PORT, s.port);
    }
    if (s.scheduler !== undefined) n.string(C.IPVS_SVC_ATTR_SCHED_NAME, s.scheduler, C.IP_VS_SCHEDNAME_MAXLEN);
    if (s.peName !== undefined && s.peName !== "") n.string(C.IPVS_SVC_ATTR_PE_NAME, s.peName, C.IP_VS_PENAME_MAXLEN);
    // struct ip_vs_flags { flags, mask }: ipvsadm sends mask ~0 (set every bit as given).
    if (s.flags !== undefined) n.u32pair(C.IPVS_SVC_ATTR_FLAGS, checkU32(s.flags, "flags"), checkU32(s.flagsMask ?? 0xffffffff, "flags mask"));
    if (s.timeout !== undefined) n.u32(C.IPVS_SVC_ATTR_TIMEOUT, s.timeout);
    if (s.netmask !== undefined) {
      if (family === "ipv4") n.be32(C.IPVS_SVC_ATTR_NETMASK, s.netmask);
      else {
        if (s.netmask > 128) throw new NetlinkEncodeError(`IPv6 persistence prefix ${s.netmask} > 128`);
        n.u32(C.IPVS_SVC_ATTR_NETMASK, s.netmask);
      }
    }
    if (s.stats) putStats(n, C.IPVS_SVC_ATTR_STATS, s.stats, false);
    if (s.stats64) putStats(n, C.IPVS_SVC_ATTR_STATS64, s.stats64, true);
  }, NESTED);
}

function putDest(w: AttrWriter, d: IpvsDestinationAttrs): void {
  w.nested(C.IPVS_CMD_ATTR_DEST, (n) => {
    const family = d.family ?? familyOfAddr(d.address);
    n.u16(C.IPVS_DEST_ATTR_ADDR_FAMILY, lookup(AF, family, "address family"));
    putAddr(n, C.IPVS_DEST_ATTR_ADDR, d.address, family);
    n.be16(C.IPVS_DEST_ATTR_PORT, d.port);
    if (d.forward !== undefined) n.u32(C.IPVS_DEST_ATTR_FWD_METHOD, lookup(FWD, d.forward, "forwarding method"));
    if (d.weight !== undefined) {
      if (d.weight > 0x7fffffff) throw new NetlinkEncodeError(`weight ${d.weight} > INT_MAX`);
      n.u32(C.IPVS_DEST_ATTR_WEIGHT, d.weight);
    }
    if (d.tunnelType !== undefined) n.u8(C.IPVS_DEST_ATTR_TUN_TYPE, lookup(TUN, d.tunnelType, "tunnel type"));
    if (d.tunnelPort !== undefined) n.be16(C.IPVS_DEST_ATTR_TUN_PORT, d.tunnelPort);
    if (d.tunnelFlags !== undefined) n.u16(C.IPVS_DEST_ATTR_TUN_FLAGS, d.tunnelFlags);
    if (d.upperThreshold !== undefined) n.u32(C.IPVS_DEST_ATTR_U_THRESH, d.upperThreshold);
    if (d.lowerThreshold !== undefined) n.u32(C.IPVS_DEST_ATTR_L_THRESH, d.lowerThreshold);
    if (d.activeConns !== undefined) n.u32(C.IPVS_DEST_ATTR_ACTIVE_CONNS, d.activeConns);
    if (d.inactiveConns !== undefined) n.u32(C.IPVS_DEST_ATTR_INACT_CONNS, d.inactiveConns);
    if (d.persistentConns !== undefined) n.u32(C.IPVS_DEST_ATTR_PERSIST_CONNS, d.persistentConns);
    if (d.stats) putStats(n, C.IPVS_DEST_ATTR_STATS, d.stats, false);
    if (d.stats64) putStats(n, C.IPVS_DEST_ATTR_STATS64, d.stats64, true);
  }, NESTED);
}

const STATS_FIELDS: [keyof IpvsStats, number, boolean][] = [
  // field, attribute, is u64 in the 32-bit IPVS_*_ATTR_STATS nest
  ["conns", C.IPVS_STATS_ATTR_CONNS, false],
  ["inPkts", C.IPVS_STATS_ATTR_INPKTS, false],
  ["outPkts", C.IPVS_STATS_ATTR_OUTPKTS, false],
  ["inBytes", C.IPVS_STATS_ATTR_INBYTES, true],
  ["outBytes", C.IPVS_STATS_ATTR_OUTBYTES, true],
  ["cps", C.IPVS_STATS_ATTR_CPS, false],
  ["inPps", C.IPVS_STATS_ATTR_INPPS, false],
  ["outPps", C.IPVS_STATS_ATTR_OUTPPS, false],
  ["inBps", C.IPVS_STATS_ATTR_INBPS, false],
  ["outBps", C.IPVS_STATS_ATTR_OUTBPS, false],
];

const STATS_ATTRS: readonly number[] = STATS_FIELDS.map(([, attr]) => attr);
const STATS_WIDTHS: readonly number[] = STATS_FIELDS.map(([, , is64]) => (is64 ? 8 : 4));
const STATS_ALL_WIDE: readonly number[] = STATS_FIELDS.map(() => 8);

function putStats(w: AttrWriter, type: number, s: IpvsStats, all64: boolean): void {
  w.nested(type, (n) => {
    for (const [k, attr, is64] of STATS_FIELDS) {
      if (all64 || is64) n.u64(attr, s[k]);
      else {
        if (s[k] > 0xffffffffn) throw new NetlinkEncodeError(`stats ${k} ${s[k]} does not fit u32`);
        n.u32(attr, Number(s[k]));
      }
    }
  });
}

function putDaemon(w: AttrWriter, d: NonNullable<IpvsMessage["daemon"]>): void {
  w.nested(C.IPVS_CMD_ATTR_DAEMON, (n) => {
    if (d.state !== undefined) n.u32(C.IPVS_DAEMON_ATTR_STATE, lookup(DAEMON_STATE, d.state, "sync daemon state"));
    if (d.mcastInterface !== undefined) n.string(C.IPVS_DAEMON_ATTR_MCAST_IFN, d.mcastInterface, C.IP_VS_IFNAME_MAXLEN);
    if (d.syncId !== undefined) n.u32(C.IPVS_DAEMON_ATTR_SYNC_ID, d.syncId);
    if (d.syncMaxLen !== undefined) n.u16(C.IPVS_DAEMON_ATTR_SYNC_MAXLEN, d.syncMaxLen);
    if (d.mcastGroup !== undefined) {
      const f = familyOfAddr(d.mcastGroup);
      if (f === "ipv4") n.bytes(C.IPVS_DAEMON_ATTR_MCAST_GROUP, addressToBytes(d.mcastGroup, f));
      else n.bytes(C.IPVS_DAEMON_ATTR_MCAST_GROUP6, addressToBytes(d.mcastGroup, f));
    }
    if (d.mcastPort !== undefined) n.u16(C.IPVS_DAEMON_ATTR_MCAST_PORT, d.mcastPort);
    if (d.mcastTtl !== undefined) n.u8(C.IPVS_DAEMON_ATTR_MCAST_TTL, d.mcastTtl);
  }, NESTED);
}

/** genlmsghdr + attributes for any IPVS message (requests and, for tests, kernel-style replies). */
export function encodeIpvsMessage(m: IpvsMessage): Buffer {
  const w = new AttrWriter();
  w.raw(Uint8Array.of(checkU8(m.cmd, "cmd"), checkU8(m.version ?? C.IPVS_GENL_VERSION, "version"), 0, 0));
  if (m.service) putService(w, m.service);
  if (m.dest) putDest(w, m.dest);
  if (m.daemon) putDaemon(w, m.daemon);
  if (m.timeouts) {
    if (m.timeouts.tcp !== undefined) w.u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP, m.timeouts.tcp);
    if (m.timeouts.tcpFin !== undefined) w.u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, m.timeouts.tcpFin);
    if (m.timeouts.udp !== undefined) w.u32(C.IPVS_CMD_ATTR_TIMEOUT_UDP, m.timeouts.udp);
  }
  if (m.info) {
    w.u32(C.IPVS_INFO_ATTR_VERSION, m.info.version);
    w.u32(C.IPVS_INFO_ATTR_CONN_TAB_SIZE, m.info.connTableSize);
  }
  return w.finish();
}

// Request builders (what the client sends). Service/destination "full" commands need every
// option (the kernel rejects NEW/SET without scheduler, flags, timeout, netmask, resp. forward,
// weight and thresholds); DEL/GET/ZERO need only the key.

export const encodeNewService = (s: IpvsService): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_SERVICE, service: fullService(s) });
export const encodeSetService = (s: IpvsService): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_SET_SERVICE, service: fullService(s) });
export const encodeDelService = (k: IpvsServiceKey): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_DEL_SERVICE, service: serviceKey(k) });
export const encodeGetService = (k: IpvsServiceKey): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_GET_SERVICE, service: serviceKey(k) });
export const encodeDumpServices = (): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_GET_SERVICE });
export const encodeNewDest = (k: IpvsServiceKey, d: IpvsDestination): Buffer =>
  encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DEST, service: serviceKey(k), dest: fullDest(d) });
export const encodeSetDest = (k: IpvsServiceKey, d: IpvsDestination): Buffer =>
  encodeIpvsMessage({ cmd: C.IPVS_CMD_SET_DEST, service: serviceKey(k), dest: fullDest(d) });
export const encodeDelDest = (k: IpvsServiceKey, d: IpvsDestinationKey): Buffer =>
  encodeIpvsMessage({ cmd: C.IPVS_CMD_DEL_DEST, service: serviceKey(k), dest: { address: d.address, port: d.port, family: d.family } });
export const encodeDumpDests = (k: IpvsServiceKey): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_GET_DEST, service: serviceKey(k) });
/**
 * IPVS_CMD_GET_DEST dump requests for many services at once, made from their IPVS_CMD_NEW_SERVICE dump
 * replies (payloads: genlmsghdr + IPVS_CMD_ATTR_SERVICE) by changing the command byte: the kernel
 * reads only the key attributes of the nested service (ip_vs_genl_parse_service, full_entry false)
 * and its liberal parse accepts the others, so a full read needs no request encoding per service.
 * Packed for the netlink dump addon (native-dump.ts): per request u32 length + payload, padded to 4.
 */
export function packDumpDestsFromServiceReplies(replies: Uint8Array[], from = 0, to = replies.length): Buffer {
  let size = 0;
  for (let i = from; i < to; i++) size += 4 + ((replies[i]!.length + 3) & ~3);
  const out = Buffer.alloc(size);
  let off = 0;
  for (let i = from; i < to; i++) {
    const r = replies[i]!;
    if (r.length < 4 + 4 || r[0] !== C.IPVS_CMD_NEW_SERVICE) throw new NetlinkDecodeError(`reply ${i} is not an IPVS_CMD_NEW_SERVICE dump reply`);
    out.writeUInt32LE(r.length, off);
    out.set(r, off + 4);
    out[off + 4] = C.IPVS_CMD_GET_DEST;
    out[off + 5] = C.IPVS_GENL_VERSION;
    off += 4 + ((r.length + 3) & ~3);
  }
  return out;
}
export const encodeGetConfig = (): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_GET_CONFIG });
export const encodeSetConfig = (t: Partial<IpvsTimeouts>): Buffer =>
  encodeIpvsMessage({ cmd: C.IPVS_CMD_SET_CONFIG, timeouts: { tcp: t.tcp ?? 0, tcpFin: t.tcpFin ?? 0, udp: t.udp ?? 0 } });
export const encodeGetInfo = (): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_GET_INFO });
export const encodeNewDaemon = (d: IpvsDaemon): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_NEW_DAEMON, daemon: d });
export const encodeDelDaemon = (d: Pick<IpvsDaemon, "state"> & Partial<IpvsDaemon>): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_DEL_DAEMON, daemon: d });
export const encodeDumpDaemons = (): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_GET_DAEMON });
/** Zero the counters of one service, or of everything when no key is given. */
export const encodeZero = (k?: IpvsServiceKey): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_ZERO, service: k ? serviceKey(k) : undefined });
export const encodeFlush = (): Buffer => encodeIpvsMessage({ cmd: C.IPVS_CMD_FLUSH });

function serviceKey(k: IpvsServiceKey): IpvsServiceKey {
  return k.fwmark !== undefined ? { family: k.family, fwmark: k.fwmark } : { family: k.family, protocol: k.protocol, address: k.address, port: k.port };
}

function fullService(s: IpvsService): IpvsServiceAttrs {
  return { ...serviceKey(s), scheduler: s.scheduler, peName: s.peName, flags: s.flags, timeout: s.timeout, netmask: s.netmask };
}

function fullDest(d: IpvsDestination): IpvsDestinationAttrs {
  return {
    address: d.address,
    port: d.port,
    family: d.family,
    forward: d.forward,
    weight: d.weight,
    // ipvsadm always sends the tunnel attributes (0 = ipip, no port, no flags); so do we.
    tunnelType: d.tunnelType ?? "ipip",
    tunnelPort: d.tunnelPort ?? 0,
    tunnelFlags: d.tunnelFlags ?? 0,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
  };
}

function familyOfAddr(a: string): IpvsFamily {
  return a.includes(":") ? "ipv6" : "ipv4";
}

/** IPVS addresses are a union nf_inet_addr: 16 bytes on the wire, IPv4 in the first four. */
function putAddr(w: AttrWriter, type: number, a: string, family: IpvsFamily): void {
  w.put(type, C.NF_INET_ADDR_LEN, (buf, off) => writeAddress(a, family, buf, off));
}

function checkU32(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new NetlinkEncodeError(`${what} ${v} out of u32 range`);
  return v;
}
function checkU8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new NetlinkEncodeError(`${what} ${v} out of u8 range`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Decoding walks the bytes with one reusable offset table per nesting level instead of building
// attribute objects: a full-table read decodes ~10^5 destinations, where allocation (and GC) was
// the cost. Semantics are the kernel's nla_parse: unknown types skipped, a later duplicate wins.

const MAX_TYPE = 32;
/** Attribute table: [2*type] = value offset (-1 absent), [2*type+1] = value length. */
type Table = Int32Array;
const T_TOP = new Int32Array(2 * MAX_TYPE);
const T_SVC = new Int32Array(2 * MAX_TYPE);
const T_DEST = new Int32Array(2 * MAX_TYPE);
const T_STATS = new Int32Array(2 * MAX_TYPE);
const T_DAEMON = new Int32Array(2 * MAX_TYPE);

function scan(b: Buffer, start: number, end: number, t: Table): void {
  t.fill(-1);
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > end) throw new NetlinkDecodeError(`bad nla_len ${len}`, off);
    if (type < MAX_TYPE) {
      t[2 * type] = off + NLA_HDRLEN;
      t[2 * type + 1] = len - NLA_HDRLEN;
    }
    off += (len + 3) & ~3;
  }
}

const has = (t: Table, type: number): boolean => t[2 * type]! >= 0;
function at(t: Table, type: number, need: number, what: string): number {
  if (t[2 * type + 1]! < need) throw new NetlinkDecodeError(`attribute ${type} (${what}) has ${t[2 * type + 1]} bytes, want ${need}`);
  return t[2 * type]!;
}
const rU8 = (b: Buffer, t: Table, type: number) => b[at(t, type, 1, "u8")]!;
const rU16 = (b: Buffer, t: Table, type: number) => b.readUInt16LE(at(t, type, 2, "u16"));
const rBe16 = (b: Buffer, t: Table, type: number) => b.readUInt16BE(at(t, type, 2, "be16"));
const rU32 = (b: Buffer, t: Table, type: number) => b.readUInt32LE(at(t, type, 4, "u32"));
function rString(b: Buffer, t: Table, type: number): string {
  const off = t[2 * type]!;
  const end = off + t[2 * type + 1]!;
  let nul = off;
  while (nul < end && b[nul] !== 0) nul++;
  return b.toString("utf8", off, nul);
}
// Dotted quads already made, by address: a full-table read meets the same few real-server addresses
// ~10^5 times. Bounded: cleared when it reaches V4_CACHE_MAX entries.
const V4_CACHE_MAX = 1 << 16;
const v4Cache = new Map<number, string>();
function rAddr(b: Buffer, t: Table, type: number, family: IpvsFamily): string {
  if (family === "ipv4") {
    const o = at(t, type, 4, "IPv4 address");
    const key = b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
    let s = v4Cache.get(key);
    if (s === undefined) {
      if (v4Cache.size >= V4_CACHE_MAX) v4Cache.clear();
      s = `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
      v4Cache.set(key, s);
    }
    return s;
  }
  const o = at(t, type, 16, "IPv6 address");
  return addressFromBytes(b.subarray(o, o + 16), family);
}

/** Decode any IPVS genl payload (genlmsghdr + attributes). Throws only NetlinkDecodeError. */
export function decodeIpvsMessage(payload: Uint8Array): IpvsMessage {
  return guard(() => {
    const b = asBuffer(payload);
    if (b.length < 4) throw new NetlinkDecodeError(`genl payload too short (${b.length} bytes)`);
    const msg: IpvsMessage = { cmd: b[0]!, version: b[1]! };
    const t = T_TOP;
    scan(b, 4, b.length, t);
    // IPVS_INFO_ATTR_VERSION / _CONN_TAB_SIZE share numbers 1 and 2 with _SERVICE / _DEST: they
    // mean "info" only in IPVS_CMD_SET_INFO (the kernel's answer to GET_INFO).
    if (msg.cmd === C.IPVS_CMD_SET_INFO || msg.cmd === C.IPVS_CMD_GET_INFO) {
      if (has(t, C.IPVS_INFO_ATTR_VERSION) && has(t, C.IPVS_INFO_ATTR_CONN_TAB_SIZE)) {
        const version = rU32(b, t, C.IPVS_INFO_ATTR_VERSION);
        msg.info = { version, versionString: formatVersion(version), connTableSize: rU32(b, t, C.IPVS_INFO_ATTR_CONN_TAB_SIZE) };
      }
      return msg;
    }
    // Copy the nests' ranges first: the nested decoders reuse T_TOP only through these numbers.
    const svcOff = t[2 * C.IPVS_CMD_ATTR_SERVICE]!;
    const svcLen = t[2 * C.IPVS_CMD_ATTR_SERVICE + 1]!;
    const destOff = t[2 * C.IPVS_CMD_ATTR_DEST]!;
    const destLen = t[2 * C.IPVS_CMD_ATTR_DEST + 1]!;
    const dmOff = t[2 * C.IPVS_CMD_ATTR_DAEMON]!;
    const dmLen = t[2 * C.IPVS_CMD_ATTR_DAEMON + 1]!;
    const timeouts: Partial<IpvsTimeouts> = {};
    let anyTimeout = false;
    if (has(t, C.IPVS_CMD_ATTR_TIMEOUT_TCP)) (timeouts.tcp = rU32(b, t, C.IPVS_CMD_ATTR_TIMEOUT_TCP)), (anyTimeout = true);
    if (has(t, C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN)) (timeouts.tcpFin = rU32(b, t, C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN)), (anyTimeout = true);
    if (has(t, C.IPVS_CMD_ATTR_TIMEOUT_UDP)) (timeouts.udp = rU32(b, t, C.IPVS_CMD_ATTR_TIMEOUT_UDP)), (anyTimeout = true);
    if (svcOff >= 0) msg.service = decodeServiceAttrs(b, svcOff, svcOff + svcLen);
    if (destOff >= 0) msg.dest = decodeDestAttrs(b, destOff, destOff + destLen, msg.service?.family);
    if (dmOff >= 0) msg.daemon = decodeDaemonAttrs(b, dmOff, dmOff + dmLen);
    if (anyTimeout) msg.timeouts = timeouts;
    return msg;
  });
}

/** Decoding options for the typed reply decoders. */
export interface DecodeOptions {
  /**
   * Decode the counters (IPVS_*_ATTR_STATS / _STATS64). Default true. A configuration read for
   * diffing (IpvsClient.snapshot({ stats: false })) skips them: ~10^5 destinations × 20 bigints
   * made heap and GC the largest cost of a full-table read. Their bytes are still bounds-checked.
   */
  stats?: boolean;
}

function decodeServiceAttrs(b: Buffer, start: number, end: number, withStats = true): IpvsServiceAttrs {
  const t = T_SVC;
  scan(b, start, end, t);
  if (!has(t, C.IPVS_SVC_ATTR_AF)) throw new NetlinkDecodeError("service without IPVS_SVC_ATTR_AF");
  const family = afName(rU16(b, t, C.IPVS_SVC_ATTR_AF));
  const s: IpvsServiceAttrs = { family };
  if (has(t, C.IPVS_SVC_ATTR_FWMARK)) s.fwmark = rU32(b, t, C.IPVS_SVC_ATTR_FWMARK);
  else {
    if (has(t, C.IPVS_SVC_ATTR_PROTOCOL)) s.protocol = protoName(rU16(b, t, C.IPVS_SVC_ATTR_PROTOCOL));
    if (has(t, C.IPVS_SVC_ATTR_ADDR)) s.address = rAddr(b, t, C.IPVS_SVC_ATTR_ADDR, family);
    if (has(t, C.IPVS_SVC_ATTR_PORT)) s.port = rBe16(b, t, C.IPVS_SVC_ATTR_PORT);
  }
  if (has(t, C.IPVS_SVC_ATTR_SCHED_NAME)) s.scheduler = rString(b, t, C.IPVS_SVC_ATTR_SCHED_NAME);
  if (has(t, C.IPVS_SVC_ATTR_PE_NAME)) s.peName = rString(b, t, C.IPVS_SVC_ATTR_PE_NAME);
  if (has(t, C.IPVS_SVC_ATTR_FLAGS)) {
    const o = at(t, C.IPVS_SVC_ATTR_FLAGS, C.IP_VS_FLAGS_LEN, "struct ip_vs_flags");
    const mask = b.readUInt32LE(o + 4);
    // As libipvs reads it: the bits the sender vouches for.
    s.flags = (b.readUInt32LE(o) & mask) >>> 0;
    if (mask !== 0xffffffff) s.flagsMask = mask;
  }
  if (has(t, C.IPVS_SVC_ATTR_TIMEOUT)) s.timeout = rU32(b, t, C.IPVS_SVC_ATTR_TIMEOUT);
  if (has(t, C.IPVS_SVC_ATTR_NETMASK)) {
    const o = at(t, C.IPVS_SVC_ATTR_NETMASK, 4, "netmask");
    s.netmask = family === "ipv4" ? b.readUInt32BE(o) : b.readUInt32LE(o);
  }
  const st = t[2 * C.IPVS_SVC_ATTR_STATS]!;
  const stLen = t[2 * C.IPVS_SVC_ATTR_STATS + 1]!;
  const st64 = t[2 * C.IPVS_SVC_ATTR_STATS64]!;
  const st64Len = t[2 * C.IPVS_SVC_ATTR_STATS64 + 1]!;
  // Without stats the counters are only bounds-checked, and the keys are never added (adding and
  // deleting them would turn every decoded object into a slow dictionary-mode object).
  if (withStats) {
    if (st >= 0) s.stats = decodeStats(b, st, st + stLen, false);
    if (st64 >= 0) s.stats64 = decodeStats(b, st64, st64 + st64Len, true);
  } else {
    if (st >= 0) checkStats(b, st, st + stLen, false);
    if (st64 >= 0) checkStats(b, st64, st64 + st64Len, true);
  }
  return s;
}

function decodeDestAttrs(b: Buffer, start: number, end: number, serviceFamily: IpvsFamily | undefined, withStats = true): IpvsDestinationAttrs {
  const t = T_DEST;
  scan(b, start, end, t);
  const hasAf = has(t, C.IPVS_DEST_ATTR_ADDR_FAMILY);
  const family = hasAf ? afName(rU16(b, t, C.IPVS_DEST_ATTR_ADDR_FAMILY)) : serviceFamily;
  if (!has(t, C.IPVS_DEST_ATTR_ADDR) || !has(t, C.IPVS_DEST_ATTR_PORT)) throw new NetlinkDecodeError("destination without address or port");
  if (!family) throw new NetlinkDecodeError("destination without address family");
  const d: IpvsDestinationAttrs = { address: rAddr(b, t, C.IPVS_DEST_ATTR_ADDR, family), port: rBe16(b, t, C.IPVS_DEST_ATTR_PORT) };
  if (hasAf) d.family = family;
  if (has(t, C.IPVS_DEST_ATTR_FWD_METHOD)) d.forward = fwdName(rU32(b, t, C.IPVS_DEST_ATTR_FWD_METHOD) & C.IP_VS_CONN_F_FWD_MASK);
  if (has(t, C.IPVS_DEST_ATTR_WEIGHT)) d.weight = rU32(b, t, C.IPVS_DEST_ATTR_WEIGHT);
  if (has(t, C.IPVS_DEST_ATTR_TUN_TYPE)) d.tunnelType = tunName(rU8(b, t, C.IPVS_DEST_ATTR_TUN_TYPE));
  if (has(t, C.IPVS_DEST_ATTR_TUN_PORT)) d.tunnelPort = rBe16(b, t, C.IPVS_DEST_ATTR_TUN_PORT);
  if (has(t, C.IPVS_DEST_ATTR_TUN_FLAGS)) d.tunnelFlags = rU16(b, t, C.IPVS_DEST_ATTR_TUN_FLAGS);
  if (has(t, C.IPVS_DEST_ATTR_U_THRESH)) d.upperThreshold = rU32(b, t, C.IPVS_DEST_ATTR_U_THRESH);
  if (has(t, C.IPVS_DEST_ATTR_L_THRESH)) d.lowerThreshold = rU32(b, t, C.IPVS_DEST_ATTR_L_THRESH);
  if (has(t, C.IPVS_DEST_ATTR_ACTIVE_CONNS)) d.activeConns = rU32(b, t, C.IPVS_DEST_ATTR_ACTIVE_CONNS);
  if (has(t, C.IPVS_DEST_ATTR_INACT_CONNS)) d.inactiveConns = rU32(b, t, C.IPVS_DEST_ATTR_INACT_CONNS);
  if (has(t, C.IPVS_DEST_ATTR_PERSIST_CONNS)) d.persistentConns = rU32(b, t, C.IPVS_DEST_ATTR_PERSIST_CONNS);
  const st = t[2 * C.IPVS_DEST_ATTR_STATS]!;
  const stLen = t[2 * C.IPVS_DEST_ATTR_STATS + 1]!;
  const st64 = t[2 * C.IPVS_DEST_ATTR_STATS64]!;
  const st64Len = t[2 * C.IPVS_DEST_ATTR_STATS64 + 1]!;
  // Without stats the counters are only bounds-checked, and the keys are never added (adding and
  // deleting them would turn every decoded object into a slow dictionary-mode object).
  if (withStats) {
    if (st >= 0) d.stats = decodeStats(b, st, st + stLen, false);
    if (st64 >= 0) d.stats64 = decodeStats(b, st64, st64 + st64Len, true);
  } else {
    if (st >= 0) checkStats(b, st, st + stLen, false);
    if (st64 >= 0) checkStats(b, st64, st64 + st64Len, true);
  }
  return d;
}

/**
 * Bounds checks of a counters nest without decoding it (every counter present has its full width):
 * one pass over the attributes, no table (a full-table read runs this twice per destination).
 */
function checkStats(b: Buffer, start: number, end: number, all64: boolean): void {
  const wide = all64 ? STATS_WIDTH_ALL64 : STATS_WIDTH;
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > end) throw new NetlinkDecodeError(`bad nla_len ${len}`, off);
    if (type < MAX_TYPE && len - NLA_HDRLEN < wide[type]!) {
      throw new NetlinkDecodeError(`attribute ${type} (counter) has ${len - NLA_HDRLEN} bytes, want ${wide[type]}`);
    }
    off += (len + 3) & ~3;
  }
}

/** Counter width by IPVS_STATS_ATTR_* (0: not a counter), for the 32-bit nest and for _STATS64. */
const STATS_WIDTH = new Uint8Array(MAX_TYPE);
const STATS_WIDTH_ALL64 = new Uint8Array(MAX_TYPE);
for (let i = 0; i < STATS_ATTRS.length; i++) {
  STATS_WIDTH[STATS_ATTRS[i]!] = STATS_WIDTHS[i]!;
  STATS_WIDTH_ALL64[STATS_ATTRS[i]!] = STATS_ALL_WIDE[i]!;
}

function decodeStats(b: Buffer, start: number, end: number, all64: boolean): IpvsStats {
  const t = T_STATS;
  scan(b, start, end, t);
  const out = {} as IpvsStats;
  for (const [k, attr, is64] of STATS_FIELDS) {
    if (!has(t, attr)) out[k] = 0n;
    else if (all64 || is64) out[k] = b.readBigUInt64LE(at(t, attr, 8, "u64"));
    else out[k] = BigInt(b.readUInt32LE(at(t, attr, 4, "u32")));
  }
  return out;
}

function decodeDaemonAttrs(b: Buffer, start: number, end: number): Partial<IpvsDaemon> {
  const t = T_DAEMON;
  scan(b, start, end, t);
  const d: Partial<IpvsDaemon> = {};
  if (has(t, C.IPVS_DAEMON_ATTR_STATE)) d.state = daemonStateName(rU32(b, t, C.IPVS_DAEMON_ATTR_STATE));
  if (has(t, C.IPVS_DAEMON_ATTR_MCAST_IFN)) d.mcastInterface = rString(b, t, C.IPVS_DAEMON_ATTR_MCAST_IFN);
  if (has(t, C.IPVS_DAEMON_ATTR_SYNC_ID)) d.syncId = rU32(b, t, C.IPVS_DAEMON_ATTR_SYNC_ID);
  if (has(t, C.IPVS_DAEMON_ATTR_SYNC_MAXLEN)) d.syncMaxLen = rU16(b, t, C.IPVS_DAEMON_ATTR_SYNC_MAXLEN);
  if (has(t, C.IPVS_DAEMON_ATTR_MCAST_GROUP)) d.mcastGroup = rAddr(b, t, C.IPVS_DAEMON_ATTR_MCAST_GROUP, "ipv4");
  if (has(t, C.IPVS_DAEMON_ATTR_MCAST_GROUP6)) d.mcastGroup = rAddr(b, t, C.IPVS_DAEMON_ATTR_MCAST_GROUP6, "ipv6");
  if (has(t, C.IPVS_DAEMON_ATTR_MCAST_PORT)) d.mcastPort = rU16(b, t, C.IPVS_DAEMON_ATTR_MCAST_PORT);
  if (has(t, C.IPVS_DAEMON_ATTR_MCAST_TTL)) d.mcastTtl = rU8(b, t, C.IPVS_DAEMON_ATTR_MCAST_TTL);
  return d;
}

const asBuffer = (p: Uint8Array): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));

function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw asDecodeError(e);
  }
}

// Any other failure while reading foreign bytes (RangeError from a Buffer read, a bad string) is
// still a decoding failure: report it as one, never as a crash of a different type.
function asDecodeError(e: unknown): NetlinkDecodeError {
  if (e instanceof NetlinkDecodeError) return e;
  return new NetlinkDecodeError(`malformed IPVS message: ${e instanceof Error ? e.message : String(e)}`);
}

// Reply decoders for the typed API: they insist on the fields the kernel always sends.

export function decodeService(payload: Uint8Array, opts: DecodeOptions = {}): IpvsService {
  return guard(() => {
    const b = asBuffer(payload);
    if (b.length < 4) throw new NetlinkDecodeError("genl payload too short");
    scan(b, 4, b.length, T_TOP);
    const off = T_TOP[2 * C.IPVS_CMD_ATTR_SERVICE]!;
    const s = off < 0 ? undefined : decodeServiceAttrs(b, off, off + T_TOP[2 * C.IPVS_CMD_ATTR_SERVICE + 1]!, opts.stats ?? true);
    const m = { cmd: b[0]! };
    if (!s) throw new NetlinkDecodeError(`${cmdName(m.cmd)} reply without IPVS_CMD_ATTR_SERVICE`);
    if (s.fwmark === undefined && (s.protocol === undefined || s.address === undefined || s.port === undefined)) {
      throw new NetlinkDecodeError("service reply without fwmark or protocol/address/port");
    }
    if (s.scheduler === undefined || s.flags === undefined || s.timeout === undefined || s.netmask === undefined) {
      throw new NetlinkDecodeError("service reply without scheduler/flags/timeout/netmask");
    }
    delete s.flagsMask; // not part of IpvsService (only present when the mask was not ~0)
    return s as IpvsService;
  });
}

export function decodeDestination(payload: Uint8Array, serviceFamily?: IpvsFamily, opts: DecodeOptions = {}): IpvsDestination {
  const b = asBuffer(payload);
  return decodeDestinationAt(b, 0, b.length, serviceFamily, opts);
}

/**
 * decodeDestination() of the genl payload at b[start, end) — in place, inside a received datagram
 * (NetlinkSocket.dumpMany's onPart), with no view or closure per call: IpvsClient.snapshot() runs it
 * once per destination of the whole table.
 */
export function decodeDestinationAt(b: Buffer, start: number, end: number, serviceFamily?: IpvsFamily, opts: DecodeOptions = {}): IpvsDestination {
  try {
    if (start < 0 || end > b.length || end - start < 4) throw new NetlinkDecodeError("genl payload too short");
    scan(b, start + 4, end, T_TOP);
    const off = T_TOP[2 * C.IPVS_CMD_ATTR_DEST]!;
    if (off < 0) throw new NetlinkDecodeError("destination reply without IPVS_CMD_ATTR_DEST");
    const d = decodeDestAttrs(b, off, off + T_TOP[2 * C.IPVS_CMD_ATTR_DEST + 1]!, serviceFamily, opts.stats ?? true);
    if (d.forward === undefined || d.weight === undefined || d.upperThreshold === undefined || d.lowerThreshold === undefined) {
      throw new NetlinkDecodeError("destination reply without forward/weight/thresholds");
    }
    if (d.family === undefined) d.family = familyOfAddr(d.address);
    return d as IpvsDestination;
  } catch (e) {
    throw asDecodeError(e);
  }
}

export function decodeTimeouts(payload: Uint8Array): IpvsTimeouts {
  return guard(() => {
    const m = decodeIpvsMessage(payload);
    const t = m.timeouts;
    if (!t || t.tcp === undefined || t.tcpFin === undefined || t.udp === undefined) {
      throw new NetlinkDecodeError("config reply without the three timeouts");
    }
    return { tcp: t.tcp, tcpFin: t.tcpFin, udp: t.udp };
  });
}

export function decodeInfo(payload: Uint8Array): IpvsInfo {
  return guard(() => {
    const m = decodeIpvsMessage(payload);
    if (!m.info) throw new NetlinkDecodeError("info reply without version / connection table size");
    return m.info;
  });
}

export function decodeDaemon(payload: Uint8Array): IpvsDaemon {
  return guard(() => {
    const m = decodeIpvsMessage(payload);
    const d = m.daemon;
    if (!d || d.state === undefined || d.mcastInterface === undefined || d.syncId === undefined) {
      throw new NetlinkDecodeError("daemon reply without state/interface/sync id");
    }
    return d as IpvsDaemon;
  });
}
