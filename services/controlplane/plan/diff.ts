/**
 * Plan: what a topology change does to each host's kernel. Pure (no I/O): the handler
 * (api/plan.ts) compiles the site before and after the change and diffs the HostDesiredStates here.
 */
import type { SiteTopology } from "../compile/index.js";
import type { FwmarkRule, HostDesiredState, IpvsDestination, IpvsService, Sysctl, VipAddress } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, FailureAction, ForwardMethod, Protocol, type HealthCheck, type IpvsTimeouts } from "../../../gen/lvsfleet/v1/types_pb.js";

export type PlanKind =
  | "ipvs-service"
  | "ipvs-destination"
  | "ipvs-timeouts"
  | "health-check"
  | "address"
  | "fwmark-rule"
  | "sysctl"
  | "tunnel"
  | "fou-port"
  | "nat-return-path";
export type PlanActionName = "ADD" | "CHANGE" | "REMOVE";

export interface PlanDiff {
  kind: PlanKind;
  action: PlanActionName;
  /** e.g. "TCP 192.0.2.10:80" or "TCP 192.0.2.10:80 -> 10.0.0.1:80". */
  object: string;
  /** e.g. "weight 1"; "" for ADD. */
  before: string;
  /** e.g. "weight 0"; "" for REMOVE. */
  after: string;
  /** The virtual service (resource name) of service/destination items. */
  virtualService?: string;
}

const PROTO: Record<number, string> = { [Protocol.TCP]: "TCP", [Protocol.UDP]: "UDP", [Protocol.SCTP]: "SCTP" };
const FWD: Record<number, string> = { [ForwardMethod.NAT]: "masq", [ForwardMethod.DR]: "route", [ForwardMethod.TUN]: "tunnel" };

function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

export function serviceKey(s: IpvsService): string {
  return s.fwmark ? `FWM ${s.fwmark}` : `${PROTO[s.protocol] ?? "?"} ${hostPort(s.address, s.port)}`;
}

function destKey(d: IpvsDestination): string {
  return hostPort(d.address, d.port);
}

type Fields = Array<[string, string]>;

function serviceFields(s: IpvsService): Fields {
  return [
    ["scheduler", s.scheduler],
    ["flags", s.schedulerFlags.join(",") || "none"],
    ["persistent", s.persistenceTimeout ? String(s.persistenceTimeout) : "off"],
    ["netmask", String(s.persistencePrefixLength)],
    ["one-packet", String(s.onePacket)],
    ["pe", s.persistenceEngine || "none"],
  ];
}

const secs = (d: { seconds: bigint; nanos: number } | undefined) => (d ? `${Number(d.seconds) + d.nanos / 1e9}s` : "default");

/** A health check in a few words: "http GET /healthz 200, port 0, every 5s, timeout 3s, rise 2, fall 3". */
function checkText(hc: HealthCheck | undefined): string {
  if (!hc || !hc.kind.case) return "none";
  const k = hc.kind;
  const what =
    k.case === "http"
      ? `${k.value.tls ? "https" : "http"} GET ${k.value.path} ${k.value.expectedStatus || "2xx"}${k.value.hostHeader ? ` host ${k.value.hostHeader}` : ""}${k.value.bodyRegex ? ` body ~ ${k.value.bodyRegex}` : ""}`
      : k.case === "dns"
        ? `dns ${k.value.queryType} ${k.value.queryName}`
        : k.case === "exec"
          ? `exec ${k.value.argv.join(" ")}`
          : "tcp";
  return `${what} (port ${hc.port || "of the real server"}, every ${secs(hc.interval)}, timeout ${secs(hc.timeout)}, rise ${hc.rise || "default"}, fall ${hc.fall || "default"})`;
}

/**
 * What the Director's agent does around the IPVS service (not IPVS state itself): its checks of the
 * real servers, what it does to a failing one, and the sorry server it adds when none is left.
 */
function checkFields(s: IpvsService): Fields {
  return [
    ["check", checkText(s.healthCheck)],
    ["on failure", s.failureAction === FailureAction.REMOVE ? "remove" : "quiesce"],
    ["sorry server", s.sorryServer ? `${hostPort(s.sorryServer.address, s.sorryServer.port)} ${FWD[s.sorryServer.forwardMethod] ?? "?"}` : "none"],
  ];
}

const timeoutFields = (t: IpvsTimeouts | undefined): Fields => [
  ["tcp", String(t?.tcpSeconds ?? 0)],
  ["tcpfin", String(t?.tcpFinSeconds ?? 0)],
  ["udp", String(t?.udpSeconds ?? 0)],
];

function destFields(d: IpvsDestination): Fields {
  return [
    ["forward", FWD[d.forwardMethod] ?? "?"],
    ["weight", String(d.weight)],
    ["upper", String(d.upperThreshold)],
    ["lower", String(d.lowerThreshold)],
    ["tunnel", d.tunnel ? `${d.tunnel.type}/${d.tunnel.port}` : "none"],
  ];
}

/** "weight 1", "weight 0" for the fields that differ; undefined when none does. */
function fieldChange(a: Fields, b: Fields): { before: string; after: string } | undefined {
  const before: string[] = [];
  const after: string[] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i]![1] !== b[i]![1]) {
      before.push(`${a[i]![0]} ${a[i]![1]}`);
      after.push(`${b[i]![0]} ${b[i]![1]}`);
    }
  }
  return before.length ? { before: before.join(", "), after: after.join(", ") } : undefined;
}

function all(f: Fields): string {
  return f.map(([k, v]) => `${k} ${v}`).join(", ");
}

function byKey<T>(items: readonly T[], key: (t: T) => string): Map<string, T> {
  return new Map(items.map((t) => [key(t), t]));
}

/** Keyed diff of two lists: ADD / REMOVE / CHANGE (when `fields` differ), in key order. */
function keyed<T>(
  out: PlanDiff[],
  kind: PlanKind,
  a: readonly T[],
  b: readonly T[],
  key: (t: T) => string,
  fields: (t: T) => Fields,
  extra: (t: T) => Partial<PlanDiff> = () => ({}),
  nested?: (x: T, y: T | undefined, removed: boolean) => void,
): void {
  const am = byKey(a, key);
  const bm = byKey(b, key);
  const keys = [...new Set([...am.keys(), ...bm.keys()])].sort();
  for (const k of keys) {
    const x = am.get(k);
    const y = bm.get(k);
    if (x && !y) {
      out.push({ kind, action: "REMOVE", object: k, before: all(fields(x)), after: "", ...extra(x) });
      nested?.(x, undefined, true);
    } else if (!x && y) {
      out.push({ kind, action: "ADD", object: k, before: "", after: all(fields(y)), ...extra(y) });
      nested?.(y, undefined, false);
    } else if (x && y) {
      const c = fieldChange(fields(x), fields(y));
      if (c) out.push({ kind, action: "CHANGE", object: k, ...c, ...extra(y) });
      nested?.(x, y, false);
    }
  }
}

const vipKey = (v: VipAddress) => `${v.address}/${v.prefixLength} dev ${v.interface}`;
const markKey = (r: FwmarkRule) => `mark ${r.mark}`;
const markFields = (r: FwmarkRule): Fields => [
  ["match", r.matches.map((m) => `${PROTO[m.protocol] ?? "any"} ${m.destinations.join(",")} ${m.ports.map((p) => (p.start === p.end ? `${p.start}` : `${p.start}-${p.end}`)).join(",")}`.trim()).join("; ")],
];

/** Per-object kernel changes from one host's desired state to another (either may be empty). */
export function diffDesired(before: HostDesiredState | undefined, after: HostDesiredState | undefined): PlanDiff[] {
  const out: PlanDiff[] = [];
  const sa = before?.director?.services ?? [];
  const sb = after?.director?.services ?? [];
  keyed(out, "ipvs-service", sa, sb, serviceKey, serviceFields, (s) => ({ virtualService: s.virtualService }), (x, y, removed) => {
    // Destinations of an added or removed service are listed too (ipvsadm -a / implicit with -D).
    const da = y ? x.destinations : removed ? x.destinations : [];
    const db = y ? y.destinations : removed ? [] : x.destinations;
    const sk = serviceKey(x);
    keyed(out, "ipvs-destination", da, db, (d) => `${sk} -> ${destKey(d)}`, destFields, () => ({ virtualService: (y ?? x).virtualService }));
  });
  // Health checks only where a service has (or had) one, or a sorry server.
  const checked = (l: readonly IpvsService[]) => l.filter((s) => s.healthCheck?.kind.case || s.sorryServer);
  keyed(out, "health-check", checked(sa), checked(sb), serviceKey, checkFields, (s) => ({ virtualService: s.virtualService }));
  // ipvsadm --set (0 = leave the kernel's value); one object per Director.
  const ta = before?.director ? [before.director.timeouts] : [];
  const tb = after?.director ? [after.director.timeouts] : [];
  keyed(out, "ipvs-timeouts", ta.filter((t) => timeoutFields(t).some(([, v]) => v !== "0")), tb.filter((t) => timeoutFields(t).some(([, v]) => v !== "0")), () => "timeouts", timeoutFields);
  keyed(out, "address", [...(before?.director?.addresses ?? []), ...(before?.realServer?.addresses ?? [])], [...(after?.director?.addresses ?? []), ...(after?.realServer?.addresses ?? [])], vipKey, () => []);
  keyed(out, "fwmark-rule", before?.director?.fwmarkRules ?? [], after?.director?.fwmarkRules ?? [], markKey, markFields);
  keyed(out, "tunnel", before?.realServer?.tunnels ?? [], after?.realServer?.tunnels ?? [], (t) => t.name, (t) => [["type", String(t.type)]]);
  // GUE receive ports (`ip fou add port <p> gue`) a TUN/GUE real server holds.
  keyed(out, "fou-port", before?.realServer?.fouPorts ?? [], after?.realServer?.fouPorts ?? [], (f) => `${f.addressFamily === AddressFamily.IPV6 ? "ipv6" : "ipv4"} udp/${f.port} gue`, () => []);
  keyed(out, "nat-return-path", before?.realServer?.natReturnPaths ?? [], after?.realServer?.natReturnPaths ?? [], (n) => n.virtualService, (n) => [["via", n.directorAddresses.join(",")]]);
  keyed(out, "sysctl", before?.sysctls ?? [], after?.sysctls ?? [], (s: Sysctl) => s.key, (s) => [["", s.value]]);
  for (const d of out) {
    // Sysctl values read better bare: "1 → 0".
    if (d.kind === "sysctl") {
      d.before = d.before.trim();
      d.after = d.after.trim();
    }
  }
  return out;
}

/**
 * Warnings about a change: what the kernel diff alone does not make obvious. `diffs` are the
 * per-host diffs of diffDesired.
 */
export function warnings(
  before: SiteTopology | undefined,
  after: SiteTopology | undefined,
  diffs: ReadonlyMap<string, PlanDiff[]>,
  health?: ReadonlyMap<string, readonly RealServerHealth[]>,
): string[] {
  const out = new Set<string>();
  const live = (t: SiteTopology | undefined, vs: string) => (t?.realServers ?? []).filter((rs) => rs.name.startsWith(`${vs}/realServers/`) && (rs.weight ?? 1) > 0).map((rs) => rs.name);
  for (const vs of after?.virtualServices ?? []) {
    const was = live(before, vs.name);
    const now = live(after, vs.name);
    if (was.length > 0 && now.length === 0) out.add(`removes the last real server of ${vs.name} (no real server with weight > 0 left)`);
    else if (health) {
      const w = healthWarning(vs.name, was, now, health);
      if (w) out.add(w);
    }
  }
  for (const vs of before?.virtualServices ?? []) {
    if (!(after?.virtualServices ?? []).some((v) => v.name === vs.name)) out.add(`removes virtual service ${vs.name}`);
  }
  for (const items of diffs.values()) {
    for (const d of items) {
      if (d.kind === "ipvs-service" && d.action === "CHANGE" && d.before.includes("scheduler ")) {
        out.add(`changes scheduler of ${d.virtualService ?? d.object}: existing persistence templates are kept`);
      }
      if (d.kind === "ipvs-service" && d.action === "CHANGE" && /persistent|netmask/.test(d.before)) {
        out.add(`changes persistence of ${d.virtualService ?? d.object}: existing connections and templates keep their real server until they expire`);
      }
      if (d.kind === "ipvs-destination" && d.action === "CHANGE" && d.before.includes("forward ")) {
        out.add(`changes forward method of ${d.object}: the destination is re-added, established connections through it may break`);
      }
      if (d.kind === "ipvs-destination" && d.action === "ADD" && /forward (route|tunnel)/.test(d.after)) {
        const [svc, dst] = d.object.split(" -> ");
        const sp = svc?.split(":").pop();
        const dp = dst?.split(":").pop();
        if (sp && dp && !svc!.startsWith("FWM") && sp !== "0" && dp !== sp) out.add(`port remap impossible with DR/TUN: ${d.object}`);
      }
    }
  }
  return [...out];
}

/** Health of one real server as one Director checks it (status/health-store.ts, listRealServerHealth). */
export interface RealServerHealth {
  director: string;
  /** "unknown": the Director is OFFLINE or has not reported it; "not_checked": no check runs for it. */
  state: "healthy" | "unhealthy" | "unknown" | "not_checked";
}

type Overall = RealServerHealth["state"];

/** One word for a real server over its Directors: healthy if any Director sees it healthy; never healthy when nothing is known. */
function overall(entries: readonly RealServerHealth[] | undefined): Overall {
  const states = new Set((entries ?? []).map((e) => e.state));
  if (states.has("healthy")) return "healthy";
  if (states.size === 0 || states.has("unknown")) return "unknown";
  if (states.has("not_checked")) return "not_checked";
  return "unhealthy";
}

const SAY: Record<Overall, string> = { healthy: "healthy", unhealthy: "unhealthy", unknown: "health unknown", not_checked: "not checked" };

/**
 * When a change takes real servers out of a service (deleted or weight 0) and some stay: does it
 * take out the last one the Directors report healthy? Real servers with unknown health are never
 * counted healthy; when the answer depends on them, the warning says so.
 */
function healthWarning(vs: string, was: readonly string[], now: readonly string[], health: ReadonlyMap<string, readonly RealServerHealth[]>): string | undefined {
  const remaining = new Set(now);
  const gone = was.filter((n) => !remaining.has(n));
  if (gone.length === 0 || now.length === 0) return undefined;
  const state = (n: string) => overall(health.get(n));
  if (now.some((n) => state(n) === "healthy")) return undefined;
  const short = (n: string) => n.slice(n.lastIndexOf("/") + 1);
  const left = now.map((n) => `${short(n)} ${SAY[state(n)]}`).join(", ");
  // Some left with unknown health (or no check): they may be healthy — say we cannot tell.
  if (now.some((n) => state(n) === "unknown" || state(n) === "not_checked")) {
    return `health of the real servers left in ${vs} is not known (${left}): this may remove the last healthy one`;
  }
  if (gone.some((n) => state(n) === "healthy")) return `removes the last healthy real server of ${vs} (left: ${left})`;
  return undefined;
}
