// FleetService handlers: plain functions over an injected StatusStore (+ the ingest's change events
// for the streaming/waiting calls). Transport is bound elsewhere (lib/grpc).
import type { EventEmitter } from "node:events";
import type { FleetService } from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import { HostState, type DirectorStats, type HostStatus, type RealServerHealthStatus } from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import type { CallContext, ServiceImpl } from "../../../lib/grpc/server.js";
import { LvsfleetError, type FieldViolation } from "../domain/errors.js";
import type { StatusStore } from "./store.js";
import { virtualServiceName } from "./health-store.js";
import { drainRealServer, undrainRealServer, type DrainTopology } from "./drain.js";
import { writeMeta } from "../api/context.js";
import { requestContext } from "../api/topology-service.js";

const TOKEN = /^[A-Za-z0-9_-]{1,63}$/;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
const DEFAULT_ROLLOUT_TIMEOUT_MS = 60_000;
const MAX_ROLLOUT_TIMEOUT_MS = 3_600_000;

export interface FleetServiceDeps {
  store: StatusStore;
  /** "change" events after status writes (StatusIngest.events); the watchers also poll. */
  events?: EventEmitter;
  /** Re-check interval of WatchHostStatuses and WaitForRollout (ms). */
  pollMs?: number;
  /** The topology writes of DrainRealServer / UndrainRealServer (TopologyStore); without it they are UNIMPLEMENTED. */
  topology?: DrainTopology;
}

function checkToken(field: string, v: string, required: boolean, out: FieldViolation[]): void {
  if (!v) {
    if (required) out.push({ field, description: `${field} is required`, reason: "REQUIRED" });
    return;
  }
  if (!TOKEN.test(v)) out.push({ field, description: `${field} ${JSON.stringify(v)}: letters, digits, '-' or '_'`, reason: "INVALID_ID" });
}

function checkStates(states: readonly HostState[], out: FieldViolation[]): void {
  states.forEach((s, i) => {
    if (!(s in HostState) || s === HostState.UNSPECIFIED) out.push({ field: `states[${i}]`, description: `unknown host state ${s}`, reason: "INVALID_ENUM" });
  });
}

function encodeToken(site: string, host: string): string {
  return Buffer.from(JSON.stringify([site, host])).toString("base64url");
}

function decodeToken(token: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "string")) return v as [string, string];
  } catch {
    /* fall through */
  }
  throw LvsfleetError.invalid([{ field: "page_token", description: "not a page token of this list", reason: "INVALID_PAGE_TOKEN" }]);
}

/** Resolves after `ms`, on a change event, or on abort — whichever comes first. */
function nextTick(ms: number, events: EventEmitter | undefined, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      events?.off("change", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    events?.on("change", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

function fingerprint(s: HostStatus): string {
  return [s.state, s.desiredRevision, s.appliedRevision, s.seenRevision, s.phase, s.errors.length].join("|");
}

/** `vs` as an id ("web") or a full name ("sites/fra1/virtualServices/web"). */
function matchesVs(name: string, vs: string): boolean {
  return name === vs || name.endsWith(`/virtualServices/${vs}`);
}

/** The Directors' stats narrowed to one virtual service (Directors without it are left out). */
export function filterStats(ds: readonly DirectorStats[], vs: string): DirectorStats[] {
  if (!vs) return [...ds];
  return ds
    .map((d) => ({ ...d, services: d.services.filter((s) => matchesVs(s.virtualService, vs)) }))
    .filter((d) => d.services.length > 0);
}

function checkStatsRequest(req: { site: string; virtualService: string }): void {
  const v: FieldViolation[] = [];
  checkToken("site", req.site, true, v);
  if (req.virtualService && !/^[A-Za-z0-9_/.-]{1,253}$/.test(req.virtualService)) {
    v.push({ field: "virtual_service", description: `virtual_service ${JSON.stringify(req.virtualService)}: an id or sites/{site}/virtualServices/{id}`, reason: "INVALID_ID" });
  }
  if (v.length) throw LvsfleetError.invalid(v);
}

function healthKey(h: RealServerHealthStatus): string {
  return `${h.host}\n${h.realServer}`;
}

function healthFingerprint(h: RealServerHealthStatus): string {
  return [h.state, h.weight, h.lastResult, h.since?.seconds ?? 0n, h.since?.nanos ?? 0, h.hostState, h.address, h.port].join("|");
}

const statsTime = (d: DirectorStats) => `${d.time?.seconds ?? 0n}.${d.time?.nanos ?? 0}`;

export function fleetService(deps: FleetServiceDeps): ServiceImpl<typeof FleetService> {
  const { store, events } = deps;
  const pollMs = deps.pollMs ?? 500;
  return {
    async getHostStatus(req) {
      const v: FieldViolation[] = [];
      checkToken("site", req.site, true, v);
      checkToken("host", req.host, true, v);
      if (v.length) throw LvsfleetError.invalid(v);
      const status = await store.get(req.site, req.host);
      if (!status) throw LvsfleetError.notFound(`sites/${req.site}/hosts/${req.host}`);
      return { status };
    },

    async listHostStatuses(req) {
      const v: FieldViolation[] = [];
      checkToken("site", req.site, false, v);
      checkStates(req.states, v);
      if (req.pageSize < 0) v.push({ field: "page_size", description: "page_size must not be negative", reason: "NEGATIVE" });
      if (v.length) throw LvsfleetError.invalid(v);
      const size = Math.min(req.pageSize || DEFAULT_PAGE, MAX_PAGE);
      const after = req.pageToken ? decodeToken(req.pageToken) : (["", ""] as [string, string]);
      const rows = await store.list({ site: req.site || undefined, states: req.states }, after, size + 1);
      const page = rows.slice(0, size);
      const last = page[page.length - 1];
      return { statuses: page, nextPageToken: rows.length > size && last ? encodeToken(last.site, last.host) : "" };
    },

    async *watchHostStatuses(req, ctx: CallContext) {
      const v: FieldViolation[] = [];
      checkToken("site", req.site, false, v);
      checkStates(req.states, v);
      if (v.length) throw LvsfleetError.invalid(v);
      const sent = new Map<string, string>();
      const filter = { site: req.site || undefined };
      const wanted = (s: HostStatus) => req.states.length === 0 || req.states.includes(s.state);
      let initial = true;
      while (!ctx.signal.aborted) {
        const all = await store.list(filter, ["", ""], Number.MAX_SAFE_INTEGER);
        for (const s of all) {
          const key = `${s.site}.${s.host}`;
          const fp = fingerprint(s);
          const prev = sent.get(key);
          if (prev === fp) continue;
          // Sent when it matches the filter, or once more when it leaves it.
          if (wanted(s) || prev !== undefined) {
            yield { status: s, initial };
            if (wanted(s)) sent.set(key, fp);
            else sent.delete(key);
          }
        }
        initial = false;
        await nextTick(pollMs, events, ctx.signal);
      }
    },

    async getStats(req) {
      checkStatsRequest(req);
      return { directors: filterStats(await store.stats(req.site), req.virtualService) };
    },

    async *watchStats(req, ctx: CallContext) {
      checkStatsRequest(req);
      const sent = new Map<string, string>();
      let initial = true;
      while (!ctx.signal.aborted) {
        const all = await store.stats(req.site);
        for (const d of all) {
          const t = statsTime(d);
          if (sent.get(d.host) === t) continue;
          sent.set(d.host, t);
          const [one] = filterStats([d], req.virtualService);
          if (one) yield { director: one, initial };
        }
        initial = false;
        await nextTick(pollMs, events, ctx.signal);
      }
    },

    async listRealServerHealth(req) {
      checkStatsRequest(req);
      return { realServers: await store.health(req.site, req.virtualService) };
    },

    async *watchRealServerHealth(req, ctx: CallContext) {
      checkStatsRequest(req);
      const sent = new Map<string, RealServerHealthStatus>();
      const prints = new Map<string, string>();
      let initial = true;
      while (!ctx.signal.aborted) {
        const all = await store.health(req.site, req.virtualService);
        const now = new Set<string>();
        for (const h of all) {
          const k = healthKey(h);
          now.add(k);
          const fp = healthFingerprint(h);
          if (prints.get(k) === fp) continue;
          prints.set(k, fp);
          sent.set(k, h);
          yield { health: h, initial, removed: false };
        }
        for (const [k, h] of sent) {
          if (now.has(k)) continue;
          sent.delete(k);
          prints.delete(k);
          yield { health: h, initial: false, removed: true };
        }
        initial = false;
        // OFFLINE depends on the clock: the poll (not only change events) notices it.
        await nextTick(pollMs, events, ctx.signal);
      }
    },

    async listHealthTransitions(req) {
      checkStatsRequest(req);
      const v: FieldViolation[] = [];
      if (req.pageSize < 0) v.push({ field: "page_size", description: "page_size must not be negative", reason: "NEGATIVE" });
      let realServer = req.realServer;
      if (realServer && !realServer.startsWith("sites/")) {
        if (!TOKEN.test(realServer)) v.push({ field: "real_server", description: `real_server ${JSON.stringify(realServer)}: an id or a full name`, reason: "INVALID_ID" });
        else if (!req.virtualService) v.push({ field: "real_server", description: "a real server id needs virtual_service (or give the full name)", reason: "REQUIRED" });
        else realServer = `${virtualServiceName(req.site, req.virtualService)}/realServers/${realServer}`;
      }
      if (v.length) throw LvsfleetError.invalid(v);
      const limit = Math.min(req.pageSize || DEFAULT_PAGE, MAX_PAGE);
      return { transitions: await store.healthTransitions(req.site, { virtualService: req.virtualService, realServer, limit }) };
    },

    async *drainRealServer(req, ctx: CallContext) {
      const topology = deps.topology;
      if (!topology) throw new LvsfleetError("UNIMPLEMENTED", "drain needs the topology store");
      const rc = requestContext(ctx);
      yield* drainRealServer(req, {
        store,
        topology,
        meta: (op) => writeMeta(rc, op),
        signal: ctx.signal,
        tick: (ms) => nextTick(ms, events, ctx.signal),
        pollMs,
      });
    },

    async undrainRealServer(req, ctx: CallContext) {
      const topology = deps.topology;
      if (!topology) throw new LvsfleetError("UNIMPLEMENTED", "undrain needs the topology store");
      return undrainRealServer(req.name, topology, writeMeta(requestContext(ctx), "UndrainRealServer"));
    },

    async waitForRollout(req, ctx: CallContext) {
      const v: FieldViolation[] = [];
      if (req.revision <= 0n) v.push({ field: "revision", description: "revision must be positive (the revision a write returned)", reason: "REQUIRED" });
      checkToken("site", req.site, true, v);
      req.hosts.forEach((h, i) => checkToken(`hosts[${i}]`, h, true, v));
      const timeoutMs = req.timeout ? Number(req.timeout.seconds) * 1000 + Math.floor(req.timeout.nanos / 1e6) : DEFAULT_ROLLOUT_TIMEOUT_MS;
      if (timeoutMs < 0 || timeoutMs > MAX_ROLLOUT_TIMEOUT_MS) v.push({ field: "timeout", description: `timeout must be within 0..${MAX_ROLLOUT_TIMEOUT_MS / 1000} s`, reason: "OUT_OF_RANGE" });
      if (v.length) throw LvsfleetError.invalid(v);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await store.rollout(req.revision, req.site, req.hosts);
        if (r) {
          const missing = req.hosts.map((h, i) => [h, i] as const).filter(([h]) => !r.hosts.includes(h));
          if (missing.length > 0) {
            throw LvsfleetError.invalid(
              missing.map(([h, i]) => ({ field: `hosts[${i}]`, description: `${h} is not a host of site ${req.site}`, reason: "UNKNOWN_HOST" })),
            );
          }
          if (r.pending.length === 0) return { complete: true, totalHosts: r.hosts.length, doneHosts: r.hosts.length, pending: [] };
        }
        if (Date.now() >= deadline || ctx.signal.aborted) {
          const pending = r?.pending ?? [];
          const total = r?.hosts.length ?? 0;
          return { complete: false, totalHosts: total, doneHosts: total - pending.length, pending };
        }
        await nextTick(Math.min(pollMs, Math.max(1, deadline - Date.now())), events, ctx.signal);
      }
    },
  };
}
