/**
 * Many virtual services and their real servers created in ONE write transaction (imports): all or
 * nothing, one revision, one audit row per resource (all with the same operation and reason), the
 * after-write hooks (outbox) once. Reuses the repositories' own pieces inside that transaction —
 * validated() (domain rules over the locked context + uniqueness), syncDirectors(), the real-server
 * columns, insertRow() — so there is no second copy of their SQL.
 *
 * Every violation of every resource is collected first and reported together, each labelled with
 * where the resource came from (e.g. "line 12") on one request field (e.g. `text`): nothing is written
 * unless everything is valid. A concurrent write that takes one of the keys between validation and
 * insert trips a unique index; the whole import then runs again (as a serialization failure), and
 * its validation names the conflicting resources by line.
 */
import type { RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { RealServerSchema, VirtualServiceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { LvsfleetError, type FieldViolation } from "../domain/errors.js";
import { realServerName, siteName, validateId, virtualServiceName } from "../domain/names.js";
import { normalizeRealServer, normalizeVirtualService, validateRealServer } from "../domain/validate.js";
import { withTransaction, type Database, type WriteMeta } from "./db.js";
import { parentMissing } from "./parents.js";
import { mapPgError } from "./pg-errors.js";
import { columns as realServerColumns, destinationPort } from "./real-servers.js";
import { insertRow, lockRow, stamp } from "./rows.js";
import { REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import { syncDirectors, validated as validatedVirtualService, virtualServiceColumns } from "./virtual-services.js";

export interface BulkRealServer {
  id: string;
  realServer: RealServer;
  /** Where it came from, prefixed to its violations, e.g. "line 14". */
  label: string;
}

export interface BulkVirtualService {
  id: string;
  virtualService: VirtualService;
  label: string;
  realServers: BulkRealServer[];
}

export interface BulkOptions {
  /** Validate (with the same locks) and return what would be written; write nothing. */
  validateOnly?: boolean;
  /** The request field every violation is reported on (e.g. "text"). */
  field: string;
}

export interface BulkResult {
  virtualServices: VirtualService[];
  realServers: RealServer[];
  /** The write's revision; 0n for validateOnly. */
  revision: bigint;
}

/** At most this many violations are reported (the rest are counted). */
const MAX_VIOLATIONS = 100;

export async function createBulk(db: Database, meta: WriteMeta, site: string, items: readonly BulkVirtualService[], opts: BulkOptions): Promise<BulkResult> {
  const violations: FieldViolation[] = [];
  let hidden = 0;
  const report = (label: string, v: FieldViolation) => {
    if (violations.length >= MAX_VIOLATIONS) hidden++;
    else violations.push({ field: opts.field, reason: v.reason, description: `${label}: ${v.field ? `${v.field}: ` : ""}${v.description}` });
  };
  try {
    const { result, revision } = await withTransaction(db, meta, async (tx) => {
      if (!(await lockRow(tx, SITE_TABLE, [site], "FOR KEY SHARE"))) throw parentMissing("parent", siteName(site));
      const seen = new Map<string, string>();
      const prepared = [];
      for (const item of items) {
        const name = virtualServiceName(site, item.id);
        const vs = normalizeVirtualService({ ...item.virtualService, name } as VirtualService);
        for (const v of validateId(item.id, "virtual_service_id")) report(item.label, v);
        const before = seen.get(item.id);
        if (before !== undefined) report(item.label, { field: "", reason: "DUPLICATE_VIRTUAL_SERVICE", description: `${name} is also created by ${before}` });
        seen.set(item.id, item.label);
        try {
          for (const v of await validatedVirtualService(tx, site, item.id, vs, undefined)) report(item.label, v);
        } catch (err) {
          if (!(err instanceof LvsfleetError) || err.code !== "ALREADY_EXISTS") throw err;
          report(item.label, { field: "", reason: "ALREADY_EXISTS", description: `${name} already exists` });
        }
        const rsSeen = new Map<string, string>();
        const realServers = item.realServers.map((r) => {
          const rs = normalizeRealServer({ ...r.realServer, name: realServerName(site, item.id, r.id) } as RealServer);
          for (const v of validateId(r.id, "real_server_id")) report(r.label, v);
          for (const v of validateRealServer(rs, { virtualService: vs }, "real_server")) report(r.label, v);
          const key = `${rs.address}/${destinationPort(rs, vs)}`;
          const prev = rsSeen.get(key) ?? rsSeen.get(r.id);
          if (prev !== undefined) report(r.label, { field: "", reason: "DUPLICATE_REAL_SERVER", description: `real server ${rs.address} port ${rs.port} of ${name} is also created by ${prev}` });
          rsSeen.set(key, r.label);
          rsSeen.set(r.id, r.label);
          return { id: r.id, rs };
        });
        prepared.push({ id: item.id, name, vs, realServers });
      }
      if (violations.length > 0) {
        const list = hidden > 0 ? [...violations, { field: opts.field, reason: "TOO_MANY_ERRORS", description: `… and ${hidden} more` }] : violations;
        const total = violations.length + hidden;
        throw LvsfleetError.invalid(list, total === 1 ? `invalid ${opts.field}: ${violations[0]!.description}` : `${total} problems in ${opts.field}, first ${violations[0]!.description}`);
      }
      const out: { virtualServices: VirtualService[]; realServers: RealServer[] } = { virtualServices: [], realServers: [] };
      for (const p of prepared) {
        if (opts.validateOnly) {
          const now = new Date();
          out.virtualServices.push(stamp(VirtualServiceSchema, p.vs, p.name, 0n, now, now));
          for (const r of p.realServers) out.realServers.push(stamp(RealServerSchema, r.rs, realServerName(site, p.id, r.id), 0n, now, now));
          continue;
        }
        try {
          out.virtualServices.push(await insertRow(tx, VIRTUAL_SERVICE_TABLE, [site, p.id], virtualServiceColumns(p.vs), p.vs));
          await syncDirectors(tx, site, p.id, p.vs);
          for (const r of p.realServers) {
            out.realServers.push(await insertRow(tx, REAL_SERVER_TABLE, [site, p.id, r.id], realServerColumns(site, r.rs, p.vs), r.rs));
          }
        } catch (err) {
          // A concurrent write took a key after our validation (unique index = the guarantee): run
          // the whole import again, whose validation then names the line of each conflict.
          if ((err as { code?: unknown }).code === "23505") throw Object.assign(new Error("unique conflict with a concurrent write"), { code: "40001" });
          throw err;
        }
      }
      return out;
    });
    return { ...result, revision };
  } catch (err) {
    throw mapPgError(err, { resourceName: siteName(site) });
  }
}
