// Drain (issue 5): what an LVS operator does by hand — weight 0 on every Director carrying the real
// server (RealServer.draining; compile emits weight 0 and the configured weight stays in the store),
// watch ActiveConn (ipvsadm -Ln) fall to 0 on each, then remove it.
//
// "Zero" is only believed from counters a Director read after it applied the drain: for each Director
// we note the report time (agent clock) of the first status report that shows the drain applied, and
// only counters read later (host_counters.report_time, same clock) count. Counters read before the
// apply still describe a kernel that gave the real server new connections.
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import { RealServerSchema, type RealServer } from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  DirectorDrainSchema,
  DirectorStatsSchema,
  DrainPhase,
  DrainRealServerResponseSchema,
  type DirectorDrain,
  type DrainRealServerRequest,
  type DrainRealServerResponse,
} from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { LvsfleetError, type FieldViolation } from "../domain/errors.js";
import { parseRealServerName } from "../domain/names.js";
import type { Read, WriteMeta, Written, DeleteOptions, UpdateOptions } from "../store/index.js";
import type { StatusStore } from "./store.js";

export const DEFAULT_DRAIN_DEADLINE_MS = 5 * 60_000;
export const MAX_DRAIN_DEADLINE_MS = 24 * 3600_000;

/** The topology writes a drain needs (TopologyStore.realServers). */
export interface DrainTopology {
  realServers: {
    get(site: string, vsId: string, rsId: string): Promise<Read<RealServer>>;
    update(meta: WriteMeta, site: string, vsId: string, rsId: string, patch: RealServer, opts: UpdateOptions): Promise<Written<RealServer>>;
    delete(meta: WriteMeta, site: string, vsId: string, rsId: string, opts?: DeleteOptions): Promise<{ revision: bigint }>;
  };
}

export interface DrainDeps {
  store: StatusStore;
  topology: DrainTopology;
  /** Audit metadata of the drain's writes (actor and reason of the call). */
  meta(operation: string): WriteMeta;
  signal: AbortSignal;
  /** Resolves after `ms` or earlier on a status change. */
  tick(ms: number): Promise<void>;
  pollMs: number;
}

type Progress = MessageInitShape<typeof DrainRealServerResponseSchema>;

interface DirectorRow {
  host: string;
  report_time: Date | null;
  counters_time: Date | null;
  counters: Buffer | null;
}

/** Per Director of the virtual service: its latest status report time and latest counters. */
async function directorRows(pool: pg.Pool, site: string, vsId: string): Promise<DirectorRow[]> {
  const r = await pool.query<DirectorRow>(
    `SELECT d.host_id AS host, s.report_time, c.report_time AS counters_time, c.counters
       FROM virtual_service_directors d
       LEFT JOIN host_status s ON s.site = d.site_id AND s.host = d.host_id
       LEFT JOIN host_counters c ON c.site = d.site_id AND c.host = d.host_id
      WHERE d.site_id = $1 AND d.virtual_service_id = $2
      ORDER BY d.host_id`,
    [site, vsId],
  );
  return r.rows;
}

/** ActiveConn / InActConn of `rsName` in one Director's counters (0 when it is not a destination). */
function connections(counters: Buffer, rsName: string): { active: number; inactive: number } {
  const ds = fromBinary(DirectorStatsSchema, counters);
  let active = 0;
  let inactive = 0;
  for (const s of ds.services) {
    for (const d of s.destinations) {
      if (d.realServer !== rsName) continue;
      active += d.activeConnections;
      inactive += d.inactiveConnections;
    }
  }
  return { active, inactive };
}

export function checkDrainRequest(req: DrainRealServerRequest): { site: string; vsId: string; rsId: string; deadlineMs: number } {
  const v: FieldViolation[] = [];
  let ids = { site: "", virtualService: "", realServer: "" };
  try {
    ids = parseRealServerName(req.name, "name");
  } catch (err) {
    if (err instanceof LvsfleetError) v.push(...(err.details.fieldViolations ?? []));
    else throw err;
  }
  const deadlineMs = req.deadline ? Number(req.deadline.seconds) * 1000 + Math.floor(req.deadline.nanos / 1e6) : DEFAULT_DRAIN_DEADLINE_MS;
  if (req.deadline && (!(deadlineMs > 0) || deadlineMs > MAX_DRAIN_DEADLINE_MS)) {
    v.push({ field: "deadline", description: `deadline must be within (0, ${MAX_DRAIN_DEADLINE_MS / 3600_000} h]`, reason: "OUT_OF_RANGE" });
  }
  if (v.length) throw LvsfleetError.invalid(v);
  return { site: ids.site, vsId: ids.virtualService, rsId: ids.realServer, deadlineMs };
}

const elapsed = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });

/** The DrainRealServer stream. */
export async function* drainRealServer(req: DrainRealServerRequest, deps: DrainDeps): AsyncGenerator<Progress> {
  const { site, vsId, rsId, deadlineMs } = checkDrainRequest(req);
  const started = Date.now();
  const deadline = started + deadlineMs;
  const { topology, store } = deps;

  let rs = (await topology.realServers.get(site, vsId, rsId)).resource;
  if (!rs.draining) {
    rs = (await topology.realServers.update(deps.meta("DrainRealServer"), site, vsId, rsId, create(RealServerSchema, { draining: true }), { paths: ["draining"] })).resource;
  }
  let revision = rs.revision;
  yield { phase: DrainPhase.DRAINING, realServer: rs, revision, elapsed: elapsed(Date.now() - started) };
  if (!req.wait) return;

  // host → report time (agent clock) of the first report seen with the drain applied.
  let appliedAt = new Map<string, Date>();
  let lastPrint = "";
  let lastSent = 0;
  for (;;) {
    const rollout = await store.rollout(revision, site, []);
    const rows = await directorRows(store.pool, site, vsId);
    const directors: DirectorDrain[] = [];
    let active = 0;
    let zero = true;
    for (const row of rows) {
      const applied = rollout !== undefined && rollout.hosts.includes(row.host) && !rollout.pending.some((p) => p.host === row.host);
      if (applied && !appliedAt.has(row.host) && row.report_time) appliedAt.set(row.host, row.report_time);
      const since = appliedAt.get(row.host);
      const fresh = since !== undefined && row.counters_time !== null && row.counters !== null && row.counters_time > since;
      const c = fresh ? connections(row.counters!, rs.name) : { active: 0, inactive: 0 };
      if (!fresh || c.active > 0) zero = false;
      active += c.active;
      directors.push(
        create(DirectorDrainSchema, {
          host: row.host,
          applied: since !== undefined,
          countersFresh: fresh,
          activeConnections: c.active,
          inactiveConnections: c.inactive,
          countersTime: fresh ? timestampFromDate(row.counters_time!) : undefined,
        }),
      );
    }
    const base = { realServer: rs, revision, directors, activeConnections: active, zero };
    if (zero) {
      // Re-read under the same name: never remove a real server someone undrained meanwhile, and
      // wait again when it was written since (its new revision must be applied first).
      const now = (await topology.realServers.get(site, vsId, rsId)).resource;
      if (!now.draining) {
        throw LvsfleetError.failedPrecondition(`${rs.name} is no longer draining (undrained while waiting); not removed`, [
          { type: "DRAIN", subject: rs.name, description: "undrained while waiting" },
        ]);
      }
      if (now.revision !== revision) {
        rs = now;
        revision = now.revision;
        appliedAt = new Map();
        continue;
      }
      if (req.keep) {
        yield { ...base, phase: DrainPhase.DRAINED, elapsed: elapsed(Date.now() - started) };
        return;
      }
      const del = await topology.realServers.delete(deps.meta("DeleteRealServer"), site, vsId, rsId, { etag: now.etag });
      yield { ...base, phase: DrainPhase.REMOVED, deleteRevision: del.revision, elapsed: elapsed(Date.now() - started) };
      return;
    }
    if (Date.now() >= deadline) {
      yield { ...base, phase: DrainPhase.DEADLINE_EXCEEDED, elapsed: elapsed(Date.now() - started) };
      return;
    }
    if (deps.signal.aborted) return;
    // A message on every change, and at least once a second so the elapsed time moves.
    const print = JSON.stringify(directors.map((d) => [d.host, d.applied, d.countersFresh, d.activeConnections, d.inactiveConnections]));
    if (print !== lastPrint || Date.now() - lastSent >= 1000) {
      lastPrint = print;
      lastSent = Date.now();
      yield { ...base, phase: DrainPhase.WAITING, elapsed: elapsed(Date.now() - started) };
    }
    await deps.tick(Math.min(deps.pollMs, Math.max(1, deadline - Date.now())));
  }
}

/** UndrainRealServer: clears draining (one write) or, when not draining, writes nothing. */
export async function undrainRealServer(name: string, topology: DrainTopology, meta: WriteMeta): Promise<{ realServer: RealServer; revision: bigint }> {
  const { site, virtualService, realServer } = parseRealServerName(name, "name");
  const rs = (await topology.realServers.get(site, virtualService, realServer)).resource;
  if (!rs.draining) return { realServer: rs, revision: 0n };
  const w = await topology.realServers.update(meta, site, virtualService, realServer, create(RealServerSchema, { draining: false }), { paths: ["draining"] });
  return { realServer: w.resource, revision: w.revision };
}

export type { DrainRealServerResponse };
