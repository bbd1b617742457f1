import pg from "pg";
import type { JsonObject } from "@bufbuild/protobuf";
import { LvsfleetError } from "../domain/errors.js";
import { ReadCache, TOPOLOGY_CHANNEL } from "./read-cache.js";
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
 * outbox rows with `tx.query` or `tx.defer`; they commit or roll back with the writes). Throwing aborts
 * the transaction. `writes` holds one record per write the transaction commits: one on the usual path,
 * several when concurrent writes share one transaction and one COMMIT (group commit, withWriteGroup) —
 * each with its own revision, meta and changes.
 */
export type AfterWriteHook = (tx: HookTx, writes: readonly WriteRecord[]) => Promise<void>;

/** What an after-write hook may use of the transaction: its connection, statements, the COMMIT round trip. */
export type HookTx = Pick<WriteTx, "client" | "query" | "defer" | "notify">;

export interface WriteTx {
  /**
   * The transaction's connection. BEGIN is sent with the first tx.query()/revision()/now(), so use
   * tx.query for the first statement (after that, client.query is inside the transaction too).
   */
  readonly client: pg.PoolClient;
  /** Who writes and why (for audit rows written together with a resource row, see rows.ts). */
  readonly meta: WriteMeta;
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
  /**
   * Records a written resource; flushed to audit_log (one statement) before COMMIT — unless
   * `audited`: the statement that wrote the row wrote its audit row too (rows.ts insertRow/updateRow).
   */
  record(change: Change, audited?: boolean): void;
  /** Server time of the transaction (now()), for create_time / update_time. */
  readonly now: () => Promise<Date>;
  /**
   * Queues a statement whose result nobody needs (an outbox insert, a NOTIFY) to run just before
   * COMMIT, in the same round trip as the COMMIT (simple-query protocol; parameters are written in as
   * literals: strings, numbers, bigints, booleans, null, arrays of those). It runs after every hook;
   * if it fails, the write rolls back and the error is thrown as from any statement. Throws at once
   * if the statement cannot be written with literals (then use query()).
   */
  defer(text: string, values?: unknown[]): void;
  /**
   * NOTIFY `channel` with `payload` once the write has committed: in the COMMIT round trip, right
   * after COMMIT, in an implicit transaction of its own (errors ignored). Not
   * inside the write transaction on purpose: a transaction that NOTIFYs takes Postgres's database-wide
   * notify lock in PreCommit_Notify and holds it through its commit's WAL flush, so concurrent
   * notifying writers commit one fsync at a time (no group commit). A standalone NOTIFY writes no WAL
   * and waits for no flush. Skipped when the write rolls back. Receivers must tolerate a lost one
   * (Postgres dies between the two): the relay polls; read-cache listeners reconnect and start over.
   */
  notify(channel: string, payload: string): void;
}

export interface Database {
  readonly pool: pg.Pool;
  /** Hooks run in every write transaction before COMMIT (see AfterWriteHook). */
  readonly afterWrite: AfterWriteHook[];
  /**
   * The API's read cache (read-cache.ts): every write invalidates what it wrote after COMMIT and
   * before returning, and NOTIFYs other processes with COMMIT. Disabled until its listener runs.
   */
  readonly readCache: ReadCache;
  /**
   * Group commit of the hot creates (real-servers.ts, group-commit.ts): at most this many concurrent
   * creates share one transaction and one COMMIT; 1 = every write alone (config LVSFLEET_GROUP_COMMIT_MAX).
   */
  groupCommitMax: number;
  /**
   * Predicates over the current async context: when one holds, a write runs alone in its own
   * transaction instead of joining a group (a hook that reads the async context needs that; plan.ts).
   */
  readonly isolated: Array<() => boolean>;
}

/**
 * A timestamptz as epoch milliseconds (float8, exact: floor of the numeric epoch), the one way the
 * store turns database times into Dates — parsing a float is much cheaper than pg's timestamptz text
 * parser, and write responses, reads and audit JSON all agree to the millisecond.
 */
export const epochMs = (col: string): string => `floor(extract(epoch FROM ${col}) * 1000)::float8`;
export const NOW_MS_SQL = epochMs("now()");

export function createPool(connectionString: string, max = 20, onError: (err: Error) => void = () => undefined): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, application_name: "lvsfleet-controlplane" });
  // An idle client that loses its server (restart, network) emits here; without a listener the
  // process would die. The pool replaces the client on next use.
  pool.on("error", onError);
  return guardPoolClients(pool, onError);
}

/**
 * Gives every client of `pool` an 'error' listener for its whole life. pg-pool listens only while a
 * client is idle: a checked-out client whose connection dies (Postgres restarted, its backend
 * terminated) fails the query in flight and then emits 'error', and with no listener that is an
 * uncaught exception that ends the process (or the relay's worker thread). The caller sees the failed
 * query; the pool drops the client on release (it is no longer queryable).
 */
export function guardPoolClients(pool: pg.Pool, onError: (err: Error) => void): pg.Pool {
  pool.on("connect", (client) => client.on("error", onError));
  return pool;
}

/**
 * Named (prepared) statements: Postgres parses and plans a statement text once per connection instead
 * of on every call. Names are derived from the text (a bounded cache; past it, statements go unnamed).
 */
const statementNames = new Map<string, string>();
let statementCount = 0;
const MAX_NAMED_STATEMENTS = 2000;

export function prepared(text: string, values?: readonly unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `lvs${(statementCount++).toString(36)}`;
    statementNames.set(text, name);
  }
  return name === undefined ? { text, values: values as unknown[] } : { name, text, values: values as unknown[] };
}

/**
 * The statement with its `$n` parameters written in as literals, for the simple-query protocol (which
 * takes several statements in one round trip but no parameters); undefined when that is not safe: a
 * text with quotes or dollar quoting (a `$n` could sit inside a string), or values other than
 * strings, finite numbers, bigints, booleans, null and flat arrays of those.
 */
function inlined(client: pg.ClientBase, text: string, values: readonly unknown[] = []): string | undefined {
  if (/['"]|\$\$/.test(text)) return undefined;
  const scalar = (v: unknown): string | undefined => {
    if (typeof v === "string") return v;
    if (typeof v === "bigint" || (typeof v === "number" && Number.isFinite(v))) return String(v);
    if (typeof v === "boolean") return v ? "true" : "false";
    return undefined;
  };
  const lits: string[] = [];
  for (const v of values) {
    if (v === null || v === undefined) {
      lits.push("NULL");
    } else if (Array.isArray(v)) {
      // An array literal '{"a","b"}' (elements double-quoted, \ and " escaped), then quoted as a whole.
      const els: string[] = [];
      for (const e of v) {
        if (e === null || e === undefined) {
          els.push("NULL");
          continue;
        }
        const x = scalar(e);
        if (x === undefined) return undefined;
        els.push(`"${x.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
      }
      lits.push(client.escapeLiteral(`{${els.join(",")}}`));
    } else {
      const x = scalar(v);
      if (x === undefined) return undefined;
      lits.push(client.escapeLiteral(x));
    }
  }
  let ok = true;
  const out = text.replace(/\$(\d+)/g, (_, n: string) => {
    const lit = lits[Number(n) - 1];
    if (lit === undefined) ok = false;
    return lit ?? "";
  });
  return ok ? out : undefined;
}

export function createDatabase(pool: pg.Pool): Database {
  // First hook of every write: the per-site lock, shared (site-lock.ts; an apply takes it exclusive).
  return {
    pool,
    afterWrite: [shareSiteLocks],
    readCache: new ReadCache(),
    groupCommitMax: 64,
    isolated: [],
  };
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

/**
 * One transaction on one pooled connection, the part every write path shares: BEGIN (and now()) ride
 * on the first statement, deferred statements and NOTIFYs on the COMMIT round trip, the read cache
 * is told what was written before anyone hears back.
 */
class TxCore {
  begun = false;
  now: Date | undefined;
  readonly deferred: string[] = [];
  readonly notifies: string[] = [];
  /**
   * Set once COMMIT is sent: from then on the write may have committed, so the read cache must drop
   * what it wrote (read-cache.ts) before anyone hears back from this write — even if COMMIT failed.
   */
  written: string[] | undefined;
  broken = false;

  // A connection that dies while checked out emits 'error' on the client: createPool's clients listen
  // for their whole life (guardPoolClients), and pg-pool drops a client that is no longer queryable.
  constructor(readonly client: pg.PoolClient) {}

  /**
   * Every statement of the transaction goes through here. The first one carries BEGIN and now() in
   * the same round trip (simple-query protocol, parameters written in as literals when that is safe,
   * see inlined()); the rest are prepared statements.
   */
  readonly query = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> => {
    const client = this.client;
    if (this.begun) return client.query<R>(prepared(text, values));
    this.begun = true;
    const inline = inlined(client, text, values);
    if (inline !== undefined) {
      const rs = (await client.query(`BEGIN; SELECT ${NOW_MS_SQL} AS now_ms; ${inline}`)) as unknown as pg.QueryResult[];
      this.now = new Date((rs[1]!.rows[0] as { now_ms: number }).now_ms);
      return rs[2] as pg.QueryResult<R>;
    }
    const rs = (await client.query(`BEGIN; SELECT ${NOW_MS_SQL} AS now_ms`)) as unknown as pg.QueryResult[];
    this.now = new Date((rs[1]!.rows[0] as { now_ms: number }).now_ms);
    return client.query<R>(prepared(text, values));
  };

  readonly nowDate = async (): Promise<Date> => {
    // The first statement (BEGIN; SELECT now()) sets it.
    if (this.now === undefined) await this.query("SELECT 1");
    return this.now!;
  };

  readonly defer = (text: string, values?: unknown[]): void => {
    const sql = inlined(this.client, text, values);
    if (sql === undefined) throw new Error(`cannot defer (no literal form): ${text}`);
    this.deferred.push(sql);
  };

  readonly notify = (channel: string, payload: string): void => {
    this.notifies.push(`PERFORM pg_notify(${this.client.escapeLiteral(channel)}, ${this.client.escapeLiteral(payload)});`);
  };

  /** The after-write hooks over `writes`, then deferred statements + COMMIT + NOTIFYs in one round trip. */
  async commit(db: Database, writes: readonly WriteRecord[], hookTx: HookTx): Promise<void> {
    for (const hook of db.afterWrite) await hook(hookTx, writes);
    // Other processes' read caches learn of the writes once they committed (see notify()).
    const names = new Set<string>();
    let top = 0n;
    for (const w of writes) {
      if (w.revision > top) top = w.revision;
      for (const c of w.changes) names.add(c.resourceName);
    }
    const written = (this.written = [...names]);
    this.notify(TOPOLOGY_CHANNEL, db.readCache.payload(written, top));
    // Deferred statements, COMMIT and the NOTIFYs in one round trip; if a deferred statement fails,
    // neither COMMIT nor the NOTIFYs run. The NOTIFYs run after COMMIT in an implicit transaction of
    // their own (simple-query protocol), inside a block that swallows their errors (a full notify
    // queue must not make a committed write look failed).
    await this.client.query(`${this.deferred.map((d) => `${d}; `).join("")}COMMIT${notifyBlock(this.notifies)}`);
    db.readCache.invalidate(written, top);
  }

  /** Rolls back (nothing recorded, or an error); the read cache forgets anything COMMIT may have written. */
  async rollback(db: Database): Promise<void> {
    if (this.written) db.readCache.invalidate(this.written);
    if (!this.begun) return;
    try {
      await this.client.query("ROLLBACK");
    } catch {
      this.broken = true;
    }
  }

  release(): void {
    this.client.release(this.broken ? true : undefined);
  }
}

async function runOnce<T>(
  db: Database,
  meta: WriteMeta,
  fn: (tx: WriteTx) => Promise<T>,
): Promise<{ result: T; revision: bigint }> {
  const core = new TxCore(await db.pool.connect());
  let revision: bigint | undefined;
  const changes: Change[] = [];
  const audited = new Set<Change>();
  const query = core.query;
  const tx: WriteTx = {
    client: core.client,
    meta,
    query,
    async revision() {
      if (revision === undefined) {
        const r = await query<{ rev: string; now_ms: number }>(`SELECT nextval('revision_seq')::text AS rev, ${NOW_MS_SQL} AS now_ms`);
        revision = BigInt(r.rows[0]!.rev);
        core.now = new Date(r.rows[0]!.now_ms);
      }
      return revision;
    },
    revisionSql() {
      return revision === undefined ? "nextval('revision_seq')" : `${revision.toString()}::bigint`;
    },
    adoptRevision(rev, at) {
      if (revision !== undefined && revision !== rev) throw new Error(`transaction revision changed from ${revision} to ${rev}`);
      revision = rev;
      core.now = at;
    },
    record(change, isAudited) {
      changes.push(change);
      if (isAudited) audited.add(change);
    },
    now: core.nowDate,
    defer: core.defer,
    notify: core.notify,
  };
  try {
    const result = await fn(tx);
    if (changes.length === 0) {
      await core.rollback(db);
      return { result, revision: 0n };
    }
    const pending = changes.filter((c) => !audited.has(c));
    const rev = pending.length > 0 || revision === undefined ? await insertAudit(tx, meta, pending) : revision;
    await core.commit(db, [{ revision: rev, meta, changes }], tx);
    return { result, revision: rev };
  } catch (err) {
    await core.rollback(db);
    throw err;
  } finally {
    core.release();
  }
}

/**
 * A transaction shared by several writes (group commit): each write keeps its own revision (its own
 * nextval), audit rows and WriteRecord, but they share BEGIN, their statements and one COMMIT (one WAL
 * flush). What a caller writes, it reports with `commitWrite` once its rows and audit rows are in.
 */
export interface GroupTx extends HookTx {
  /** Server time of the transaction (now()): create_time / update_time of every write in it. */
  readonly now: () => Promise<Date>;
  /** A write of the group whose rows and audit rows are written: the hooks see it, the cache forgets it. */
  commitWrite(record: WriteRecord): void;
}

/**
 * Group commit: `fn` writes the rows of several writes in one transaction and reports each with
 * commitWrite; then the hooks run over all of them and one COMMIT ends it. A group that reported no
 * write rolls back. Serialization failures and deadlocks run `fn` again (it must be re-runnable);
 * any other error rolls back the whole group and is thrown — the caller decides what to retry alone.
 */
export async function withWriteGroup<T>(db: Database, fn: (tx: GroupTx) => Promise<T>): Promise<{ result: T; writes: WriteRecord[] }> {
  for (let attempt = 1; ; attempt++) {
    const core = new TxCore(await db.pool.connect());
    const writes: WriteRecord[] = [];
    const tx: GroupTx = {
      client: core.client,
      query: core.query,
      defer: core.defer,
      notify: core.notify,
      now: core.nowDate,
      commitWrite: (record) => void writes.push(record),
    };
    try {
      const result = await fn(tx);
      if (writes.length === 0) await core.rollback(db);
      else await core.commit(db, writes, tx);
      return { result, writes };
    } catch (err) {
      const sent = core.written !== undefined;
      await core.rollback(db);
      const code = (err as { code?: unknown }).code;
      if (typeof code === "string" && RETRYABLE.has(code)) {
        if (attempt < MAX_ATTEMPTS) continue;
        throw new LvsfleetError("ABORTED", `write conflicted with a concurrent write, retry (${code})`);
      }
      // An ERROR the server reported in the COMMIT round trip (a deferred statement, or COMMIT itself)
      // means nothing committed. Anything else once COMMIT was sent — the connection lost, a FATAL —
      // leaves the outcome unknown.
      const rolledBack = err instanceof pg.DatabaseError && err.severity === "ERROR";
      if (sent && !rolledBack && err !== null && typeof err === "object") uncertain.add(err);
      throw err;
    } finally {
      core.release();
    }
  }
}

const uncertain = new WeakSet<object>();

/**
 * True for an error withWriteGroup threw after it had sent COMMIT: the group may have committed, so
 * its writes must not run again alone — each caller gets the error, as one alone would (the client
 * reads before retrying; a retried create then finds its id taken).
 */
export function commitUncertain(err: unknown): boolean {
  return err !== null && typeof err === "object" && uncertain.has(err);
}

/** `; DO … PERFORM pg_notify(…) … EXCEPTION WHEN OTHERS THEN NULL …` for the queued NOTIFYs, or "". */
function notifyBlock(notifies: readonly string[]): string {
  if (notifies.length === 0) return "";
  const tag = "$lvsfleet_notify$";
  const body = notifies.join(" ");
  // Literals from escapeLiteral never end a dollar quote with this tag unless a payload contains it.
  if (body.includes(tag)) throw new Error("a NOTIFY payload contains the dollar-quote tag");
  return `; DO ${tag} BEGIN ${body} EXCEPTION WHEN OTHERS THEN NULL; END ${tag}`;
}

async function insertAudit(tx: WriteTx, meta: WriteMeta, changes: Change[]): Promise<bigint> {
  // One statement for all rows (taking the revision here if no row write took it, e.g. deletes);
  // xid and time default to pg_current_xact_id() and now().
  const r = await tx.query<{ revision: string; now_ms: number }>(
    `WITH rev AS (SELECT ${tx.revisionSql()} AS r)
     INSERT INTO audit_log (revision, actor, operation, reason, resource_name, site_id, before, after)
     SELECT rev.r, $1, $2, $3, c.resource_name, c.site_id, c.before, c.after
     FROM rev, jsonb_to_recordset($4::jsonb) AS c(resource_name text, site_id text, before jsonb, after jsonb)
     RETURNING revision::text AS revision, ${NOW_MS_SQL} AS now_ms`,
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
  tx.adoptRevision(revision, new Date(r.rows[0]!.now_ms));
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
