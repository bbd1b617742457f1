import pg from "pg";
import type { JsonObject } from "@bufbuild/protobuf";
import { LvsfleetError } from "../domain/errors.js";
import { shareSiteLocks } from "./site-lock.js";

// int8 (revision, ids) as bigint-safe strings are parsed where needed; leave pg's default (string).

/** Who writes and why: recorded on every audit entry of the write. */
export interface WriteMeta {
  /** Caller identity; "anonymous" until authentication lands. */
  actor: string;
  /** RPC name, e.g. "CreateVirtualService". */
  operation: string;
  /** Optional reason (request metadata `x-lvsfleet-reason`). */
  reason?: string;
}

export type ResourceKind = "site" | "host" | "virtualService" | "realServer" | "firewallMark";

/** One resource written by a transaction; becomes one audit row (and, later, outbox input). */
export interface Change {
  kind: ResourceKind;
  /** Full resource name, e.g. `sites/a/virtualServices/web`. */
  resourceName: string;
  siteId: string;
  /** The resource before/after the write in protobuf JSON form (output-only fields included); absent = did not exist. */
  before?: JsonObject;
  after?: JsonObject;
}

/** What a committed-to-be write looks like to the after-write hooks. */
export interface WriteRecord {
  revision: bigint;
  meta: WriteMeta;
  changes: readonly Change[];
}

/**
 * Runs inside the write transaction after the rows and audit entries are written and before COMMIT,
 * on the same connection: the place for the transactional outbox of the distribution issue (insert
 * outbox rows with `tx.query`; they commit or roll back with the write). Throwing aborts the write.
 */
export type AfterWriteHook = (tx: WriteTx, record: WriteRecord) => Promise<void>;

export interface WriteTx {
  readonly client: pg.PoolClient;
  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * This transaction's revision: the first call takes nextval('revision_seq'), later calls return the
   * same value. Take it only once validation passed, so rejected writes do not burn revisions.
   */
  revision(): Promise<bigint>;
  /**
   * SQL for this transaction's revision inside a write statement, saving the round trip of revision():
   * `nextval('revision_seq')` if none was taken yet, else the taken value as a literal. The statement
   * must RETURN the value and hand it to adoptRevision().
   */
  revisionSql(): string;
  /** Adopts the revision (and now()) a statement built with revisionSql() returned. */
  adoptRevision(revision: bigint, now: Date): void;
  /** Records a written resource; flushed to audit_log (one statement) before COMMIT. */
  record(change: Change): void;
  /** Server time of the transaction (now()), for create_time / update_time. */
  readonly now: () => Promise<Date>;
}

export interface Database {
  readonly pool: pg.Pool;
  /** Hooks run in every write transaction before COMMIT (see AfterWriteHook). */
  readonly afterWrite: AfterWriteHook[];
}

export function createPool(connectionString: string, max = 20, onError: (err: Error) => void = () => undefined): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, application_name: "lvsfleet-controlplane" });
  // An idle client that loses its server (restart, network) emits here; without a listener the
  // process would die. The pool replaces the client on next use.
  pool.on("error", onError);
  return pool;
}

export function createDatabase(pool: pg.Pool): Database {
  // First hook of every write: the per-site lock, shared (site-lock.ts; an apply takes it exclusive).
  return { pool, afterWrite: [shareSiteLocks] };
}

// Serialization failures and deadlocks are safe to retry: the whole transaction rolled back.
const RETRYABLE = new Set(["40001", "40P01"]);
const MAX_ATTEMPTS = 4;

/**
 * The one write path: BEGIN, `fn` (locks, validation, row writes, `tx.record(...)`), audit entries,
 * after-write hooks, COMMIT — or ROLLBACK on any error. A transaction that recorded no change (e.g.
 * validate_only) rolls back and takes no revision. Returns fn's result and the revision (0n if none).
 */
export async function withTransaction<T>(
  db: Database,
  meta: WriteMeta,
  fn: (tx: WriteTx) => Promise<T>,
): Promise<{ result: T; revision: bigint }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runOnce(db, meta, fn);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === "string" && RETRYABLE.has(code)) {
        if (attempt < MAX_ATTEMPTS) continue;
        throw new LvsfleetError("ABORTED", `write conflicted with a concurrent write, retry (${code})`);
      }
      throw err;
    }
  }
}

async function runOnce<T>(
  db: Database,
  meta: WriteMeta,
  fn: (tx: WriteTx) => Promise<T>,
): Promise<{ result: T; revision: bigint }> {
  const client = await db.pool.connect();
  let revision: bigint | undefined;
  let now: Date | undefined;
  const changes: Change[] = [];
  const tx: WriteTx = {
    client,
    query: (text, values) => client.query(text, values as unknown[]),
    async revision() {
      if (revision === undefined) {
        const r = await client.query<{ rev: string; now: Date }>(
          "SELECT nextval('revision_seq')::text AS rev, now() AS now",
        );
        revision = BigInt(r.rows[0]!.rev);
        now = r.rows[0]!.now;
      }
      return revision;
    },
    revisionSql() {
      return revision === undefined ? "nextval('revision_seq')" : `${revision.toString()}::bigint`;
    },
    adoptRevision(rev, at) {
      if (revision !== undefined && revision !== rev) throw new Error(`transaction revision changed from ${revision} to ${rev}`);
      revision = rev;
      now = at;
    },
    record(change) {
      changes.push(change);
    },
    async now() {
      if (now === undefined) {
        const r = await client.query<{ now: Date }>("SELECT now() AS now");
        now = r.rows[0]!.now;
      }
      return now;
    },
  };
  let broken = false;
  try {
    await client.query("BEGIN");
    const result = await fn(tx);
    if (changes.length === 0) {
      await client.query("ROLLBACK");
      return { result, revision: 0n };
    }
    const rev = await insertAudit(tx, meta, changes);
    const record: WriteRecord = { revision: rev, meta, changes };
    for (const hook of db.afterWrite) await hook(tx, record);
    await client.query("COMMIT");
    return { result, revision: rev };
  } catch (err) {
    try {
      await client.query("ROLLBACK");
    } catch {
      broken = true;
    }
    throw err;
  } finally {
    client.release(broken ? true : undefined);
  }
}

async function insertAudit(tx: WriteTx, meta: WriteMeta, changes: Change[]): Promise<bigint> {
  // One statement for all rows (taking the revision here if no row write took it, e.g. deletes);
  // xid and time default to pg_current_xact_id() and now().
  const r = await tx.query<{ revision: string; now: Date }>(
    `WITH rev AS (SELECT ${tx.revisionSql()} AS r)
     INSERT INTO audit_log (revision, actor, operation, reason, resource_name, site_id, before, after)
     SELECT rev.r, $1, $2, $3, c.resource_name, c.site_id, c.before, c.after
     FROM rev, jsonb_to_recordset($4::jsonb) AS c(resource_name text, site_id text, before jsonb, after jsonb)
     RETURNING revision::text AS revision, now() AS now`,
    [
      meta.actor,
      meta.operation,
      meta.reason ?? "",
      JSON.stringify(
        changes.map((c) => ({
          resource_name: c.resourceName,
          site_id: c.siteId,
          before: c.before ?? null,
          after: c.after ?? null,
        })),
      ),
    ],
  );
  const revision = BigInt(r.rows[0]!.revision);
  tx.adoptRevision(revision, r.rows[0]!.now);
  return revision;
}

/**
 * The revision a read saw: the highest revision committed and visible in the statement's snapshot.
 * Because sequence values commit out of order, a lower revision may still be in flight at that
 * moment; "read at N" therefore means "every write visible here is ≤ N and N is visible", not "every
 * write ≤ N is visible". Consumers that need the latter (the relay) use the xid8 snapshot instead.
 * Embed it in the read's own statement (one snapshot) as a subquery yielding column `r`.
 */
export const READ_REVISION_SQL = "SELECT coalesce(max(revision), 0)::text AS r FROM audit_log";
