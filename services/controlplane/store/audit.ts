import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AuditEntrySchema, type AuditEntry } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { Database } from "./db.js";
import { decodePageToken, encodePageToken, pageSize } from "./rows.js";
import type { ListOptions } from "./types.js";

export interface AuditFilter {
  /** Only this site's entries. */
  site?: string;
  /** Exact resource name, or every name under it when it ends with "/". */
  resourceName?: string;
}

interface AuditRow {
  id: string;
  revision: string;
  time: Date;
  actor: string;
  operation: string;
  resource_name: string;
  before: JsonObject | null;
  after: JsonObject | null;
  reason: string;
}

/** The append-only audit log, newest first. */
export class AuditRepository {
  constructor(private readonly db: Database) {}

  async list(filter: AuditFilter, opts: ListOptions): Promise<{ items: AuditEntry[]; nextPageToken: string }> {
    const size = pageSize(opts.pageSize);
    const conds: string[] = [];
    const values: unknown[] = [];
    const add = (sql: (p: string) => string, v: unknown) => {
      values.push(v);
      conds.push(sql(`$${values.length}`));
    };
    if (filter.site) add((p) => `site_id = ${p}`, filter.site);
    if (filter.resourceName) {
      if (filter.resourceName.endsWith("/")) {
        // LIKE with the prefix escaped; served by the text_pattern_ops index.
        add((p) => `resource_name LIKE ${p} ESCAPE '\\'`, `${filter.resourceName.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      } else {
        add((p) => `resource_name = ${p}`, filter.resourceName);
      }
    }
    if (opts.pageToken) {
      const [rev, id] = decodePageToken(opts.pageToken, 2);
      if (!/^\d+$/.test(rev!) || !/^\d+$/.test(id!)) decodePageToken("!", 2);
      values.push(rev, id);
      conds.push(`(revision, id) < ($${values.length - 1}::bigint, $${values.length}::bigint)`);
    }
    values.push(size + 1);
    const r = await this.db.pool.query<AuditRow>(
      `SELECT id::text AS id, revision::text AS revision, time, actor, operation, resource_name, before, after, reason
         FROM audit_log ${conds.length ? `WHERE ${conds.join(" AND ")}` : ""}
        ORDER BY audit_log.revision DESC, audit_log.id DESC LIMIT $${values.length}`,
      values,
    );
    const more = r.rows.length > size;
    const rows = more ? r.rows.slice(0, size) : r.rows;
    const last = rows[rows.length - 1];
    return {
      items: rows.map((row) =>
        create(AuditEntrySchema, {
          revision: BigInt(row.revision),
          time: timestampFromDate(row.time),
          actor: row.actor,
          operation: row.operation,
          resourceName: row.resource_name,
          before: row.before ?? undefined,
          after: row.after ?? undefined,
          reason: row.reason,
        }),
      ),
      nextPageToken: more && last ? encodePageToken([last.revision, last.id]) : "",
    };
  }
}
