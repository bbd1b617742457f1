/**
 * Output of the CLI, as pure functions from API messages to text: aligned tables for lists, a
 * "Field: value" block for one resource, the ipvsadm-like listing of a site, and error text.
 * Nothing here does I/O, so all of it is unit-tested without a server.
 */
import { isIP } from "node:net";
import { timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { AuditEntry, FirewallMark, FirewallMarkMatch, Host, RealServer, Site, VirtualService } from "../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, FailureAction, ForwardMethod, HostRole, Protocol, TunnelType, type HealthCheck } from "../gen/lvsfleet/v1/types_pb.js";

// ---------------------------------------------------------------------------------------------
// Generic

/** Columns separated by two spaces, padded to the widest cell; trailing blanks trimmed. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** `Key:  value` lines with the values aligned; empty values are left out. */
export function formatDetail(pairs: readonly (readonly [string, string])[]): string {
  const shown = pairs.filter(([, v]) => v !== "");
  const width = Math.max(...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${(k + ":").padEnd(width)}  ${v}`).join("\n") + "\n";
}

/** An address and port as ipvsadm prints them: `192.0.2.10:80`, `[2001:db8::1]:80`. */
export function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

function time(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}

/** Protobuf Duration → `5s`, `1.5s`, `250ms`. */
export function formatDuration(d: Duration | undefined): string {
  if (!d) return "";
  const ms = Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
  return ms % 1000 === 0 ? `${ms / 1000}s` : ms < 1000 ? `${ms}ms` : `${ms / 1000}s`;
}

function labelsText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function short(name: string): string {
  return name.split("/").pop() ?? name;
}

// ---------------------------------------------------------------------------------------------
// LVS words

const PROTOCOL_NAME: Record<Protocol, string> = { [Protocol.UNSPECIFIED]: "", [Protocol.TCP]: "TCP", [Protocol.UDP]: "UDP", [Protocol.SCTP]: "SCTP" };

/** ipvsadm's Forward column: Masq, Route, Tunnel. RealServer's default (unset) is DR. */
export function forwardName(m: ForwardMethod): string {
  switch (m) {
    case ForwardMethod.NAT:
      return "Masq";
    case ForwardMethod.TUN:
      return "Tunnel";
    default:
      return "Route";
  }
}

const TUNNEL_NAME: Record<TunnelType, string> = { [TunnelType.UNSPECIFIED]: "", [TunnelType.IPIP]: "ipip", [TunnelType.GUE]: "gue", [TunnelType.GRE]: "gre" };

export function roleNames(roles: readonly HostRole[]): string {
  return roles.map((r) => (r === HostRole.DIRECTOR ? "director" : r === HostRole.REAL_SERVER ? "real-server" : "?")).join(",");
}

function isV6(vs: VirtualService): boolean {
  return vs.fwmark !== 0 ? vs.addressFamily === AddressFamily.IPV6 : isIP(vs.address) === 6;
}

/** The service column of ipvsadm: `TCP  192.0.2.10:80`, `FWM  10`, `FWM  10 IPv6`. */
export function serviceKey(vs: VirtualService): string {
  if (vs.fwmark !== 0) return `FWM  ${vs.fwmark}${vs.addressFamily === AddressFamily.IPV6 ? " IPv6" : ""}`;
  return `${PROTOCOL_NAME[vs.protocol] || "?"}  ${hostPort(vs.address, vs.port)}`;
}

/** A prefix length as ipvsadm shows the persistence mask: dotted for IPv4, a number for IPv6. */
function maskText(prefix: number, v6: boolean): string {
  if (v6) return String(prefix);
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join(".");
}

/**
 * The rest of ipvsadm's service line after the key: scheduler, scheduler flags in parentheses,
 * `persistent T [mask M] [pe P]`, `ops`.
 */
export function serviceFlags(vs: VirtualService): string {
  const parts = [vs.scheduler || "wlc"];
  if (vs.schedulerFlags.length > 0) parts.push(`(${vs.schedulerFlags.join(",")})`);
  const p = vs.persistence;
  if (p && p.timeoutSeconds > 0) {
    parts.push(`persistent ${p.timeoutSeconds}`);
    const v6 = isV6(vs);
    if (p.prefixLength !== undefined && p.prefixLength !== (v6 ? 128 : 32)) parts.push(`mask ${maskText(p.prefixLength, v6)}`);
    if (vs.persistenceEngine) parts.push(`pe ${vs.persistenceEngine}`);
  }
  if (vs.onePacket) parts.push("ops");
  return parts.join(" ");
}

/** Per-real-server counters, when known (from the Directors' reports; not in the topology API). */
export interface RealServerCounters {
  activeConn: number;
  inactConn: number;
}

export interface ServiceListing {
  virtualService: VirtualService;
  realServers: RealServer[];
}

/** ipvsadm's service order: address services before fwmark services, then protocol, address, port. */
export function compareServices(a: VirtualService, b: VirtualService): number {
  if (a.fwmark !== b.fwmark) return a.fwmark - b.fwmark;
  const proto = (p: Protocol) => ({ [Protocol.TCP]: 6, [Protocol.UDP]: 17, [Protocol.SCTP]: 132, [Protocol.UNSPECIFIED]: 0 })[p];
  if (a.protocol !== b.protocol) return proto(a.protocol) - proto(b.protocol);
  const fam = Number(isV6(a)) - Number(isV6(b));
  if (fam !== 0) return fam;
  const addr = compareAddresses(a.address, b.address);
  if (addr !== 0) return addr;
  return a.port - b.port;
}

/** Numeric address order (ipvsadm compares the raw bytes); unparseable addresses sort as text. */
export function compareAddresses(a: string, b: string): number {
  const ka = addressKey(a);
  const kb = addressKey(b);
  if (ka && kb) {
    for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
      const d = (ka[i] ?? -1) - (kb[i] ?? -1);
      if (d !== 0) return d;
    }
    return 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function addressKey(a: string): number[] | undefined {
  if (isIP(a) === 4) return a.split(".").map(Number);
  if (isIP(a) !== 6) return undefined;
  const [head, tail = ""] = a.split("::");
  const parse = (s: string) => (s === "" ? [] : s.split(":"));
  let h = parse(head!);
  let t = a.includes("::") ? parse(tail) : [];
  // An embedded IPv4 tail (::ffff:192.0.2.1) counts as two groups.
  const v4 = (g: string[]) => g.flatMap((x) => (x.includes(".") ? (() => { const o = x.split(".").map(Number); return [((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16)]; })() : [x]));
  h = v4(h);
  t = v4(t);
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => parseInt(g, 16));
}

/**
 * A site's services in the shape of `ipvsadm -Ln`:
 *
 *   IP Virtual Server (lvsfleet desired state) site ams1 revision 7
 *   Prot LocalAddress:Port Scheduler Flags
 *     -> RemoteAddress:Port           Forward Weight
 *   TCP  192.0.2.10:80 wlc persistent 300
 *     -> 198.51.100.11:80             Route   1
 *
 * ActiveConn/InActConn columns appear only when counters are given: they are kernel state of the
 * Directors, not part of the topology. Real servers print with the service port when theirs is 0
 * (what IPVS does), sorted by address and port like ipvsadm.
 */
export function formatIpvsList(
  site: string,
  revision: bigint | undefined,
  services: readonly ServiceListing[],
  counters?: ReadonlyMap<string, RealServerCounters>,
): string {
  const withCounters = counters !== undefined;
  const lines = [
    `IP Virtual Server (lvsfleet desired state) site ${site}${revision !== undefined ? ` revision ${revision}` : ""}`,
    "Prot LocalAddress:Port Scheduler Flags",
    withCounters ? "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn" : "  -> RemoteAddress:Port           Forward Weight",
  ];
  for (const { virtualService: vs, realServers } of [...services].sort((a, b) => compareServices(a.virtualService, b.virtualService))) {
    lines.push(`${serviceKey(vs)} ${serviceFlags(vs)}`);
    const rows = realServers
      .map((rs) => ({ rs, port: rs.port || vs.port }))
      .sort((a, b) => compareAddresses(a.rs.address, b.rs.address) || a.port - b.port);
    for (const { rs, port } of rows) {
      // ipvsadm: "  -> %-28s %-7s %-6d %-10u %-10u".
      const dest = hostPort(rs.address, port).padEnd(28);
      const weight = String(rs.weight ?? 1);
      const c = counters?.get(rs.name);
      lines.push(
        withCounters
          ? `  -> ${dest} ${forwardName(rs.forwardMethod).padEnd(7)} ${weight.padEnd(6)} ${String(c?.activeConn ?? 0).padEnd(10)} ${c?.inactConn ?? 0}`
          : `  -> ${dest} ${forwardName(rs.forwardMethod).padEnd(7)} ${weight}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Per resource: table rows (lists) and detail blocks (get/create/update)

function timeoutsText(s: Site): string {
  const t = s.ipvsTimeouts;
  if (!t || (t.tcpSeconds === 0 && t.tcpFinSeconds === 0 && t.udpSeconds === 0)) return "";
  const one = (n: number) => (n === 0 ? "-" : String(n));
  return `${one(t.tcpSeconds)} ${one(t.tcpFinSeconds)} ${one(t.udpSeconds)}`;
}

export function formatSites(sites: readonly Site[]): string {
  return formatTable(
    ["NAME", "DISPLAY NAME", "TIMEOUTS (TCP TCPFIN UDP)", "LABELS", "REVISION"],
    sites.map((s) => [s.name, s.displayName, timeoutsText(s), labelsText(s.labels), String(s.revision)]),
  );
}

export function formatSite(s: Site): string {
  return formatDetail([
    ["Name", s.name],
    ["Display name", s.displayName],
    ["IPVS timeouts", timeoutsText(s) && `tcp ${s.ipvsTimeouts?.tcpSeconds || "-"} tcpfin ${s.ipvsTimeouts?.tcpFinSeconds || "-"} udp ${s.ipvsTimeouts?.udpSeconds || "-"}`],
    ["Labels", labelsText(s.labels)],
    ["Revision", String(s.revision)],
    ["Etag", s.etag],
    ["Created", time(s.createTime)],
    ["Updated", time(s.updateTime)],
  ]);
}

function interfacesText(h: Host): string {
  return h.interfaces.map((i) => (i.addresses.length ? `${i.name}=${i.addresses.join(",")}` : i.name)).join(" ");
}

export function formatHosts(hosts: readonly Host[]): string {
  return formatTable(
    ["NAME", "ROLES", "ADDRESSES", "INTERFACES", "REVISION"],
    hosts.map((h) => [h.name, roleNames(h.roles), h.addresses.join(","), interfacesText(h), String(h.revision)]),
  );
}

export function formatHost(h: Host): string {
  return formatDetail([
    ["Name", h.name],
    ["Roles", roleNames(h.roles)],
    ["Addresses", h.addresses.join(", ")],
    ["Interfaces", interfacesText(h)],
    ["Labels", labelsText(h.labels)],
    ["Revision", String(h.revision)],
    ["Etag", h.etag],
    ["Created", time(h.createTime)],
    ["Updated", time(h.updateTime)],
  ]);
}

/** `http GET /healthz expect 200, every 5s timeout 3s rise 2 fall 3`. */
export function healthCheckText(hc: HealthCheck | undefined): string {
  if (!hc || hc.kind.case === undefined) return "";
  let what: string;
  switch (hc.kind.case) {
    case "tcp":
      what = "tcp connect";
      break;
    case "http": {
      const h = hc.kind.value;
      what = `${h.tls ? "https" : "http"} GET ${h.path || "/"}${h.expectedStatus ? ` expect ${h.expectedStatus}` : ""}${h.hostHeader ? ` host ${h.hostHeader}` : ""}${h.bodyRegex ? ` body /${h.bodyRegex}/` : ""}${h.tlsSkipVerify ? " insecure" : ""}`;
      break;
    }
    case "dns":
      what = `dns ${hc.kind.value.queryType || "A"} ${hc.kind.value.queryName}`.trimEnd();
      break;
    case "exec":
      what = `exec ${hc.kind.value.argv.join(" ")}`;
      break;
  }
  const timing = [
    hc.port ? `port ${hc.port}` : "",
    hc.interval ? `every ${formatDuration(hc.interval)}` : "",
    hc.timeout ? `timeout ${formatDuration(hc.timeout)}` : "",
    hc.rise ? `rise ${hc.rise}` : "",
    hc.fall ? `fall ${hc.fall}` : "",
  ].filter((s) => s !== "");
  return timing.length ? `${what}, ${timing.join(" ")}` : what;
}

export function formatVirtualServices(vss: readonly VirtualService[]): string {
  return formatTable(
    ["NAME", "SERVICE", "SCHEDULER/FLAGS", "DIRECTORS", "CHECK", "REVISION"],
    vss.map((vs) => [vs.name, serviceKey(vs), serviceFlags(vs), vs.directors.map(short).join(","), vs.healthCheck?.kind.case ?? "", String(vs.revision)]),
  );
}

export function formatVirtualService(vs: VirtualService): string {
  const sorry = vs.sorryServer;
  return formatDetail([
    ["Name", vs.name],
    ["Service", serviceKey(vs)],
    ["Scheduler", vs.scheduler || "wlc"],
    ["Scheduler flags", vs.schedulerFlags.join(",")],
    [
      "Persistence",
      vs.persistence && vs.persistence.timeoutSeconds > 0
        ? `${vs.persistence.timeoutSeconds}s${vs.persistence.prefixLength !== undefined ? ` /${vs.persistence.prefixLength}` : ""}`
        : "",
    ],
    ["Persistence engine", vs.persistenceEngine],
    ["One-packet", vs.onePacket ? "yes" : ""],
    ["Directors", vs.directors.join(", ")],
    ["Health check", healthCheckText(vs.healthCheck)],
    ["On failure", vs.failureAction === FailureAction.REMOVE ? "remove" : vs.failureAction === FailureAction.QUIESCE ? "quiesce" : ""],
    ["Sorry server", sorry && sorry.address ? `${hostPort(sorry.address, sorry.port)} ${forwardName(sorry.forwardMethod)}` : ""],
    ["Revision", String(vs.revision)],
    ["Etag", vs.etag],
    ["Created", time(vs.createTime)],
    ["Updated", time(vs.updateTime)],
  ]);
}

function thresholdsText(rs: RealServer): string {
  if (rs.upperThreshold === 0 && rs.lowerThreshold === 0) return "";
  return `${rs.upperThreshold || "-"}/${rs.lowerThreshold || "-"}`;
}

function forwardText(rs: RealServer): string {
  const t = rs.tunnel;
  if (rs.forwardMethod !== ForwardMethod.TUN || !t) return forwardName(rs.forwardMethod);
  const extra = [TUNNEL_NAME[t.type], t.port ? `port ${t.port}` : "", t.noChecksum ? "nocsum" : "", t.checksum ? "csum" : "", t.remoteChecksum ? "remcsum" : ""].filter(
    (s) => s !== "",
  );
  return extra.length ? `Tunnel (${extra.join(" ")})` : "Tunnel";
}

export function formatRealServers(rss: readonly RealServer[]): string {
  return formatTable(
    ["NAME", "ADDRESS", "PORT", "FORWARD", "WEIGHT", "THRESHOLDS (X/Y)", "HOST", "REVISION"],
    rss.map((rs) => [rs.name, rs.address, rs.port ? String(rs.port) : "-", forwardText(rs), String(rs.weight ?? 1), thresholdsText(rs), rs.host ? short(rs.host) : "", String(rs.revision)]),
  );
}

export function formatRealServer(rs: RealServer): string {
  return formatDetail([
    ["Name", rs.name],
    ["Address", rs.address],
    ["Port", rs.port ? String(rs.port) : "service port"],
    ["Forward", forwardText(rs)],
    ["Weight", String(rs.weight ?? 1)],
    ["Upper threshold", rs.upperThreshold ? String(rs.upperThreshold) : ""],
    ["Lower threshold", rs.lowerThreshold ? String(rs.lowerThreshold) : ""],
    ["Host", rs.host],
    ["Revision", String(rs.revision)],
    ["Etag", rs.etag],
    ["Created", time(rs.createTime)],
    ["Updated", time(rs.updateTime)],
  ]);
}

/** `tcp 192.0.2.10 80,443` / `any 192.0.2.0/24`; IPv6 destinations in brackets. */
export function matchText(m: FirewallMarkMatch): string {
  const proto = PROTOCOL_NAME[m.protocol].toLowerCase() || "any";
  const dests = m.destinations.map((d) => (d.includes(":") ? `[${d}]` : d)).join(",");
  const ports = m.ports.map((p) => (p.start === p.end ? String(p.start) : `${p.start}-${p.end}`)).join(",");
  return [proto, dests, ports].filter((s) => s !== "").join(" ");
}

export function formatFirewallMarks(marks: readonly FirewallMark[]): string {
  return formatTable(
    ["NAME", "MARK", "MATCHES", "REVISION"],
    marks.map((m) => [m.name, String(m.mark), m.matches.map(matchText).join("; "), String(m.revision)]),
  );
}

export function formatFirewallMark(m: FirewallMark): string {
  return formatDetail([
    ["Name", m.name],
    ["Mark", `${m.mark} (0x${m.mark.toString(16)})`],
    ...m.matches.map((x, i) => [i === 0 ? "Matches" : "", matchText(x)] as const),
    ["Revision", String(m.revision)],
    ["Etag", m.etag],
    ["Created", time(m.createTime)],
    ["Updated", time(m.updateTime)],
  ]).replace(/^:(\s+)/gm, " $1");
}

export function formatAuditEntries(entries: readonly AuditEntry[]): string {
  return formatTable(
    ["REVISION", "TIME", "ACTOR", "OPERATION", "RESOURCE", "REASON"],
    entries.map((e) => [String(e.revision), time(e.time), e.actor, e.operation, e.resourceName, e.reason]),
  );
}

// ---------------------------------------------------------------------------------------------
// Errors

/** What the CLI needs of an RPC failure (lib/grpc/status.ts RpcError has these). */
export interface ErrorLike {
  message: string;
  codeName?: string;
  fieldViolations?: readonly { field: string; description: string }[];
  preconditionViolations?: readonly { type: string; subject: string; description: string }[];
  resourceName?: string;
}

/**
 *   error: INVALID_ARGUMENT: <message>
 *     virtual_service.port: <description>
 */
export function formatError(err: ErrorLike): string {
  const lines = [`error: ${err.codeName ? `${err.codeName}: ` : ""}${err.message}`];
  // A single violation is already spelled out in the message ("invalid x: why"): don't say it twice.
  for (const v of err.fieldViolations ?? []) {
    if (!err.message.includes(`${v.field}: ${v.description}`)) lines.push(`  ${v.field}: ${v.description}`);
  }
  for (const v of err.preconditionViolations ?? []) lines.push(`  ${v.subject || v.type}: ${v.description}`);
  if (err.resourceName && !err.message.includes(err.resourceName)) lines.push(`  resource: ${err.resourceName}`);
  return lines.join("\n") + "\n";
}
