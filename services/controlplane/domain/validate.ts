/**
 * Defaults and validation of the topology resources, in LVS terms. Pure: no I/O, no grpc/pg/nats.
 *
 * Contract
 *  - normalize*(x) returns a NEW message with defaults applied and addresses in canonical form; it
 *    never throws and leaves invalid values as they are, for validate* to report.
 *  - validate*(x, …, field) normalizes first (so raw and normalized input give the same answer) and
 *    returns EVERY violation found, each naming the request field path (snake_case, as in the proto,
 *    prefixed with `field`, e.g. "virtual_service.persistence.prefix_length") and an UPPER_SNAKE
 *    reason. It never throws, whatever the input (checked by property tests with hostile input).
 *  - Uniqueness across rows (VIP+protocol+port, fwmark, real server address:port) and existence of
 *    the parent are the store's: enforced by database constraints and lookups.
 *
 * Where a rule comes from the kernel or ipvsadm, the comment says where. Sources:
 *  - Linux net/netfilter/ipvs/ip_vs_ctl.c (service/destination checks), ip_vs_core.c (scheduling),
 *    ip_vs_pe_sip.c (the SIP persistence engine),
 *  - ipvsadm.c (https://git.kernel.org/pub/scm/utils/kernel/ipvsadm/ipvsadm.git).
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import type { FirewallMark, Host, RealServer, Site, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  AddressFamily,
  FailureAction,
  ForwardMethod,
  HostRole,
  Protocol,
  TunnelType,
  TunnelConfigSchema,
} from "../../../gen/lvsfleet/v1/types_pb.js";
import type { FieldViolation } from "./errors.js";
import { endpointProblem, isV4Embedded, parseAddress, parsePrefix, type Family, type ParsedAddress } from "./address.js";
import { checkFirewallMarkName, checkHostName, checkRealServerName, checkSiteName, checkVirtualServiceName, clip } from "./names.js";
import { arrOf, deepCopy, intOf, isIntIn, isObj, join, show, strOf, Violations, type Obj } from "./util.js";

export { applyFieldMask, OUTPUT_ONLY_FIELDS } from "./fieldmask.js";

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/** The schedulers of mainline IPVS (net/netfilter/ipvs/ip_vs_*.c, ipvsadm(8) -s). */
export const SCHEDULERS = ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "twos"] as const;
/** ipvsadm's default scheduler (ipvsadm.c: DEF_SCHED "wlc"). */
export const DEFAULT_SCHEDULER = "wlc";
/**
 * Scheduler flags by scheduler (ipvsadm -b; ipvsadm.c parse_sched_flags fails with "incompatible
 * scheduler flag" when sh-* is used without sh or mh-* without mh).
 */
export const SCHEDULER_FLAGS: Readonly<Record<string, readonly string[]>> = {
  sh: ["sh-fallback", "sh-port"],
  mh: ["mh-fallback", "mh-port"],
};
/** The only persistence engine in mainline (net/netfilter/ipvs/ip_vs_pe_sip.c). */
export const PERSISTENCE_ENGINES = ["sip"] as const;
/**
 * Persistence timeout bounds, from ipvsadm: `-p` is parsed with parse_timeout(optarg, 1, MAX_TIMEOUT)
 * where `#define MAX_TIMEOUT (86400*31)` (31 days). 0 here means "not persistent".
 */
export const MAX_PERSISTENCE_TIMEOUT_SECONDS = 86400 * 31;
/**
 * IPVS protocol timeouts: ip_vs_ctl.c ip_vs_set_timeout() rejects values > INT_MAX / HZ with EINVAL.
 * HZ is a kernel build option (100..1000); INT_MAX / 1000 = 2147483 s (~24.8 days) holds for all.
 */
export const MAX_IPVS_TIMEOUT_SECONDS = Math.floor(2147483647 / 1000);
/** ipvsadm -w is parsed with string_to_number(optarg, 0, 65535). */
export const MAX_WEIGHT = 65535;
/** ipvsadm -x/-y are parsed with string_to_number(optarg, 0, INT_MAX). */
export const MAX_THRESHOLD = 2147483647;
export const MAX_PORT = 65535;
export const MAX_FWMARK = 0xffffffff;
export const DEFAULT_WEIGHT = 1;
export const DEFAULT_HEALTH_INTERVAL_SECONDS = 5;
export const DEFAULT_HEALTH_TIMEOUT_SECONDS = 3;
export const DEFAULT_RISE = 2;
export const DEFAULT_FALL = 3;
export const MAX_RISE_FALL = 100;
/** A check less often than hourly is not a health check. */
export const MAX_HEALTH_INTERVAL_SECONDS = 3600;
export const MAX_DISPLAY_NAME = 63;
export const MAX_LABELS = 64;
/** Linux IFNAMSIZ is 16 including the NUL (include/uapi/linux/if.h). */
export const MAX_IFNAME = 15;
export const DNS_QUERY_TYPES = ["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA", "ANY"] as const;

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/** A proto3 default for an absent field: only `undefined` is absent; null and the like are invalid values. */
function def<T>(v: unknown, d: T): unknown {
  return v === undefined ? d : v;
}

function famOf(a: ParsedAddress): AddressFamily {
  return a.family === 4 ? AddressFamily.IPV4 : AddressFamily.IPV6;
}

function familyText(f: unknown): string {
  return f === AddressFamily.IPV4 ? "IPv4" : f === AddressFamily.IPV6 ? "IPv6" : "unknown";
}

/** An address of a VIP / real server / sorry server: valid literal and a unicast endpoint. */
function checkEndpointAddress(v: Violations, value: unknown, field: string, required: boolean): ParsedAddress | undefined {
  if (value === "" || value === undefined) {
    if (required) v.add(field, "REQUIRED", "an IPv4 or IPv6 address is required");
    return undefined;
  }
  const a = parseAddress(value);
  if ("reason" in a) {
    v.add(field, a.reason, a.description);
    return undefined;
  }
  const problem = endpointProblem(a);
  if (problem) {
    v.add(field, "ADDRESS_NOT_ALLOWED", problem);
    return undefined;
  }
  return a;
}

function checkPort(v: Violations, value: unknown, field: string): number | undefined {
  if (!isIntIn(value, 0, MAX_PORT)) {
    v.add(field, "PORT_OUT_OF_RANGE", `port ${show(value)} is not in 0..${MAX_PORT}`);
    return undefined;
  }
  return intOf(value);
}

function checkEnum(v: Violations, value: unknown, allowed: readonly number[], field: string, what: string): boolean {
  if (typeof value === "number" && allowed.includes(value)) return true;
  v.add(field, "INVALID_ENUM", `${show(value)} is not a valid ${what}`);
  return false;
}

const LABEL_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/**
 * Labels with Kubernetes' syntax (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set):
 * key = [prefix/]name, prefix a DNS subdomain ≤ 253, name ≤ 63 alphanumerics with - _ . inside;
 * value empty or like a name. At most MAX_LABELS labels.
 */
function checkLabels(v: Violations, labels: unknown, field: string): void {
  if (labels === undefined) return;
  if (!isObj(labels)) {
    v.add(field, "INVALID_LABELS", "labels must be a map of strings");
    return;
  }
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) v.add(field, "TOO_MANY_LABELS", `at most ${MAX_LABELS} labels, got ${keys.length}`);
  for (const key of keys.slice(0, MAX_LABELS + 1)) {
    const kf = `${field}[${JSON.stringify(clip(key, 64))}]`;
    const slash = key.indexOf("/");
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    const prefixOk = prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN_RE.test(prefix));
    if (!prefixOk || !LABEL_NAME_RE.test(name)) {
      v.add(kf, "INVALID_LABEL_KEY", `label key ${show(key)} is not [prefix/]name: name 1-63 alphanumerics with '-', '_', '.' inside; prefix a DNS subdomain`);
    }
    const value = labels[key];
    if (typeof value !== "string" || (value !== "" && !LABEL_NAME_RE.test(value))) {
      v.add(kf, "INVALID_LABEL_VALUE", `label value ${show(value)} must be empty or 1-63 alphanumerics with '-', '_', '.' inside`);
    }
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** Duration → milliseconds, or NaN when it is not a valid google.protobuf.Duration. */
function durationMs(d: unknown): number {
  if (!isObj(d)) return NaN;
  const s = intOf(def(d.seconds, 0n));
  const n = intOf(def(d.nanos, 0));
  if (Number.isNaN(s) || Number.isNaN(n) || n <= -1e9 || n >= 1e9) return NaN;
  if ((s > 0 && n < 0) || (s < 0 && n > 0)) return NaN;
  return s * 1000 + n / 1e6;
}

function seconds(n: number): Duration {
  return create(DurationSchema, { seconds: BigInt(n), nanos: 0 });
}

/** Family of the service: derived from the address, or address_family for fwmark services. */
function serviceFamily(vs: Obj): AddressFamily | undefined {
  if (isIntIn(vs.fwmark, 1, MAX_FWMARK)) {
    return vs.addressFamily === AddressFamily.IPV4 || vs.addressFamily === AddressFamily.IPV6 ? (vs.addressFamily as AddressFamily) : undefined;
  }
  const a = parseAddress(vs.address);
  return "reason" in a ? undefined : famOf(a);
}

interface ServiceShape {
  fwmark: boolean;
  port: number | undefined; // undefined when not known (invalid)
  family: AddressFamily | undefined;
}

function serviceShape(vs: Obj): ServiceShape {
  const fwmark = isIntIn(vs.fwmark, 1, MAX_FWMARK);
  return { fwmark, port: fwmark ? 0 : isIntIn(vs.port, 0, MAX_PORT) ? intOf(vs.port) : undefined, family: serviceFamily(vs) };
}

/**
 * The rules a destination (real server or sorry server) must satisfy against its service.
 *
 * Address family: the kernel accepts a destination of another family than the service only for
 * tunnelling — ip_vs_ctl.c ip_vs_genl_set_cmd():
 *     if (udest.af != svc->af && cmd != IPVS_CMD_DEL_DEST) {
 *         ... switch (udest.conn_flags) { case IP_VS_CONN_F_TUNNEL: break; default: ret = -EINVAL; }
 * and ipvsadm.c fails with "Different address family is allowed only for tunneling servers".
 *
 * Port: with DR and TUN the Director does not rewrite the packet, so the destination port is the
 * packet's port; ipvsadm.c forces `ce.dest.port = ce.svc.port` for -g/-i on non-fwmark services.
 * So DR/TUN take port 0 ("same as the service") or exactly the service port. For fwmark and port-0
 * services there is no single service port: a connection goes to `dest->port ? dest->port : vport`
 * (ip_vs_core.c ip_vs_schedule), so a DR/TUN destination must have port 0 (the packet's own port).
 * NAT may set a port there too: IPVS then rewrites every matched connection to that one port —
 * the kernel does it, so we allow it (useful for "all ports → one backend port").
 */
function destinationProblems(
  svc: ServiceShape,
  dest: { family: Family | undefined; port: number | undefined; forward: unknown },
): { family?: string; port?: string } {
  const out: { family?: string; port?: string } = {};
  const destFam = dest.family === 4 ? AddressFamily.IPV4 : dest.family === 6 ? AddressFamily.IPV6 : undefined;
  if (svc.family !== undefined && destFam !== undefined && svc.family !== destFam && dest.forward !== ForwardMethod.TUN) {
    out.family = `an ${familyText(destFam)} destination behind an ${familyText(svc.family)} service needs forward_method TUN (IPVS mixes families only for tunnelling)`;
  }
  const dr = dest.forward === ForwardMethod.DR || dest.forward === ForwardMethod.TUN;
  if (dr && dest.port !== undefined && dest.port !== 0) {
    const method = dest.forward === ForwardMethod.DR ? "DR" : "TUN";
    if (svc.fwmark) out.port = `${method} can't remap ports: behind a fwmark service the port must be 0 (the packet's own port); only NAT may set one`;
    else if (svc.port === 0) out.port = `${method} can't remap ports: behind a port-0 service the port must be 0 (the packet's own port); only NAT may set one`;
    else if (svc.port !== undefined && dest.port !== svc.port) out.port = `${method} can't remap ports: the port must be 0 or the service port ${svc.port}; only NAT may remap`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Site
// ---------------------------------------------------------------------------------------------

export function normalizeSite(s: Site): Site {
  return deepCopy(s);
}

export function validateSite(s: Site, field: string): FieldViolation[] {
  const v = new Violations();
  if (!isObj(s)) return [{ field, reason: "REQUIRED", description: "a site is required" }];
  const n = normalizeSite(s) as unknown as Obj;
  checkOptionalName(v, n.name, join(field, "name"), checkSiteName);
  const dn = n.displayName;
  if (dn !== undefined && dn !== "") {
    if (typeof dn !== "string") v.add(join(field, "display_name"), "INVALID_DISPLAY_NAME", "display_name must be a string");
    else if ([...dn].length > MAX_DISPLAY_NAME) v.add(join(field, "display_name"), "DISPLAY_NAME_TOO_LONG", `display_name is at most ${MAX_DISPLAY_NAME} characters, got ${[...dn].length}`);
    else if (CONTROL_RE.test(dn)) v.add(join(field, "display_name"), "INVALID_DISPLAY_NAME", "display_name must not contain control characters");
  }
  const t = n.ipvsTimeouts;
  if (t !== undefined) {
    if (!isObj(t)) v.add(join(field, "ipvs_timeouts"), "INVALID_ARGUMENT", "ipvs_timeouts must be a message");
    else {
      for (const [local, proto] of [["tcpSeconds", "tcp_seconds"], ["tcpFinSeconds", "tcp_fin_seconds"], ["udpSeconds", "udp_seconds"]] as const) {
        const val = def(t[local], 0);
        if (!isIntIn(val, 0, MAX_IPVS_TIMEOUT_SECONDS)) {
          v.add(join(field, `ipvs_timeouts.${proto}`), "TIMEOUT_OUT_OF_RANGE", `${show(val)} is not in 0..${MAX_IPVS_TIMEOUT_SECONDS} seconds (the kernel rejects more than INT_MAX/HZ)`);
        }
      }
    }
  }
  checkLabels(v, n.labels, join(field, "labels"));
  return v.list;
}

function isViolation(r: object): r is FieldViolation {
  return "field" in r && "description" in r;
}

function checkOptionalName(v: Violations, name: unknown, field: string, check: (n: unknown, f: string) => object): void {
  if (name === undefined || name === "") return;
  const r = check(name, field) as Partial<FieldViolation>;
  if (typeof r.reason === "string") v.list.push(r as FieldViolation);
}

// ---------------------------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------------------------

export function normalizeHost(h: Host): Host {
  const out = deepCopy(h) as unknown as Obj;
  if (!isObj(out)) return h;
  const addrs = arrOf(out.addresses);
  if (addrs) out.addresses = addrs.map((a) => canonicalIfValid(a));
  const ifaces = arrOf(out.interfaces);
  if (ifaces) {
    for (const i of ifaces) {
      if (!isObj(i)) continue;
      const ia = arrOf(i.addresses);
      if (ia) i.addresses = ia.map((p) => canonicalPrefixIfValid(p, false));
    }
  }
  return out as unknown as Host;
}

function canonicalIfValid(a: unknown): unknown {
  const p = parseAddress(a);
  return "reason" in p ? a : p.canonical;
}

function canonicalPrefixIfValid(a: unknown, allowBare: boolean): unknown {
  const p = parsePrefix(a, { allowBare });
  if ("reason" in p) return a;
  return typeof a === "string" && !a.includes("/") ? p.address.canonical : p.canonical;
}

/**
 * Interface names as the kernel accepts them: net/core/dev.c dev_valid_name() — non-empty, shorter
 * than IFNAMSIZ (16), not "." or "..", no '/', ':' or whitespace.
 */
export function interfaceNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name === "") return "an interface name is required";
  if (name.length > MAX_IFNAME) return `an interface name is at most ${MAX_IFNAME} characters`;
  if (name === "." || name === "..") return "\".\" and \"..\" are not interface names";
  if (/[/:\s]/.test(name) || CONTROL_RE.test(name)) return "an interface name has no '/', ':', whitespace or control characters";
  if (!/^[\x21-\x7e]+$/.test(name)) return "an interface name is printable ASCII";
  return undefined;
}

export function validateHost(h: Host, field: string): FieldViolation[] {
  const v = new Violations();
  if (!isObj(h)) return [{ field, reason: "REQUIRED", description: "a host is required" }];
  const n = normalizeHost(h) as unknown as Obj;
  checkOptionalName(v, n.name, join(field, "name"), checkHostName);

  const roles = arrOf(n.roles);
  if (!roles || roles.length === 0) {
    v.add(join(field, "roles"), "REQUIRED", "a host needs at least one role: HOST_ROLE_DIRECTOR and/or HOST_ROLE_REAL_SERVER");
  } else {
    const seen = new Set<unknown>();
    roles.forEach((r, i) => {
      const f = join(field, `roles[${i}]`);
      if (!checkEnum(v, r, [HostRole.DIRECTOR, HostRole.REAL_SERVER], f, "host role (DIRECTOR or REAL_SERVER)")) return;
      if (seen.has(r)) v.add(f, "DUPLICATE_ROLE", `role ${HostRole[r as HostRole]} is listed twice`);
      seen.add(r);
    });
  }

  if (n.addresses !== undefined) {
    const addrs = arrOf(n.addresses);
    if (!addrs) v.add(join(field, "addresses"), "INVALID_ADDRESS", "addresses must be a list of strings");
    else {
      const seen = new Set<string>();
      addrs.forEach((a, i) => {
        const f = join(field, `addresses[${i}]`);
        const p = checkEndpointAddress(v, a, f, true);
        if (!p) return;
        if (seen.has(p.canonical)) v.add(f, "DUPLICATE_ADDRESS", `${p.canonical} is listed twice`);
        seen.add(p.canonical);
      });
    }
  }

  if (n.interfaces !== undefined) {
    const ifaces = arrOf(n.interfaces);
    if (!ifaces) v.add(join(field, "interfaces"), "INVALID_ARGUMENT", "interfaces must be a list");
    else {
      const names = new Set<string>();
      ifaces.forEach((iface, i) => {
        const fi = join(field, `interfaces[${i}]`);
        if (!isObj(iface)) {
          v.add(fi, "INVALID_ARGUMENT", "an interface must be a message");
          return;
        }
        const problem = interfaceNameProblem(iface.name);
        if (problem) v.add(`${fi}.name`, "INVALID_INTERFACE_NAME", `${show(iface.name)}: ${problem}`);
        else if (names.has(iface.name as string)) v.add(`${fi}.name`, "DUPLICATE_INTERFACE", `interface ${iface.name as string} is listed twice`);
        if (typeof iface.name === "string") names.add(iface.name);
        if (iface.addresses === undefined) return;
        const ia = arrOf(iface.addresses);
        if (!ia) {
          v.add(`${fi}.addresses`, "INVALID_CIDR", "addresses must be a list of CIDR strings");
          return;
        }
        const seen = new Set<string>();
        ia.forEach((a, j) => {
          const f = `${fi}.addresses[${j}]`;
          const p = parsePrefix(a, { allowBare: false });
          if ("reason" in p) {
            v.add(f, p.reason, p.description);
            return;
          }
          const problem2 = endpointProblem(p.address);
          // link-local IPv6 is normal on an interface; the other endpoint rules still apply
          if (problem2 && !problem2.startsWith("a link-local")) {
            v.add(f, "ADDRESS_NOT_ALLOWED", problem2);
            return;
          }
          if (seen.has(p.address.canonical)) v.add(f, "DUPLICATE_ADDRESS", `${p.address.canonical} is listed twice on this interface`);
          seen.add(p.address.canonical);
        });
      });
    }
  }
  checkLabels(v, n.labels, join(field, "labels"));
  return v.list;
}

// ---------------------------------------------------------------------------------------------
// FirewallMark
// ---------------------------------------------------------------------------------------------

export function normalizeFirewallMark(m: FirewallMark): FirewallMark {
  const out = deepCopy(m) as unknown as Obj;
  if (!isObj(out)) return m;
  for (const match of arrOf(out.matches) ?? []) {
    if (!isObj(match)) continue;
    const d = arrOf(match.destinations);
    if (d) match.destinations = d.map((x) => canonicalPrefixIfValid(x, true));
    for (const r of arrOf(match.ports) ?? []) {
      // "a single port has start == end": an open end means the single port `start`
      if (isObj(r) && (r.end === 0 || r.end === undefined) && isIntIn(r.start, 1, MAX_PORT)) r.end = r.start;
    }
  }
  return out as unknown as FirewallMark;
}

export function validateFirewallMark(m: FirewallMark, field: string): FieldViolation[] {
  const v = new Violations();
  if (!isObj(m)) return [{ field, reason: "REQUIRED", description: "a firewall mark is required" }];
  const n = normalizeFirewallMark(m) as unknown as Obj;
  checkOptionalName(v, n.name, join(field, "name"), checkFirewallMarkName);
  if (n.mark === 0 || n.mark === undefined) v.add(join(field, "mark"), "REQUIRED", `a mark value 1..${MAX_FWMARK} is required`);
  else if (!isIntIn(n.mark, 1, MAX_FWMARK)) v.add(join(field, "mark"), "MARK_OUT_OF_RANGE", `mark ${show(n.mark)} is not in 1..${MAX_FWMARK}`);

  const matches = arrOf(n.matches);
  if (!matches || matches.length === 0) {
    v.add(join(field, "matches"), "REQUIRED", "a firewall mark needs at least one match");
    return v.list;
  }
  matches.forEach((match, i) => {
    const fm = join(field, `matches[${i}]`);
    if (!isObj(match)) {
      v.add(fm, "INVALID_ARGUMENT", "a match must be a message");
      return;
    }
    const dests = arrOf(match.destinations);
    if (!dests || dests.length === 0) v.add(`${fm}.destinations`, "REQUIRED", "a match needs at least one destination address or CIDR prefix");
    else {
      dests.forEach((d, j) => {
        const f = `${fm}.destinations[${j}]`;
        const p = parsePrefix(d, { allowBare: true });
        if ("reason" in p) v.add(f, p.reason, p.description);
        else if (p.hostBitsSet) v.add(f, "CIDR_HOST_BITS_SET", `${show(d)} has host bits set; did you mean ${p.network}?`);
        else if (isV4Embedded(p.address) && p.length >= 96) v.add(f, "ADDRESS_NOT_ALLOWED", "IPv4-mapped/compatible IPv6 prefixes are ambiguous; use the IPv4 form");
      });
    }
    const proto = def(match.protocol, Protocol.UNSPECIFIED);
    checkEnum(v, proto, [Protocol.UNSPECIFIED, Protocol.TCP, Protocol.UDP, Protocol.SCTP], `${fm}.protocol`, "protocol");
    if (match.ports === undefined) return;
    const ports = arrOf(match.ports);
    if (!ports) {
      v.add(`${fm}.ports`, "INVALID_ARGUMENT", "ports must be a list of port ranges");
      return;
    }
    if (ports.length > 0 && proto === Protocol.UNSPECIFIED) {
      v.add(`${fm}.ports`, "PORTS_REQUIRE_PROTOCOL", "ports need protocol TCP, UDP or SCTP (other protocols have no ports)");
    }
    ports.forEach((r, j) => {
      const f = `${fm}.ports[${j}]`;
      if (!isObj(r)) {
        v.add(f, "INVALID_ARGUMENT", "a port range must be a message");
        return;
      }
      const okStart = isIntIn(r.start, 1, MAX_PORT);
      const okEnd = isIntIn(r.end, 1, MAX_PORT);
      if (!okStart) v.add(`${f}.start`, "PORT_OUT_OF_RANGE", `port ${show(r.start)} is not in 1..${MAX_PORT}`);
      if (!okEnd) v.add(`${f}.end`, "PORT_OUT_OF_RANGE", `port ${show(r.end)} is not in 1..${MAX_PORT}`);
      if (okStart && okEnd && intOf(r.start) > intOf(r.end)) v.add(f, "INVALID_PORT_RANGE", `start ${show(r.start)} is after end ${show(r.end)}`);
    });
  });
  return v.list;
}

// ---------------------------------------------------------------------------------------------
// VirtualService
// ---------------------------------------------------------------------------------------------

export interface VirtualServiceContext {
  /** Firewall marks defined in the site. */
  firewallMarks: FirewallMark[];
  /** Hosts named in vs.directors that exist (any name missing here is reported as not found). */
  hosts: Host[];
  /** Existing real servers of this service (on update; empty on create). */
  realServers: RealServer[];
  /**
   * The site the service is in. Optional: taken from vs.name when that is set. Directors must be
   * hosts of this site.
   */
  site?: string;
}

export function normalizeVirtualService(vs: VirtualService): VirtualService {
  const out = deepCopy(vs) as unknown as Obj;
  if (!isObj(out)) return vs;
  if (out.scheduler === "" || out.scheduler === undefined) out.scheduler = DEFAULT_SCHEDULER;
  // any non-zero fwmark makes a fwmark service (an out-of-range one is reported by validate)
  if (out.fwmark !== 0 && out.fwmark !== undefined) {
    // fwmark services have no VIP; the family says which table (ip/ip6) the mark is for.
    if (out.addressFamily === AddressFamily.UNSPECIFIED || out.addressFamily === undefined) out.addressFamily = AddressFamily.IPV4;
  } else {
    const a = parseAddress(out.address);
    if (!("reason" in a)) {
      out.address = a.canonical;
      // Derived, always: an update of `address` alone must not leave a stale family behind.
      out.addressFamily = famOf(a);
    }
  }
  const p = out.persistence;
  if (isObj(p) && isIntIn(p.timeoutSeconds, 1, Number.MAX_SAFE_INTEGER) && p.prefixLength === undefined) {
    const fam = out.addressFamily;
    if (fam === AddressFamily.IPV4) p.prefixLength = 32;
    else if (fam === AddressFamily.IPV6) p.prefixLength = 128;
  }
  if (out.failureAction === FailureAction.UNSPECIFIED || out.failureAction === undefined) out.failureAction = FailureAction.QUIESCE;
  const hc = out.healthCheck;
  if (isObj(hc)) {
    if (hc.interval === undefined) hc.interval = seconds(DEFAULT_HEALTH_INTERVAL_SECONDS);
    if (hc.timeout === undefined) hc.timeout = seconds(DEFAULT_HEALTH_TIMEOUT_SECONDS);
    if (hc.rise === 0 || hc.rise === undefined) hc.rise = DEFAULT_RISE;
    if (hc.fall === 0 || hc.fall === undefined) hc.fall = DEFAULT_FALL;
    const kind = hc.kind;
    if (isObj(kind) && isObj(kind.value)) {
      if (kind.case === "http" && (kind.value.path === "" || kind.value.path === undefined)) kind.value.path = "/";
      if (kind.case === "dns" && (kind.value.queryType === "" || kind.value.queryType === undefined)) kind.value.queryType = "A";
    }
  }
  const ss = out.sorryServer;
  if (isObj(ss)) {
    ss.address = canonicalIfValid(ss.address);
    if (ss.forwardMethod === ForwardMethod.UNSPECIFIED || ss.forwardMethod === undefined) ss.forwardMethod = ForwardMethod.DR;
  }
  return out as unknown as VirtualService;
}

export function validateVirtualService(vs: VirtualService, ctx: VirtualServiceContext, field: string): FieldViolation[] {
  const v = new Violations();
  if (!isObj(vs)) return [{ field, reason: "REQUIRED", description: "a virtual service is required" }];
  const n = normalizeVirtualService(vs) as unknown as Obj;
  const F = (p: string) => join(field, p);
  const c = isObj(ctx) ? ctx : ({} as Partial<VirtualServiceContext>);

  let site = typeof c.site === "string" ? c.site : undefined;
  if (n.name !== undefined && n.name !== "") {
    const r = checkVirtualServiceName(n.name, F("name"));
    if (isViolation(r)) v.list.push(r);
    else site ??= r.site;
  }

  // --- what the service matches: protocol + VIP + port, or a firewall mark (ipvsadm -t/-u/--sctp-service vs -f)
  const fwmarkSet = n.fwmark !== 0 && n.fwmark !== undefined;
  const isFwmark = isIntIn(n.fwmark, 1, MAX_FWMARK);
  const persistence = n.persistence;
  const timeout = isObj(persistence) ? def(persistence.timeoutSeconds, 0) : 0;
  const persistent = isIntIn(timeout, 1, MAX_PERSISTENCE_TIMEOUT_SECONDS);
  const protocol = def(n.protocol, Protocol.UNSPECIFIED);
  let family: AddressFamily | undefined;

  if (fwmarkSet) {
    if (!isFwmark) v.add(F("fwmark"), "MARK_OUT_OF_RANGE", `fwmark ${show(n.fwmark)} is not in 1..${MAX_FWMARK}`);
    if (protocol !== Protocol.UNSPECIFIED) v.add(F("protocol"), "NOT_ALLOWED_WITH_FWMARK", "a fwmark service matches by mark: leave protocol unset (the FirewallMark says which protocols)");
    if (n.address !== "" && n.address !== undefined) v.add(F("address"), "NOT_ALLOWED_WITH_FWMARK", "a fwmark service has no VIP: leave address unset (the FirewallMark says which destinations)");
    if (n.port !== 0 && n.port !== undefined) v.add(F("port"), "NOT_ALLOWED_WITH_FWMARK", "a fwmark service has no port: leave port unset (the FirewallMark says which ports)");
    if (isFwmark) {
      const marks = arrOf(c.firewallMarks) ?? [];
      if (!marks.some((m) => isObj(m) && m.mark === n.fwmark)) {
        v.add(F("fwmark"), "FWMARK_NOT_DEFINED", `fwmark ${show(n.fwmark)} is not defined by a FirewallMark of the site; create the FirewallMark first`);
      }
    }
    if (checkEnum(v, n.addressFamily, [AddressFamily.IPV4, AddressFamily.IPV6], F("address_family"), "address family (IPV4 or IPV6)")) {
      family = n.addressFamily as AddressFamily;
    }
  } else {
    if (protocol === Protocol.UNSPECIFIED) v.add(F("protocol"), "REQUIRED", "set protocol (TCP, UDP or SCTP) with address and port, or set fwmark");
    else checkEnum(v, protocol, [Protocol.TCP, Protocol.UDP, Protocol.SCTP], F("protocol"), "protocol");
    const a = checkEndpointAddress(v, n.address, F("address"), true);
    if (a) family = famOf(a);
    const port = checkPort(v, def(n.port, 0), F("port"));
    // ipvsadm.c: "Zero port specified for non-persistent service"; ip_vs_core.c ip_vs_schedule():
    // "Schedule: port zero only supported in persistent services".
    if (port === 0 && !persistent) {
      v.add(F("port"), "ZERO_PORT_REQUIRES_PERSISTENCE", "port 0 (all ports) needs persistence: set persistence.timeout_seconds");
    }
  }

  // --- scheduler and flags
  const sched = n.scheduler;
  const schedOk = typeof sched === "string" && (SCHEDULERS as readonly string[]).includes(sched);
  if (!schedOk) v.add(F("scheduler"), "UNKNOWN_SCHEDULER", `${show(sched)} is not an IPVS scheduler; one of ${SCHEDULERS.join(" ")}`);
  if (n.schedulerFlags !== undefined) {
    const flags = arrOf(n.schedulerFlags);
    if (!flags) v.add(F("scheduler_flags"), "INVALID_SCHEDULER_FLAG", "scheduler_flags must be a list of strings");
    else {
      const allowed = schedOk ? SCHEDULER_FLAGS[sched as string] ?? [] : [];
      const seen = new Set<unknown>();
      flags.forEach((fl, i) => {
        const f = F(`scheduler_flags[${i}]`);
        if (seen.has(fl)) v.add(f, "DUPLICATE_SCHEDULER_FLAG", `${show(fl)} is listed twice`);
        else if (!allowed.includes(fl as string)) {
          const known = Object.values(SCHEDULER_FLAGS).flat().includes(fl as string);
          v.add(
            f,
            "INVALID_SCHEDULER_FLAG",
            known
              ? `${show(fl)} is a flag of the ${(fl as string).slice(0, 2)} scheduler, not of ${show(sched)}`
              : `${show(fl)} is not a scheduler flag (sh-fallback, sh-port with sh; mh-fallback, mh-port with mh)`,
          );
        }
        seen.add(fl);
      });
    }
  }

  // --- persistence (ipvsadm -p timeout, -M netmask)
  if (persistence !== undefined) {
    if (!isObj(persistence)) v.add(F("persistence"), "INVALID_ARGUMENT", "persistence must be a message");
    else {
      if (!isIntIn(timeout, 0, MAX_PERSISTENCE_TIMEOUT_SECONDS)) {
        v.add(F("persistence.timeout_seconds"), "PERSISTENCE_TIMEOUT_OUT_OF_RANGE", `${show(timeout)} is not in 1..${MAX_PERSISTENCE_TIMEOUT_SECONDS} seconds (ipvsadm's MAX_TIMEOUT, 31 days; 0 = not persistent)`);
      }
      const pl = persistence.prefixLength;
      if (pl !== undefined) {
        const fp = F("persistence.prefix_length");
        if (!persistent && isIntIn(timeout, 0, 0)) {
          v.add(fp, "PERSISTENCE_REQUIRED", "prefix_length only applies to a persistent service (timeout_seconds > 0)");
        } else if (family === AddressFamily.IPV4 && !isIntIn(pl, 0, 32)) {
          v.add(fp, "PREFIX_LENGTH_OUT_OF_RANGE", `${show(pl)} is not an IPv4 prefix length 0..32`);
        } else if (family === AddressFamily.IPV6 && !isIntIn(pl, 1, 128)) {
          // ip_vs_ctl.c ip_vs_add_service(): for AF_INET6 `if (plen < 1 || plen > 128) ret = -EINVAL;`
          v.add(fp, "PREFIX_LENGTH_OUT_OF_RANGE", `${show(pl)} is not an IPv6 prefix length 1..128 (the kernel rejects 0)`);
        } else if (family === undefined && !isIntIn(pl, 0, 128)) {
          v.add(fp, "PREFIX_LENGTH_OUT_OF_RANGE", `${show(pl)} is not a prefix length`);
        }
      }
    }
  }

  // --- one-packet scheduling (ipvsadm -o): ipvsadm.c fails "One-Packet Scheduling is only for UDP
  // virtual services" when `!ce.svc.fwmark && ce.svc.protocol != IPPROTO_UDP` — fwmark services may
  // use it (it applies to their UDP packets: ip_vs_core.c checks iph->protocol == IPPROTO_UDP).
  if (n.onePacket !== undefined && typeof n.onePacket !== "boolean") v.add(F("one_packet"), "INVALID_ARGUMENT", "one_packet must be a boolean");
  else if (n.onePacket === true && !fwmarkSet && protocol !== Protocol.UDP) {
    v.add(F("one_packet"), "ONE_PACKET_REQUIRES_UDP", "one-packet scheduling is only for UDP services");
  }

  // --- persistence engine (ipvsadm --pe). Only "sip" exists (ip_vs_pe_sip.c); it is consulted only
  // by ip_vs_sched_persist(), i.e. for persistent services, and ip_vs_sip_fill_param() returns
  // -EINVAL for anything but UDP ("Only useful with UDP"). fwmark services may carry UDP, so they may
  // use it (as with one_packet).
  const pe = n.persistenceEngine;
  if (pe !== undefined && pe !== "") {
    const fpe = F("persistence_engine");
    if (typeof pe !== "string" || !(PERSISTENCE_ENGINES as readonly string[]).includes(pe)) {
      v.add(fpe, "UNKNOWN_PERSISTENCE_ENGINE", `${show(pe)} is not a persistence engine; the only one is "sip"`);
    } else {
      if (!persistent) v.add(fpe, "PERSISTENCE_REQUIRED", "a persistence engine needs persistence (persistence.timeout_seconds > 0)");
      if (!fwmarkSet && protocol !== Protocol.UDP) v.add(fpe, "PERSISTENCE_ENGINE_REQUIRES_UDP", "the sip persistence engine only works for UDP services");
    }
  }

  // --- directors
  if (n.directors !== undefined) {
    const dirs = arrOf(n.directors);
    if (!dirs) v.add(F("directors"), "INVALID_NAME", "directors must be a list of host names");
    else {
      const hosts = (arrOf(c.hosts) ?? []).filter(isObj);
      const seen = new Set<unknown>();
      dirs.forEach((d, i) => {
        const f = F(`directors[${i}]`);
        const r = checkHostName(d, f);
        if (isViolation(r)) {
          v.list.push(r);
          return;
        }
        if (seen.has(d)) {
          v.add(f, "DUPLICATE_DIRECTOR", `${show(d)} is listed twice`);
          return;
        }
        seen.add(d);
        if (site !== undefined && r.site !== site) {
          v.add(f, "WRONG_SITE", `director ${show(d)} is not in site ${show(site)}; a service is carried by hosts of its own site`);
          return;
        }
        const host = hosts.find((h) => h.name === d);
        if (!host) v.add(f, "HOST_NOT_FOUND", `host ${show(d)} does not exist`);
        else if (!(arrOf(host.roles) ?? []).includes(HostRole.DIRECTOR)) v.add(f, "HOST_NOT_DIRECTOR", `host ${show(d)} does not have role HOST_ROLE_DIRECTOR`);
      });
    }
  }

  // --- health check, failure action
  if (n.healthCheck !== undefined) {
    validateHealthCheck(v, n.healthCheck, F("health_check"));
    // A probe on "the real server's port" has no port to use when the service spans ports: DR/TUN
    // real servers of fwmark and port-0 services have port 0 (keepalived likewise needs
    // connect_port there). Exec checks choose their own target.
    const hc = n.healthCheck;
    const spansPorts = fwmarkSet || n.port === 0;
    if (spansPorts && isObj(hc) && isObj(hc.kind) && ["tcp", "http", "dns"].includes(hc.kind.case as string) && hc.port === 0) {
      v.add(F("health_check.port"), "HEALTH_CHECK_PORT_REQUIRED", `a ${fwmarkSet ? "fwmark" : "port-0"} service spans ports: set the port to probe`);
    }
  }
  checkEnum(v, n.failureAction, [FailureAction.QUIESCE, FailureAction.REMOVE], F("failure_action"), "failure action");

  const shape: ServiceShape = { fwmark: fwmarkSet, port: fwmarkSet ? 0 : isIntIn(def(n.port, 0), 0, MAX_PORT) ? intOf(def(n.port, 0)) : undefined, family };

  // --- sorry server: a destination like any other (same family and port rules)
  const ss = n.sorryServer;
  if (ss !== undefined) {
    if (!isObj(ss)) v.add(F("sorry_server"), "INVALID_ARGUMENT", "sorry_server must be a message");
    else {
      const a = checkEndpointAddress(v, ss.address, F("sorry_server.address"), true);
      const port = checkPort(v, def(ss.port, 0), F("sorry_server.port"));
      const fwdOk = checkEnum(v, ss.forwardMethod, [ForwardMethod.NAT, ForwardMethod.DR, ForwardMethod.TUN], F("sorry_server.forward_method"), "forward method");
      if (fwdOk) {
        const p = destinationProblems(shape, { family: a?.family, port, forward: ss.forwardMethod });
        if (p.family) v.add(F("sorry_server.address"), "ADDRESS_FAMILY_MISMATCH", p.family);
        if (p.port) v.add(F("sorry_server.port"), "PORT_REMAP_NOT_ALLOWED", p.port);
      }
    }
  }

  // --- on update: the existing real servers must still fit the service
  const famConflicts: string[] = [];
  const portConflicts: string[] = [];
  for (const rs of arrOf(c.realServers) ?? []) {
    if (!isObj(rs)) continue;
    const a = parseAddress(rs.address);
    const fwd = rs.forwardMethod === ForwardMethod.UNSPECIFIED || rs.forwardMethod === undefined ? ForwardMethod.DR : rs.forwardMethod;
    const p = destinationProblems(shape, { family: "reason" in a ? undefined : a.family, port: isIntIn(rs.port, 0, MAX_PORT) ? intOf(rs.port) : undefined, forward: fwd });
    const label = typeof rs.name === "string" && rs.name ? rs.name : "reason" in a ? "a real server" : a.canonical;
    if (p.family) famConflicts.push(label);
    if (p.port) portConflicts.push(label);
  }
  const list = (xs: string[]) => (xs.length > 5 ? `${xs.slice(0, 5).join(", ")} and ${xs.length - 5} more` : xs.join(", "));
  if (famConflicts.length) {
    v.add(fwmarkSet ? F("address_family") : F("address"), "CONFLICTS_WITH_REAL_SERVERS", `the service's address family no longer matches non-TUN real servers: ${list(famConflicts)}`);
  }
  if (portConflicts.length) {
    v.add(fwmarkSet ? F("fwmark") : F("port"), "CONFLICTS_WITH_REAL_SERVERS", `DR/TUN real servers would need a port remap, which only NAT can do: ${list(portConflicts)}`);
  }
  return v.list;
}

const DNS_LABEL_RE = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

/** A DNS name to query: labels of 1-63 letters, digits, '-' or '_', at most 253 characters; "." is the root. */
export function dnsNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name === "") return "a query name is required";
  if (name === ".") return undefined;
  const n = name.endsWith(".") ? name.slice(0, -1) : name;
  if (n.length > 253) return "a DNS name is at most 253 characters";
  for (const label of n.split(".")) {
    if (!DNS_LABEL_RE.test(label)) return `label ${show(label)} is not 1-63 letters, digits, '-' or '_' (no leading/trailing '-')`;
  }
  return undefined;
}

function validateHealthCheck(v: Violations, hc: unknown, field: string): void {
  if (!isObj(hc)) {
    v.add(field, "INVALID_ARGUMENT", "health_check must be a message");
    return;
  }
  const kind = hc.kind;
  const kcase = isObj(kind) ? kind.case : undefined;
  if (kcase === undefined) v.add(field, "HEALTH_CHECK_KIND_REQUIRED", "set one of tcp, http, dns or exec");
  else if (!isObj(kind) || !isObj(kind.value) || !["tcp", "http", "dns", "exec"].includes(kcase as string)) {
    v.add(field, "HEALTH_CHECK_KIND_REQUIRED", "set one of tcp, http, dns or exec");
  } else {
    const val = kind.value;
    const f = `${field}.${kcase as string}`;
    if (kcase === "http") {
      const path = val.path;
      if (typeof path !== "string" || !path.startsWith("/") || path.length > 2048 || /\s/.test(path) || CONTROL_RE.test(path)) {
        v.add(`${f}.path`, "INVALID_HTTP_PATH", `${show(path)} is not a request path: it starts with "/", has no whitespace or control characters, at most 2048 characters`);
      }
      const st = def(val.expectedStatus, 0);
      if (!(isIntIn(st, 0, 0) || isIntIn(st, 100, 599))) v.add(`${f}.expected_status`, "INVALID_HTTP_STATUS", `${show(st)} is not an HTTP status 100..599 (or 0 for any 2xx)`);
      const re = def(val.bodyRegex, "");
      if (typeof re !== "string") v.add(`${f}.body_regex`, "INVALID_REGEX", "body_regex must be a string");
      else if (re.length > 1024) v.add(`${f}.body_regex`, "INVALID_REGEX", "body_regex is at most 1024 characters");
      else if (re !== "") {
        try {
          new RegExp(re, "u");
        } catch (e) {
          v.add(`${f}.body_regex`, "INVALID_REGEX", `body_regex does not compile: ${e instanceof Error ? e.message : "invalid"}`);
        }
      }
      const hh = def(val.hostHeader, "");
      if (typeof hh !== "string" || hh.length > 255 || /\s/.test(hh) || CONTROL_RE.test(hh)) {
        v.add(`${f}.host_header`, "INVALID_HOST_HEADER", "host_header is at most 255 characters without whitespace or control characters");
      }
      if (val.tls !== undefined && typeof val.tls !== "boolean") v.add(`${f}.tls`, "INVALID_ARGUMENT", "tls must be a boolean");
      if (val.tlsSkipVerify === true && val.tls !== true) v.add(`${f}.tls_skip_verify`, "TLS_REQUIRED", "tls_skip_verify only applies with tls");
    } else if (kcase === "dns") {
      const problem = dnsNameProblem(val.queryName);
      if (problem) v.add(`${f}.query_name`, "INVALID_DNS_NAME", problem);
      const qt = val.queryType;
      if (typeof qt !== "string" || !(DNS_QUERY_TYPES as readonly string[]).includes(qt)) {
        v.add(`${f}.query_type`, "INVALID_DNS_TYPE", `${show(qt)} is not one of ${DNS_QUERY_TYPES.join(" ")}`);
      }
    } else if (kcase === "exec") {
      const argv = arrOf(val.argv);
      if (!argv || argv.length === 0) v.add(`${f}.argv`, "REQUIRED", "exec needs a command: argv[0] is the program");
      else if (argv.length > 64) v.add(`${f}.argv`, "TOO_MANY_ARGUMENTS", "at most 64 arguments");
      else {
        argv.forEach((a, i) => {
          if (typeof a !== "string" || a.includes("\u0000") || a.length > 4096 || (i === 0 && a === "")) {
            v.add(`${f}.argv[${i}]`, "INVALID_ARGV", i === 0 ? "argv[0] is the program: non-empty, no NUL, at most 4096 characters" : "an argument has no NUL and at most 4096 characters");
          }
        });
      }
    }
  }
  const interval = durationMs(hc.interval);
  const timeout = durationMs(hc.timeout);
  if (!(interval > 0) || interval > MAX_HEALTH_INTERVAL_SECONDS * 1000) {
    v.add(`${field}.interval`, "DURATION_OUT_OF_RANGE", `interval must be a valid duration > 0 and ≤ ${MAX_HEALTH_INTERVAL_SECONDS}s`);
  }
  if (!(timeout > 0)) v.add(`${field}.timeout`, "DURATION_OUT_OF_RANGE", "timeout must be a valid duration > 0");
  else if (interval > 0 && timeout > interval) v.add(`${field}.timeout`, "TIMEOUT_EXCEEDS_INTERVAL", "timeout must not exceed interval (checks would overlap)");
  for (const [local, proto] of [["rise", "rise"], ["fall", "fall"]] as const) {
    if (!isIntIn(hc[local], 1, MAX_RISE_FALL)) v.add(`${field}.${proto}`, "OUT_OF_RANGE", `${proto} ${show(hc[local])} is not in 1..${MAX_RISE_FALL}`);
  }
  checkPort(v, def(hc.port, 0), `${field}.port`);
}

// ---------------------------------------------------------------------------------------------
// RealServer
// ---------------------------------------------------------------------------------------------

export interface RealServerContext {
  /** The VirtualService the real server belongs to (loaded by the store). */
  virtualService: VirtualService;
  /** The Host named by rs.host, if it exists. */
  host?: Host;
}

export function normalizeRealServer(rs: RealServer): RealServer {
  const out = deepCopy(rs) as unknown as Obj;
  if (!isObj(out)) return rs;
  out.address = canonicalIfValid(out.address);
  if (out.weight === undefined) out.weight = DEFAULT_WEIGHT;
  // ipvsadm's default forwarding method is -g (ipvsadm.c: ce.dest.conn_flags = IP_VS_CONN_F_DROUTE)
  if (out.forwardMethod === ForwardMethod.UNSPECIFIED || out.forwardMethod === undefined) out.forwardMethod = ForwardMethod.DR;
  if (out.forwardMethod === ForwardMethod.TUN) {
    // ipvsadm's default tunnel type is ipip (DEF_TUNNEL_TYPE "ipip")
    if (out.tunnel === undefined) out.tunnel = create(TunnelConfigSchema, { type: TunnelType.IPIP });
    else if (isObj(out.tunnel) && (out.tunnel.type === TunnelType.UNSPECIFIED || out.tunnel.type === undefined)) out.tunnel.type = TunnelType.IPIP;
  }
  return out as unknown as RealServer;
}

export function validateRealServer(rs: RealServer, ctx: RealServerContext, field: string): FieldViolation[] {
  const v = new Violations();
  if (!isObj(rs)) return [{ field, reason: "REQUIRED", description: "a real server is required" }];
  const n = normalizeRealServer(rs) as unknown as Obj;
  const F = (p: string) => join(field, p);
  const c = isObj(ctx) ? ctx : ({} as Partial<RealServerContext>);
  const svc = isObj(c.virtualService) ? (normalizeVirtualService(c.virtualService as VirtualService) as unknown as Obj) : undefined;

  let site: string | undefined;
  if (n.name !== undefined && n.name !== "") {
    const r = checkRealServerName(n.name, F("name"));
    if (isViolation(r)) v.list.push(r);
    else site = r.site;
  }
  if (site === undefined && svc) {
    const r = checkVirtualServiceName(svc.name, "");
    if (!isViolation(r)) site = r.site;
  }

  const a = checkEndpointAddress(v, n.address, F("address"), true);
  const port = checkPort(v, def(n.port, 0), F("port"));
  const fwdOk = checkEnum(v, n.forwardMethod, [ForwardMethod.NAT, ForwardMethod.DR, ForwardMethod.TUN], F("forward_method"), "forward method (NAT, DR or TUN)");

  if (svc && fwdOk) {
    const p = destinationProblems(serviceShape(svc), { family: a?.family, port, forward: n.forwardMethod });
    if (p.family) v.add(F("address"), "ADDRESS_FAMILY_MISMATCH", p.family);
    if (p.port) v.add(F("port"), "PORT_REMAP_NOT_ALLOWED", p.port);
  }

  if (!isIntIn(n.weight, 0, MAX_WEIGHT)) v.add(F("weight"), "WEIGHT_OUT_OF_RANGE", `weight ${show(n.weight)} is not in 0..${MAX_WEIGHT}`);
  const upper = def(n.upperThreshold, 0);
  const lower = def(n.lowerThreshold, 0);
  const upperOk = isIntIn(upper, 0, MAX_THRESHOLD);
  const lowerOk = isIntIn(lower, 0, MAX_THRESHOLD);
  if (!upperOk) v.add(F("upper_threshold"), "THRESHOLD_OUT_OF_RANGE", `${show(upper)} is not in 0..${MAX_THRESHOLD}`);
  if (!lowerOk) v.add(F("lower_threshold"), "THRESHOLD_OUT_OF_RANGE", `${show(lower)} is not in 0..${MAX_THRESHOLD}`);
  // ip_vs_ctl.c ip_vs_add_dest()/ip_vs_edit_dest(): `if (udest->l_threshold > udest->u_threshold)
  // return -ERANGE;` — unconditionally, so a lower threshold also needs an upper one.
  if (upperOk && lowerOk && intOf(lower) > intOf(upper)) {
    v.add(
      F("lower_threshold"),
      "THRESHOLD_ORDER",
      intOf(upper) === 0 ? "a lower threshold needs an upper threshold (the kernel rejects lower > upper, and 0 = no upper limit)" : `lower_threshold ${intOf(lower)} is above upper_threshold ${intOf(upper)}`,
    );
  }

  validateTunnel(v, n, F);

  const host = n.host;
  if (host !== undefined && host !== "") {
    const r = checkHostName(host, F("host"));
    if (isViolation(r)) v.list.push(r);
    else if (site !== undefined && r.site !== site) v.add(F("host"), "WRONG_SITE", `host ${show(host)} is not in site ${show(site)}`);
    else if (!isObj(c.host)) v.add(F("host"), "HOST_NOT_FOUND", `host ${show(host)} does not exist`);
    else if (!(arrOf(c.host.roles) ?? []).includes(HostRole.REAL_SERVER)) v.add(F("host"), "HOST_NOT_REAL_SERVER", `host ${show(host)} does not have role HOST_ROLE_REAL_SERVER`);
  }
  return v.list;
}

/**
 * Tunnel options, as ipvsadm checks them ("Tunnel options conflict with forward method" unless -i;
 * tunnel_types_v_options: ipip takes no port and no checksum option, gue needs --tun-port and takes
 * one of --tun-nocsum/--tun-csum/--tun-remcsum, gre takes no port and one of nocsum/csum). The
 * kernel also refuses GUE without a port: ip_vs_add_dest() "tunnel port is zero" → -EINVAL.
 */
function validateTunnel(v: Violations, n: Obj, F: (p: string) => string): void {
  const t = n.tunnel;
  if (t === undefined) return;
  if (!isObj(t)) {
    v.add(F("tunnel"), "INVALID_ARGUMENT", "tunnel must be a message");
    return;
  }
  if (n.forwardMethod !== ForwardMethod.TUN) {
    v.add(F("tunnel"), "TUNNEL_REQUIRES_TUN", "tunnel options only apply with forward_method TUN");
    return;
  }
  if (!checkEnum(v, t.type, [TunnelType.IPIP, TunnelType.GUE, TunnelType.GRE], F("tunnel.type"), "tunnel type (IPIP, GUE or GRE)")) return;
  const port = def(t.port, 0);
  if (t.type === TunnelType.GUE) {
    if (port === 0) v.add(F("tunnel.port"), "REQUIRED", "GUE needs a UDP port (the kernel rejects tunnel port 0)");
    else if (!isIntIn(port, 1, MAX_PORT)) v.add(F("tunnel.port"), "PORT_OUT_OF_RANGE", `port ${show(port)} is not in 1..${MAX_PORT}`);
  } else if (port !== 0) {
    v.add(F("tunnel.port"), "NOT_ALLOWED", `a tunnel port only applies to GUE, not ${TunnelType[t.type as TunnelType]}`);
  }
  const flags = (["no_checksum", "checksum", "remote_checksum"] as const).filter((k) => {
    const local = k === "no_checksum" ? "noChecksum" : k === "checksum" ? "checksum" : "remoteChecksum";
    return t[local] === true;
  });
  if (t.type === TunnelType.IPIP) {
    for (const k of flags) v.add(F(`tunnel.${k}`), "NOT_ALLOWED", "checksum options only apply to GUE and GRE");
    return;
  }
  if (t.type === TunnelType.GRE && flags.includes("remote_checksum")) {
    v.add(F("tunnel.remote_checksum"), "NOT_ALLOWED", "remote checksum offload only applies to GUE");
  }
  if (flags.length > 1) v.add(F("tunnel"), "CHECKSUM_FLAGS_EXCLUSIVE", `no_checksum, checksum and remote_checksum are mutually exclusive; got ${flags.join(", ")}`);
}

/** Validates a resource id (e.g. `virtual_service_id`) — re-exported for one import site. */
export { validateId } from "./names.js";
