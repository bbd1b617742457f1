// host_status (what agents report) joined with desired_states (what the relay published), in pg.
import type pg from "pg";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AgentPhase, AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import {
  DirectorStatsSchema,
  HostStatusSchema,
  type DirectorStats,
  type HostState,
  type HostStatus,
  type HealthTransition,
  type RealServerHealthStatus,
} from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { deriveState, upToDate } from "./state.js";
import { SITE_PART } from "../compile/site-part.js";
import { ingestHealth, listHealthTransitions, listRealServerHealthStatus } from "./health-store.js";

interface Row {
  site: string;
  host: string;
  desired_revision: string | null;
  desired_hash: string | null;
  agent_id: string | null;
  applied_revision: string | null;
  applied_hash: string | null;
  seen_revision: string | null;
  phase: number | null;
  errors: Array<{ object: string; operation: string; message: string }> | null;
  heartbeat_seconds: number | null;
  last_seen: Date | null;
}

// Hosts are the union of what was published (present hosts) and what reported: an agent of a host
// that is not (or no longer) in the topology still shows up.
// A host's desired state is its host part joined with the site part (row host = '_site', see
// compile/site-part.ts): revision = the greater of the two, hash = SHA-256 of
// "<host hash>:<site hash>" — what the agent reports after joining them
// (agents/hostagent/sync/combine.ts).
const STATUS_SQL = `
  SELECT coalesce(d.site, s.site) AS site, coalesce(d.host, s.host) AS host,
         d.revision::text AS desired_revision, d.hash AS desired_hash,
         s.agent_id, s.applied_revision::text AS applied_revision, s.applied_hash,
         s.seen_revision::text AS seen_revision, s.phase, s.errors, s.heartbeat_seconds, s.last_seen
    FROM (SELECT h.site, h.host, GREATEST(h.revision, p.revision) AS revision,
                 CASE WHEN p.hash IS NULL THEN h.hash
                      ELSE encode(sha256(convert_to(h.hash || ':' || p.hash, 'UTF8')), 'hex') END AS hash
            FROM desired_states h
            LEFT JOIN desired_states p ON p.site = h.site AND p.host = '${SITE_PART}'
           WHERE h.present AND h.host <> '${SITE_PART}') d
    FULL JOIN host_status s ON s.site = d.site AND s.host = d.host`;

function toStatus(r: Row, now: Date): HostStatus {
  const facts = {
    desiredRevision: BigInt(r.desired_revision ?? 0),
    desiredHash: r.desired_hash ?? "",
    appliedRevision: BigInt(r.applied_revision ?? 0),
    appliedHash: r.applied_hash ?? "",
    seenRevision: BigInt(r.seen_revision ?? 0),
    phase: (r.phase ?? 0) as AgentPhase,
    lastSeen: r.last_seen ?? undefined,
    heartbeatSeconds: r.heartbeat_seconds ?? 0,
  };
  return create(HostStatusSchema, {
    site: r.site,
    host: r.host,
    state: deriveState(facts, now),
    desiredRevision: facts.desiredRevision,
    desiredHash: facts.desiredHash,
    appliedRevision: facts.appliedRevision,
    appliedHash: facts.appliedHash,
    seenRevision: facts.seenRevision,
    phase: facts.phase,
    errors: r.errors ?? [],
    lastSeen: r.last_seen ? timestampFromDate(r.last_seen) : undefined,
    agentId: r.agent_id ?? "",
    heartbeatSeconds: r.heartbeat_seconds ?? 0,
  });
}

export interface StatusFilter {
  site?: string;
  states?: readonly HostState[];
}

export class StatusStore {
  constructor(readonly pool: pg.Pool) {}

  /**
   * Upserts the latest report per host (older reports of the same agent never overwrite newer).
   * `counters`: the reports whose counters to store (default: those of `reports` that carry some).
   */
  async ingest(reports: readonly AgentReport[], counters?: readonly AgentReport[]): Promise<void> {
    if (reports.length === 0) return;
    const now = new Date();
    const cols = {
      site: [] as string[],
      host: [] as string[],
      agent: [] as string[],
      applied: [] as string[],
      appliedHash: [] as string[],
      seen: [] as string[],
      phase: [] as number[],
      errors: [] as string[],
      hb: [] as number[],
      time: [] as Date[],
    };
    for (const r of reports) {
      cols.site.push(r.site);
      cols.host.push(r.host);
      cols.agent.push(r.agentId);
      cols.applied.push(r.appliedRevision.toString());
      cols.appliedHash.push(r.appliedHash);
      cols.seen.push(r.seenRevision.toString());
      cols.phase.push(r.phase);
      cols.errors.push(JSON.stringify(r.errors.map((e) => ({ object: e.object, operation: e.operation, message: e.message }))));
      cols.hb.push(r.heartbeatSeconds);
      cols.time.push(r.time ? timestampDate(r.time) : now);
    }
    await this.pool.query(
      `INSERT INTO host_status (site, host, agent_id, applied_revision, applied_hash, seen_revision, phase, errors,
                                heartbeat_seconds, report_time, last_seen)
       SELECT site, host, agent, applied, applied_hash, seen, phase, errors::jsonb, hb, time, now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::smallint[],
                     $8::text[], $9::int[], $10::timestamptz[])
           AS r(site, host, agent, applied, applied_hash, seen, phase, errors, hb, time)
       ON CONFLICT (site, host) DO UPDATE SET
         agent_id = EXCLUDED.agent_id, applied_revision = EXCLUDED.applied_revision, applied_hash = EXCLUDED.applied_hash,
         seen_revision = EXCLUDED.seen_revision, phase = EXCLUDED.phase, errors = EXCLUDED.errors,
         heartbeat_seconds = EXCLUDED.heartbeat_seconds, report_time = EXCLUDED.report_time, last_seen = EXCLUDED.last_seen
       WHERE host_status.agent_id <> EXCLUDED.agent_id OR host_status.report_time <= EXCLUDED.report_time`,
      [cols.site, cols.host, cols.agent, cols.applied, cols.appliedHash, cols.seen, cols.phase, cols.errors, cols.hb, cols.time],
    );
    await this.ingestCounters(counters ?? reports, now);
    await ingestHealth(this.pool, reports, now);
  }

  /** Health of the site's real servers per Director (health-store.ts), with each Director's state. */
  async health(site: string, virtualService = "", now = new Date()): Promise<RealServerHealthStatus[]> {
    const hosts = new Map((await this.list({ site }, ["", ""], Number.MAX_SAFE_INTEGER, now)).map((h) => [h.host, h.state]));
    return listRealServerHealthStatus(this.pool, site, virtualService, now, hosts);
  }

  async healthTransitions(site: string, f: { virtualService?: string; realServer?: string; limit: number }): Promise<HealthTransition[]> {
    return listHealthTransitions(this.pool, site, f);
  }

  /** Latest counters per host (host_counters), from the reports that carry counters. */
  private async ingestCounters(reports: readonly AgentReport[], now: Date): Promise<void> {
    const withCounters = reports.filter((r) => r.counters.length > 0);
    if (withCounters.length === 0) return;
    const site: string[] = [], host: string[] = [], agent: string[] = [], time: Date[] = [], blob: Buffer[] = [];
    for (const r of withCounters) {
      site.push(r.site);
      host.push(r.host);
      agent.push(r.agentId);
      time.push(r.time ? timestampDate(r.time) : now);
      const ds = create(DirectorStatsSchema, { site: r.site, host: r.host, time: r.time ?? timestampFromDate(now), services: r.counters });
      blob.push(Buffer.from(toBinary(DirectorStatsSchema, ds)));
    }
    await this.pool.query(
      `INSERT INTO host_counters (site, host, agent_id, report_time, counters)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[])
       ON CONFLICT (site, host) DO UPDATE SET
         agent_id = EXCLUDED.agent_id, report_time = EXCLUDED.report_time, counters = EXCLUDED.counters, updated_at = now()
       WHERE host_counters.agent_id <> EXCLUDED.agent_id OR host_counters.report_time <= EXCLUDED.report_time`,
      [site, host, agent, time, blob],
    );
  }

  /** The latest counters of the site's Directors (optionally only some hosts), ordered by host. */
  async stats(site: string, hosts?: readonly string[]): Promise<DirectorStats[]> {
    const r = await this.pool.query<{ counters: Buffer }>(
      `SELECT counters FROM host_counters WHERE site = $1 AND ($2::text[] IS NULL OR host = ANY($2)) ORDER BY host`,
      [site, hosts ? [...hosts] : null],
    );
    return r.rows.map((row) => fromBinary(DirectorStatsSchema, row.counters));
  }

  async get(site: string, host: string, now = new Date()): Promise<HostStatus | undefined> {
    const r = await this.pool.query<Row>(`SELECT * FROM (${STATUS_SQL}) x WHERE site = $1 AND host = $2`, [site, host]);
    return r.rows[0] ? toStatus(r.rows[0], now) : undefined;
  }

  /** Statuses in (site, host) order after `after`, filtered; `limit` rows at most (after filtering). */
  async list(filter: StatusFilter, after: [string, string] = ["", ""], limit = 1000, now = new Date()): Promise<HostStatus[]> {
    const out: HostStatus[] = [];
    let cursor = after;
    // The state is derived in JS, so filter by state page by page.
    for (;;) {
      const r = await this.pool.query<Row>(
        `SELECT * FROM (${STATUS_SQL}) x WHERE ($1 = '' OR site = $1) AND (site, host) > ($2, $3) ORDER BY site, host LIMIT 1000`,
        [filter.site ?? "", cursor[0], cursor[1]],
      );
      for (const row of r.rows) {
        const s = toStatus(row, now);
        if (filter.states?.length && !filter.states.includes(s.state)) continue;
        out.push(s);
        if (out.length >= limit) return out;
      }
      if (r.rows.length < 1000) return out;
      const last = r.rows[r.rows.length - 1]!;
      cursor = [last.site, last.host];
    }
  }

  /**
   * Rollout of `revision` in `site` (optionally only `hosts`): which hosts in scope have not yet
   * applied a state that includes it. Undefined while the revision is not compiled yet (not committed,
   * or its outbox rows are still waiting for the relay).
   */
  async rollout(revision: bigint, site: string, hosts: readonly string[], now = new Date()): Promise<{ hosts: string[]; pending: HostStatus[] } | undefined> {
    const gate = await this.pool.query<{ committed: boolean; waiting: boolean }>(
      `SELECT (SELECT coalesce(max(revision), 0) FROM audit_log) >= $1::bigint AS committed,
              EXISTS (SELECT 1 FROM outbox WHERE site = $2 AND revision <= $1::bigint) AS waiting`,
      [revision.toString(), site],
    );
    if (!gate.rows[0]!.committed || gate.rows[0]!.waiting) return undefined;
    const r = await this.pool.query<Row>(
      `SELECT * FROM (${STATUS_SQL}) x WHERE site = $1 AND desired_revision IS NOT NULL
         AND (cardinality($2::text[]) = 0 OR host = ANY($2::text[])) ORDER BY host`,
      [site, hosts],
    );
    const statuses = r.rows.map((row) => toStatus(row, now));
    // Everything compiled from revision ≥ `revision` is in the current desired state: a host that
    // applied the latest one it was given (or its hash) has the revision.
    const pending = statuses.filter((s) => !upToDate(s));
    return { hosts: statuses.map((x) => x.host), pending };
  }
}
