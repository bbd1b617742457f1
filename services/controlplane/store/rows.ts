/**
 * Shared row plumbing for the resource tables: the stored JSON form, reads that carry the revision
 * they saw, keyset pagination and row locks. Every table has `resource jsonb, revision, create_time,
 * update_time` plus its key columns (see migrations/).
 */
import { clone, fromJson, toJson, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import { LvsfleetError } from "../domain/errors.js";
import { epochMs, NOW_MS_SQL, prepared, READ_REVISION_SQL, type ResourceKind, type WriteTx } from "./db.js";

/** The output-only fields every resource message has. */
interface OutputOnly {
  name: string;
  revision: bigint;
  etag: string;
  createTime?: unknown;
  updateTime?: unknown;
}

export interface TableSpec<D extends DescMessage> {
  kind: ResourceKind;
  schema: D;
  table: string;
  /** Key columns in order, e.g. ["site_id", "host_id"]. The first is always site_id. */
  keys: readonly string[];
  /** Resource name from key values. */
  name(keys: readonly string[]): string;
}

export interface StoredRow {
  resource: JsonObject;
  revision: string;
  /** create_time / update_time as epoch milliseconds (db.ts epochMs). */
  create_ms: number;
  update_ms: number;
}

export const ROW_COLUMNS = `resource, revision::text AS revision, ${epochMs("create_time")} AS create_ms, ${epochMs("update_time")} AS update_ms`;

/** The etag of a resource: its last write's revision, quoted (an HTTP entity tag). */
export function etagOf(revision: bigint): string {
  return `"${revision}"`;
}

/** The JSON stored in `resource`: the message without output-only fields (they live in columns). */
export function storedJson<D extends DescMessage>(schema: D, msg: MessageShape<D>): JsonObject {
  const c = clone(schema, msg) as MessageShape<D> & OutputOnly;
  c.revision = 0n;
  c.etag = "";
  c.createTime = undefined;
  c.updateTime = undefined;
  return toJson(schema, c) as JsonObject;
}

/** The full JSON form (with output-only fields), as recorded in audit entries. */
export function fullJson<D extends DescMessage>(schema: D, msg: MessageShape<D>): JsonObject {
  return toJson(schema, msg) as JsonObject;
}

export function fromRow<D extends DescMessage>(schema: D, row: StoredRow): MessageShape<D> {
  const msg = fromJson(schema, row.resource, { ignoreUnknownFields: true }) as MessageShape<D> & OutputOnly;
  const rev = BigInt(row.revision);
  msg.revision = rev;
  msg.etag = etagOf(rev);
  msg.createTime = timestampFromMs(row.create_ms);
  msg.updateTime = timestampFromMs(row.update_ms);
  return msg;
}

/** Sets the output-only fields of a message about to be written at `revision`. */
export function stamp<D extends DescMessage>(
  schema: D,
  msg: MessageShape<D>,
  name: string,
  revision: bigint,
  createTime: Date,
  updateTime: Date,
): MessageShape<D> {
  const m = clone(schema, msg) as MessageShape<D> & OutputOnly;
  m.name = name;
  m.revision = revision;
  m.etag = etagOf(revision);
  m.createTime = timestampFromDate(createTime);
  m.updateTime = timestampFromDate(updateTime);
  return m;
}

function whereKeys(keys: readonly string[], offset = 0): string {
  return keys.map((k, i) => `${k} = $${i + 1 + offset}`).join(" AND ");
}

/** Get one resource and the revision of the snapshot it was read in (one statement, one snapshot). */
export async function getRow<D extends DescMessage>(
  pool: pg.Pool,
  spec: TableSpec<D>,
  keys: readonly string[],
): Promise<{ resource: MessageShape<D>; revision: bigint }> {
  const r = await pool.query<StoredRow & { read_revision: string }>(
    prepared(
      `SELECT rev.r AS read_revision, t.*
         FROM (${READ_REVISION_SQL}) rev
         LEFT JOIN LATERAL (SELECT ${ROW_COLUMNS} FROM ${spec.table} WHERE ${whereKeys(spec.keys)}) t ON true`,
      [...keys],
    ),
  );
  const row = r.rows[0]!;
  if (row.resource === null || row.resource === undefined) throw LvsfleetError.notFound(spec.name(keys));
  return { resource: fromRow(spec.schema, row), revision: BigInt(row.read_revision) };
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** AIP-158: 0 = default; above the maximum is coerced down; negative is an error. */
export function pageSize(requested: number | undefined, field = "page_size"): number {
  const n = requested ?? 0;
  if (!Number.isInteger(n) || n < 0) {
    throw LvsfleetError.invalid([{ field, reason: "INVALID_PAGE_SIZE", description: "page_size must not be negative" }]);
  }
  if (n === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(n, MAX_PAGE_SIZE);
}

/** Page tokens are opaque to clients: base64url of the last returned key (its resource name). */
export function encodePageToken(parts: readonly string[]): string {
  return Buffer.from(parts.join("/"), "utf8").toString("base64url");
}

export function decodePageToken(token: string, arity: number, field = "page_token"): string[] {
  const bad = () =>
    LvsfleetError.invalid([{ field, reason: "INVALID_PAGE_TOKEN", description: "page_token is not a token this API returned" }]);
  if (!/^[A-Za-z0-9_-]*$/.test(token)) throw bad();
  const parts = Buffer.from(token, "base64url").toString("utf8").split("/");
  if (parts.length !== arity || parts.some((p) => p === "")) throw bad();
  return parts;
}

export interface Page<T> {
  items: T[];
  nextPageToken: string;
  revision: bigint;
}

/**
 * Keyset pagination over the table's key order: rows whose key is after the token's, optionally
 * restricted to a prefix of the key (the parent), in one statement together with the read revision.
 */
export async function listRows<D extends DescMessage>(
  pool: pg.Pool,
  spec: TableSpec<D>,
  opts: { prefix: readonly string[]; pageSize?: number; pageToken?: string },
): Promise<Page<MessageShape<D>>> {
  const size = pageSize(opts.pageSize);
  const values: unknown[] = [];
  const conds: string[] = [];
  opts.prefix.forEach((v, i) => {
    values.push(v);
    conds.push(`${spec.keys[i]} = $${values.length}`);
  });
  if (opts.pageToken) {
    const after = decodePageToken(opts.pageToken, spec.keys.length);
    const ph = after.map((v) => {
      values.push(v);
      return `$${values.length}`;
    });
    conds.push(`(${spec.keys.join(", ")}) > (${ph.join(", ")})`);
  }
  values.push(size + 1);
  const where = conds.length ? `WHERE ${conds.join(" AND ")}` : "";
  const r = await pool.query<StoredRow & { read_revision: string } & Record<string, string>>(
    prepared(
      `SELECT rev.r AS read_revision, t.*
         FROM (${READ_REVISION_SQL}) rev
         LEFT JOIN LATERAL (
           SELECT ${ROW_COLUMNS}, ${spec.keys.join(", ")} FROM ${spec.table} ${where}
           ORDER BY ${spec.keys.join(", ")} LIMIT $${values.length}
         ) t ON true`,
      values,
    ),
  );
  const revision = BigInt(r.rows[0]!.read_revision);
  const rows = r.rows.filter((row) => row.resource !== null && row.resource !== undefined);
  const more = rows.length > size;
  const page = more ? rows.slice(0, size) : rows;
  return {
    items: page.map((row) => fromRow(spec.schema, row)),
    nextPageToken: more ? encodePageToken(spec.keys.map((k) => page[page.length - 1]![k]!)) : "",
    revision,
  };
}

/**
 * Locking. A write that validates against other rows (a parent, a referenced host or mark) locks
 * them FOR KEY SHARE: the weakest row lock, and the very one the foreign-key check of its insert takes
 * anyway, so many concurrent writers under one parent (e.g. real servers of one service) share it
 * without stacking a second lock mode on the row. A write that changes what others validate against
 * (a service's ports, a host's roles, a mark's value, any delete) takes FOR UPDATE, which conflicts
 * with FOR KEY SHARE: it waits for the in-flight dependent writes and holds off new ones until it
 * commits. Locks are taken parent before child. Deadlocks that slip through are retried whole
 * (db.ts).
 */
export type LockMode = "FOR UPDATE" | "FOR NO KEY UPDATE" | "FOR SHARE" | "FOR KEY SHARE";

/** Reads and locks one row inside a write transaction; undefined when absent. */
export async function lockRow<D extends DescMessage>(
  tx: WriteTx,
  spec: TableSpec<D>,
  keys: readonly string[],
  mode: LockMode,
): Promise<MessageShape<D> | undefined> {
  const r = await tx.query<StoredRow>(
    `SELECT ${ROW_COLUMNS} FROM ${spec.table} WHERE ${whereKeys(spec.keys)} ${mode}`,
    [...keys],
  );
  return r.rows[0] ? fromRow(spec.schema, r.rows[0]) : undefined;
}

/** Reads (and optionally locks) rows matching a WHERE clause inside a write transaction. */
export async function selectRows<D extends DescMessage>(
  tx: Pick<WriteTx, "query">,
  spec: TableSpec<D>,
  where: string,
  values: unknown[],
  mode: LockMode | "" = "",
): Promise<MessageShape<D>[]> {
  const r = await tx.query<StoredRow>(
    `SELECT ${ROW_COLUMNS} FROM ${spec.table} WHERE ${where} ORDER BY ${spec.keys.join(", ")} ${mode}`,
    values,
  );
  return r.rows.map((row) => fromRow(spec.schema, row));
}

/**
 * Inserts a row: key columns, extra columns (e.g. address, port) and the stored JSON, stamped with the
 * transaction's revision. Returns the message with its output-only fields set.
 */
export async function insertRow<D extends DescMessage>(
  tx: WriteTx,
  spec: TableSpec<D>,
  keys: readonly string[],
  extra: Record<string, unknown>,
  msg: MessageShape<D>,
  /**
   * If given, the insert is ON CONFLICT DO NOTHING and, when a unique or primary key was taken, this
   * runs instead; it must throw (typically the validation error naming the duplicate). This saves the
   * separate duplicate check on hot paths, at the price of a sequence value on conflict.
   */
  onConflict?: () => Promise<never>,
): Promise<MessageShape<D>> {
  // The stored JSON has no output-only fields, so the row can take the revision in the same statement,
  // and its audit row goes in with it (a data-modifying CTE: one round trip for row + audit). The
  // audit JSON is the full resource: everything but the revision and etag is known here (create and
  // update time are the transaction's now(), which tx.now() read with BEGIN); those two are added in SQL.
  const name = spec.name(keys);
  const now = await tx.now();
  const cols = [...spec.keys, ...Object.keys(extra), "resource"];
  const values = [...keys, ...Object.values(extra), storedJson(spec.schema, msg)];
  const n = values.length;
  values.push(tx.meta.actor, tx.meta.operation, tx.meta.reason ?? "", name, keys[0]!, auditJson(spec.schema, msg, name, now, now));
  const r = await tx.query<{ revision: string; now_ms: number }>(
    `WITH ins AS (
       INSERT INTO ${spec.table} (${cols.join(", ")}, revision, create_time, update_time)
       VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")}, ${tx.revisionSql()}, now(), now())
       ${onConflict ? "ON CONFLICT DO NOTHING" : ""}
       RETURNING revision
     ), aud AS (${AUDIT_INSERT(n, "NULL::jsonb")})
     SELECT revision::text AS revision, ${NOW_MS_SQL} AS now_ms FROM ins`,
    values,
  );
  if (!r.rows[0]) {
    if (!onConflict) throw new Error(`insert of ${name} returned no row`);
    return onConflict();
  }
  const revision = BigInt(r.rows[0].revision);
  tx.adoptRevision(revision, new Date(r.rows[0].now_ms));
  const written = stamp(spec.schema, msg, name, revision, now, now);
  tx.record({ kind: spec.kind, resourceName: name, siteId: keys[0]!, after: fullJson(spec.schema, written) }, true);
  return written;
}

/**
 * The audit insert of insertRow/updateRow, reading the written row's revision from CTE `ins`;
 * parameters $n+1.. are actor, operation, reason, resource name, site, after JSON (without revision and
 * etag, which are added here). Same columns as db.ts insertAudit.
 */
function AUDIT_INSERT(n: number, before: string): string {
  const p = (i: number) => `$${n + i}`;
  return `INSERT INTO audit_log (revision, actor, operation, reason, resource_name, site_id, before, after)
       SELECT ins.revision, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${before},
              ${p(6)}::jsonb || jsonb_build_object('revision', ins.revision::text, 'etag', '"' || ins.revision::text || '"')
         FROM ins`;
}

/** fullJson of the resource as written at (yet unknown) revision: no revision, no etag. */
export function auditJson<D extends DescMessage>(schema: D, msg: MessageShape<D>, name: string, createTime: Date | undefined, updateTime: Date): JsonObject {
  const m = clone(schema, msg) as MessageShape<D> & OutputOnly;
  m.name = name;
  m.revision = 0n;
  m.etag = "";
  m.createTime = createTime ? timestampFromDate(createTime) : undefined;
  m.updateTime = timestampFromDate(updateTime);
  return toJson(schema, m) as JsonObject;
}

/** Rewrites an existing row (which the caller locked) at the transaction's revision, with its audit row. */
export async function updateRow<D extends DescMessage>(
  tx: WriteTx,
  spec: TableSpec<D>,
  keys: readonly string[],
  extra: Record<string, unknown>,
  before: MessageShape<D>,
  msg: MessageShape<D>,
): Promise<MessageShape<D>> {
  const name = spec.name(keys);
  const now = await tx.now();
  // create_time does not change: the locked row's (as read) is the one the response carries.
  const createTime = (before as unknown as OutputOnly).createTime as Timestamp | undefined;
  const sets = [...Object.keys(extra), "resource"];
  const values = [...Object.values(extra), storedJson(spec.schema, msg), ...keys];
  const n = values.length;
  values.push(tx.meta.actor, tx.meta.operation, tx.meta.reason ?? "", name, keys[0]!, auditJson(spec.schema, msg, name, createTime && timestampDate(createTime), now), fullJson(spec.schema, before));
  const r = await tx.query<{ revision: string; now_ms: number; create_ms: number }>(
    `WITH ins AS (
       UPDATE ${spec.table} SET ${sets.map((c, i) => `${c} = $${i + 1}`).join(", ")}, revision = ${tx.revisionSql()}, update_time = now()
        WHERE ${whereKeys(spec.keys, sets.length)}
        RETURNING revision, create_time
     ), aud AS (${AUDIT_INSERT(n, `$${n + 7}::jsonb`)})
     SELECT revision::text AS revision, ${NOW_MS_SQL} AS now_ms, ${epochMs("create_time")} AS create_ms FROM ins`,
    values,
  );
  if (!r.rows[0]) throw new Error(`${name} vanished under its row lock`);
  const revision = BigInt(r.rows[0].revision);
  tx.adoptRevision(revision, new Date(r.rows[0].now_ms));
  const written = stamp(spec.schema, msg, name, revision, new Date(r.rows[0].create_ms), now);
  tx.record(
    {
      kind: spec.kind,
      resourceName: name,
      siteId: keys[0]!,
      before: fullJson(spec.schema, before),
      after: fullJson(spec.schema, written),
    },
    true,
  );
  return written;
}

/** Deletes a row (which the caller locked) and records it. */
export async function deleteRow<D extends DescMessage>(
  tx: WriteTx,
  spec: TableSpec<D>,
  keys: readonly string[],
  before: MessageShape<D>,
): Promise<void> {
  await tx.query(`DELETE FROM ${spec.table} WHERE ${whereKeys(spec.keys)}`, [...keys]);
  tx.record({ kind: spec.kind, resourceName: spec.name(keys), siteId: keys[0]!, before: fullJson(spec.schema, before) });
}

/** Stale etag → ABORTED. An empty etag means "unconditional". */
export function checkEtag(name: string, current: bigint, etag: string | undefined): void {
  if (etag && etag !== etagOf(current)) {
    throw LvsfleetError.aborted(`etag ${etag} of ${name} is stale: the current etag is ${etagOf(current)}; read it again and retry`, name);
  }
}

/** Deletes the rows matching `where` (which the caller selected and locked as `rows`) and records each. */
export async function deleteRows<D extends DescMessage>(
  tx: WriteTx,
  spec: TableSpec<D>,
  rows: readonly MessageShape<D>[],
  where: string,
  values: unknown[],
): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(`DELETE FROM ${spec.table} WHERE ${where}`, values);
  for (const row of rows) {
    const name = (row as unknown as OutputOnly).name;
    tx.record({ kind: spec.kind, resourceName: name, siteId: name.split("/")[1]!, before: fullJson(spec.schema, row) });
  }
}
