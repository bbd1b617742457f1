// Real server health in pg (real_server_health, real_server_health_transitions): what each Director's
// checks say about the real servers it carries (AgentReport.health), joined with the topology so a
// real server nobody reported on still shows up (UNKNOWN / NOT_CHECKED), never as healthy.
//
// Ingest: a report with health_reported = true replaces its Director's set (an entry it no longer
// has is deleted and recorded as a "gone" transition); a report without health leaves it alone.
// OFFLINE is derived when read (like HostState): a Director that stopped reporting reads UNKNOWN.
import type pg from "pg";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import {
  HealthState,
  HealthTransitionSchema,
  HostState,
  RealServerHealthStatusSchema,
  type HealthTransition,
  type RealServerHealthStatus,
} from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import { MISSED_HEARTBEATS } from "./state.js";

/** A pool or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, "query"> | Pick<pg.PoolClient, "query">;

/** Transitions older than this are pruned on ingest. */
export const TRANSITIONS_KEPT_DAYS = 7;

interface StoredRow {
  host: string;
  virtual_service: string;
  real_server: string;
  address: string;
  port: number;
  healthy: boolean;
  weight: string;
  since: Date;
  last_result: string;
}

/**
 * Stores the health sets of the reports that carry one (health_reported). Older reports of the same
 * agent never overwrite newer ones (host_status.health_time). One transaction; host_status rows of the
 * reporting hosts are locked so concurrent ingesters (several control-plane processes) serialise.
 */
export async function ingestHealth(pool: pg.Pool, reports: readonly AgentReport[], now = new Date()): Promise<number> {
  const withHealth = reports.filter((r) => r.healthReported);
  if (withHealth.length === 0) return 0;
  const c = await pool.connect();
  let transitions = 0;
  try {
    await c.query("BEGIN");
    for (const r of withHealth) {
      const time = r.time ? timestampDate(r.time) : now;
      const hs = await c.query<{ agent_id: string; health_time: Date | null }>(
        `SELECT agent_id, health_time FROM host_status WHERE site = $1 AND host = $2 FOR UPDATE`,
        [r.site, r.host],
      );
      const h = hs.rows[0];
      // host_status is written first (StatusStore.ingest); it refused an older report of this agent.
      if (!h || (h.agent_id === r.agentId && h.health_time && h.health_time > time)) continue;
      const old = await c.query<StoredRow>(
        `SELECT host, virtual_service, real_server, address, port, healthy, weight::text AS weight, since, last_result FROM real_server_health WHERE site = $1 AND host = $2`,
        [r.site, r.host],
      );
      const before = new Map(old.rows.map((x) => [`${x.virtual_service}\n${x.real_server}`, x]));
      const seen = new Set<string>();
      const cols = { vs: [] as string[], rs: [] as string[], addr: [] as string[], port: [] as number[], healthy: [] as boolean[], weight: [] as number[], since: [] as Date[], result: [] as string[] };
      const tr = { vs: [] as string[], rs: [] as string[], healthy: [] as Array<boolean | null>, time: [] as Date[], result: [] as string[] };
      for (const e of r.health) {
        const key = `${e.virtualService}\n${e.realServer}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const prev = before.get(key);
        const changed = !prev || prev.healthy !== e.healthy;
        // The agent's own transition time when it sends one; else keep ours, or now on a change.
        const since = e.since ? timestampDate(e.since) : changed ? time : prev.since;
        // Heartbeats repeat the same set: write only what changed (the Director's report time is
        // host_status.health_time).
        if (
          prev && !changed && prev.since.getTime() === since.getTime() && prev.weight === String(e.weight) &&
          prev.last_result === e.lastResult && prev.address === e.address && prev.port === e.port
        ) continue;
        cols.vs.push(e.virtualService);
        cols.rs.push(e.realServer);
        cols.addr.push(e.address);
        cols.port.push(e.port);
        cols.healthy.push(e.healthy);
        cols.weight.push(e.weight);
        cols.since.push(since);
        cols.result.push(e.lastResult);
        if (changed) {
          tr.vs.push(e.virtualService);
          tr.rs.push(e.realServer);
          tr.healthy.push(e.healthy);
          tr.time.push(since);
          tr.result.push(e.lastResult);
        }
      }
      const gone = old.rows.filter((x) => !seen.has(`${x.virtual_service}\n${x.real_server}`));
      for (const g of gone) {
        tr.vs.push(g.virtual_service);
        tr.rs.push(g.real_server);
        tr.healthy.push(null);
        tr.time.push(time);
        tr.result.push("");
      }
      if (gone.length > 0) {
        await c.query(
          `DELETE FROM real_server_health WHERE site = $1 AND host = $2 AND (virtual_service, real_server) IN
             (SELECT * FROM unnest($3::text[], $4::text[]))`,
          [r.site, r.host, gone.map((g) => g.virtual_service), gone.map((g) => g.real_server)],
        );
      }
      if (cols.vs.length > 0) {
        await c.query(
          `INSERT INTO real_server_health (site, host, virtual_service, real_server, address, port, healthy, weight, since, last_result, report_time)
           SELECT $1, $2, vs, rs, addr, port, healthy, weight, since, result, $11
             FROM unnest($3::text[], $4::text[], $5::text[], $6::int[], $7::bool[], $8::bigint[], $9::timestamptz[], $10::text[])
               AS x(vs, rs, addr, port, healthy, weight, since, result)
           ON CONFLICT (site, host, virtual_service, real_server) DO UPDATE SET
             address = EXCLUDED.address, port = EXCLUDED.port, healthy = EXCLUDED.healthy, weight = EXCLUDED.weight,
             since = EXCLUDED.since, last_result = EXCLUDED.last_result, report_time = EXCLUDED.report_time`,
          [r.site, r.host, cols.vs, cols.rs, cols.addr, cols.port, cols.healthy, cols.weight, cols.since, cols.result, time],
        );
      }
      if (tr.vs.length > 0) {
        await c.query(
          `INSERT INTO real_server_health_transitions (site, host, virtual_service, real_server, healthy, time, last_result)
           SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bool[], $6::timestamptz[], $7::text[])`,
          [r.site, r.host, tr.vs, tr.rs, tr.healthy, tr.time, tr.result],
        );
        transitions += tr.vs.length;
      }
      await c.query(`UPDATE host_status SET health_time = $3 WHERE site = $1 AND host = $2`, [r.site, r.host, time]);
    }
    if (transitions > 0) {
      await c.query(`DELETE FROM real_server_health_transitions WHERE time < now() - make_interval(days => $1)`, [TRANSITIONS_KEPT_DAYS]);
    }
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
  return transitions;
}

interface JoinedRow {
  site: string;
  host: string;
  virtual_service: string;
  real_server: string;
  address: string;
  port: number;
  rs_revision: string | null;
  ipvs_service: string | null;
  healthy: boolean | null;
  weight: string | null;
  since: Date | null;
  last_result: string | null;
  report_time: Date | null;
  last_seen: Date | null;
  heartbeat_seconds: number | null;
  health_time: Date | null;
  applied_revision: string | null;
}

// (real server, Director carrying its virtual service) from the topology, FULL JOIN what Directors
// reported (a real server deleted from the topology stays while a Director still reports it).
const HEALTH_SQL = `
  WITH topo AS (
    SELECT rs.site_id AS site, d.host_id AS host,
           'sites/' || rs.site_id || '/virtualServices/' || rs.virtual_service_id AS virtual_service,
           'sites/' || rs.site_id || '/virtualServices/' || rs.virtual_service_id || '/realServers/' || rs.real_server_id AS real_server,
           host(rs.address) AS address, CASE WHEN rs.port = 0 THEN vs.port ELSE rs.port END AS port, rs.revision,
           CASE WHEN vs.fwmark IS NOT NULL
                THEN 'fwmark ' || CASE vs.address_family WHEN 2 THEN 'ipv6' ELSE 'ipv4' END || ' ' || vs.fwmark
                ELSE CASE vs.protocol WHEN 1 THEN 'tcp' WHEN 2 THEN 'udp' WHEN 3 THEN 'sctp' ELSE '?' END || ' ' ||
                     CASE WHEN family(vs.address) = 6 THEN '[' || host(vs.address) || ']' ELSE host(vs.address) END || ':' || vs.port
           END AS ipvs_service
      FROM real_servers rs
      JOIN virtual_services vs USING (site_id, virtual_service_id)
      JOIN virtual_service_directors d USING (site_id, virtual_service_id)
     WHERE rs.site_id = $1
  ), reported AS (SELECT * FROM real_server_health WHERE site = $1)
  SELECT coalesce(t.site, h.site) AS site, coalesce(t.host, h.host) AS host,
         coalesce(t.virtual_service, h.virtual_service) AS virtual_service, coalesce(t.real_server, h.real_server) AS real_server,
         coalesce(h.address, t.address) AS address, coalesce(h.port, t.port) AS port, t.revision::text AS rs_revision, t.ipvs_service,
         h.healthy, h.weight::text AS weight, h.since, h.last_result,
         CASE WHEN h.real_server IS NOT NULL THEN greatest(h.report_time, s.health_time) END AS report_time,
         s.last_seen, s.heartbeat_seconds, s.health_time, s.applied_revision::text AS applied_revision
    FROM topo t
    FULL JOIN reported h ON h.host = t.host AND h.real_server = t.real_server AND h.virtual_service = t.virtual_service
    LEFT JOIN host_status s ON s.site = $1 AND s.host = coalesce(t.host, h.host)
   WHERE ($2 = '' OR coalesce(t.virtual_service, h.virtual_service) = $2)
   ORDER BY 3, 4, 2`;

function offline(r: Pick<JoinedRow, "last_seen" | "heartbeat_seconds">, now: Date): boolean {
  if (!r.last_seen) return true;
  return now.getTime() - r.last_seen.getTime() > MISSED_HEARTBEATS * Math.max(1, r.heartbeat_seconds ?? 0) * 1000;
}

function stateOf(r: JoinedRow, now: Date): { state: HealthState; lastKnown: HealthState; offline: boolean } {
  const reported = r.healthy === null ? HealthState.UNSPECIFIED : r.healthy ? HealthState.HEALTHY : HealthState.UNHEALTHY;
  const off = offline(r, now);
  if (off) return { state: HealthState.UNKNOWN, lastKnown: reported, offline: true };
  if (reported !== HealthState.UNSPECIFIED) return { state: reported, lastKnown: reported, offline: false };
  // No entry: the Director reports health but has none for it — unless it has not applied the
  // revision that added the real server yet (then we cannot tell).
  const applied = r.applied_revision === null ? 0n : BigInt(r.applied_revision);
  const rsRevision = r.rs_revision === null ? 0n : BigInt(r.rs_revision);
  if (r.health_time && applied >= rsRevision) return { state: HealthState.NOT_CHECKED, lastKnown: HealthState.UNSPECIFIED, offline: false };
  return { state: HealthState.UNKNOWN, lastKnown: HealthState.UNSPECIFIED, offline: false };
}

/** `vs` as an id ("web") or full name → the full name in `site` ("" stays ""). */
export function virtualServiceName(site: string, vs: string): string {
  if (!vs || vs.startsWith("sites/")) return vs;
  return `sites/${site}/virtualServices/${vs}`;
}

/**
 * Every (real server, Director) health entry of a site, optionally of one virtual service (id or
 * full name), as the API serves them. `hostStates` (host → HostState) fills host_state when given.
 */
export async function listRealServerHealthStatus(db: Queryable, site: string, virtualService = "", now = new Date(), hostStates?: Map<string, HostState>): Promise<RealServerHealthStatus[]> {
  const r = await db.query<JoinedRow>(HEALTH_SQL, [site, virtualServiceName(site, virtualService)]);
  return r.rows.map((row) => {
    const s = stateOf(row, now);
    return create(RealServerHealthStatusSchema, {
      realServer: row.real_server,
      virtualService: row.virtual_service,
      site: row.site,
      host: row.host,
      address: row.address,
      port: row.port,
      state: s.state,
      weight: row.weight === null ? 0 : Number(row.weight),
      since: row.since ? timestampFromDate(row.since) : undefined,
      lastResult: row.last_result ?? "",
      reportTime: row.report_time ? timestampFromDate(row.report_time) : undefined,
      hostState: hostStates?.get(row.host) ?? (s.offline ? HostState.OFFLINE : HostState.UNSPECIFIED),
      lastKnownState: s.state === HealthState.UNKNOWN ? s.lastKnown : s.state,
      ipvsService: row.ipvs_service ?? "",
    });
  });
}

export type HealthWord = "healthy" | "unhealthy" | "unknown" | "not_checked";

export interface DirectorHealth {
  /** The Director (host id). */
  director: string;
  state: HealthWord;
  /** Weight the Director has set now (0 when quiesced; 0 when unknown). */
  weight: number;
  since?: Date;
  lastResult: string;
}

const WORD: Record<HealthState, HealthWord> = {
  [HealthState.UNSPECIFIED]: "unknown",
  [HealthState.HEALTHY]: "healthy",
  [HealthState.UNHEALTHY]: "unhealthy",
  [HealthState.UNKNOWN]: "unknown",
  [HealthState.NOT_CHECKED]: "not_checked",
};

/**
 * The plain store function other control-plane code calls (e.g. a plan warning "removes the last
 * healthy real server"): per real server resource name
 * (`sites/{site}/virtualServices/{vs}/realServers/{rs}`), its health on each Director carrying it.
 * "unknown" = Director OFFLINE or no report yet (never counted as healthy); "not_checked" = the
 * Director runs no check for it (IPVS uses its configured weight). Pass a transaction's client as `db`
 * to read inside it.
 */
export async function listRealServerHealth(db: Queryable, siteId: string, opts: { virtualService?: string; now?: Date } = {}): Promise<Map<string, DirectorHealth[]>> {
  const out = new Map<string, DirectorHealth[]>();
  for (const s of await listRealServerHealthStatus(db, siteId, opts.virtualService ?? "", opts.now ?? new Date())) {
    const list = out.get(s.realServer) ?? [];
    list.push({ director: s.host, state: WORD[s.state], weight: s.weight, since: s.since ? timestampDate(s.since) : undefined, lastResult: s.lastResult });
    out.set(s.realServer, list);
  }
  return out;
}

/** Recorded transitions, newest first. */
export async function listHealthTransitions(db: Queryable, site: string, f: { virtualService?: string; realServer?: string; limit: number }): Promise<HealthTransition[]> {
  const r = await db.query<{ host: string; virtual_service: string; real_server: string; healthy: boolean | null; time: Date; last_result: string }>(
    `SELECT host, virtual_service, real_server, healthy, time, last_result FROM real_server_health_transitions
      WHERE site = $1 AND ($2 = '' OR virtual_service = $2) AND ($3 = '' OR real_server = $3)
      ORDER BY id DESC LIMIT $4`,
    [site, virtualServiceName(site, f.virtualService ?? ""), f.realServer ?? "", f.limit],
  );
  return r.rows.map((x) =>
    create(HealthTransitionSchema, {
      realServer: x.real_server,
      virtualService: x.virtual_service,
      host: x.host,
      state: x.healthy === null ? HealthState.UNSPECIFIED : x.healthy ? HealthState.HEALTHY : HealthState.UNHEALTHY,
      time: timestampFromDate(x.time),
      lastResult: x.last_result,
    }),
  );
}
