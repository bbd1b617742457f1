import type { FirewallMark, Host, RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { VirtualServiceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { LvsfleetError, throwIfInvalid, type FieldViolation, type PreconditionViolation } from "../domain/errors.js";
import { checkHostName, siteName, virtualServiceName } from "../domain/names.js";
import { applyFieldMask, normalizeVirtualService, validateVirtualService } from "../domain/validate.js";
import { withTransaction, type Database, type WriteTx } from "./db.js";
import { parentMissing } from "./parents.js";
import { mapPgError } from "./pg-errors.js";
import { checkEtag, deleteRows, getRow, insertRow, listRows, lockRow, selectRows, stamp, updateRow } from "./rows.js";
import { virtualServiceDuplicates } from "./duplicates.js";
import { FIREWALL_MARK_TABLE, HOST_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import type { CreateOptions, DeleteOptions, ListOptions, Page, Read, UpdateOptions, WriteMeta, Written } from "./types.js";

/** The key columns the database constrains (unique VIP+protocol+port, unique fwmark, mark FK). */
export function virtualServiceColumns(vs: VirtualService): Record<string, unknown> {
  const fwmark = vs.fwmark !== 0;
  return {
    protocol: fwmark ? 0 : vs.protocol,
    address: fwmark || vs.address === "" ? null : vs.address,
    port: fwmark ? 0 : vs.port,
    fwmark: fwmark ? vs.fwmark : null,
    address_family: vs.addressFamily,
  };
}

/** Host ids (in `site`) named by `directors`; names elsewhere are left to validation. */
function directorIds(site: string, directors: readonly string[]): string[] {
  const ids = new Set<string>();
  for (const d of directors) {
    const r = checkHostName(d, "");
    if ("host" in r && r.site === site) ids.add(r.host);
  }
  return [...ids];
}

/**
 * Loads what validateVirtualService needs, with locks so the facts cannot change before COMMIT:
 * the site's firewall marks (FOR KEY SHARE: a mark cannot be deleted or renumbered), the Director
 * hosts (FOR KEY SHARE: their roles cannot change, host updates take FOR UPDATE) and the service's
 * real servers (stable because the caller holds the service's row lock FOR UPDATE, which conflicts
 * with the FOR KEY SHARE every real-server write takes on its service first).
 */
async function loadContext(
  tx: WriteTx,
  site: string,
  vsId: string | undefined,
  vs: VirtualService,
): Promise<{ firewallMarks: FirewallMark[]; hosts: Host[]; realServers: RealServer[] }> {
  const firewallMarks = vs.fwmark !== 0 ? await selectRows(tx, FIREWALL_MARK_TABLE, "site_id = $1 AND mark = $2", [site, vs.fwmark], "FOR KEY SHARE") : [];
  const ids = directorIds(site, vs.directors);
  const hosts = ids.length > 0 ? await selectRows(tx, HOST_TABLE, "site_id = $1 AND host_id = ANY($2::text[])", [site, ids], "FOR KEY SHARE") : [];
  const realServers = vsId ? await selectRows(tx, REAL_SERVER_TABLE, "site_id = $1 AND virtual_service_id = $2", [site, vsId]) : [];
  return { firewallMarks, hosts, realServers };
}

/** Every violation: the domain rules over the locked context, then (if those pass) uniqueness. */
export async function validated(tx: WriteTx, site: string, vsId: string, vs: VirtualService, existingId: string | undefined): Promise<FieldViolation[]> {
  const violations = validateVirtualService(vs, await loadContext(tx, site, existingId, vs), "virtual_service");
  return violations.length > 0 ? violations : virtualServiceDuplicates(tx, site, vsId, vs, existingId === undefined);
}

export async function syncDirectors(tx: WriteTx, site: string, vsId: string, vs: VirtualService): Promise<void> {
  const ids = directorIds(site, vs.directors);
  await tx.query(
    `WITH gone AS (
       DELETE FROM virtual_service_directors
        WHERE site_id = $1 AND virtual_service_id = $2 AND NOT (host_id = ANY($3::text[])))
     INSERT INTO virtual_service_directors (site_id, virtual_service_id, host_id)
     SELECT $1, $2, h FROM unnest($3::text[]) AS h
     ON CONFLICT DO NOTHING`,
    [site, vsId, ids],
  );
}

/**
 * Real servers with port 0 use the service's port, so their destination key moves with it. Refuses a
 * port under which one of them would collide with a real server that names that port explicitly.
 * (Inside the transaction, under the service's FOR UPDATE lock; on validate_only it rolls back.)
 */
async function followServicePort(tx: WriteTx, site: string, vsId: string, port: number): Promise<void> {
  const clash = await tx.query<{ a: string; b: string; address: string }>(
    `SELECT a.real_server_id AS a, b.real_server_id AS b, host(a.address) AS address
       FROM real_servers a
       JOIN real_servers b ON b.site_id = a.site_id AND b.virtual_service_id = a.virtual_service_id
                          AND b.address = a.address AND b.real_server_id <> a.real_server_id AND b.port = $3
      WHERE a.site_id = $1 AND a.virtual_service_id = $2 AND coalesce((a.resource->>'port')::int, 0) = 0
      LIMIT 1`,
    [site, vsId, port],
  );
  const c = clash.rows[0];
  if (c) {
    throwIfInvalid([
      {
        field: "virtual_service.port",
        reason: "DUPLICATE_REAL_SERVER",
        description: `real servers ${c.a} (port 0 = the service port) and ${c.b} would both be ${c.address} port ${port}`,
      },
    ]);
  }
  await tx.query(
    `UPDATE real_servers SET port = $3
      WHERE site_id = $1 AND virtual_service_id = $2 AND coalesce((resource->>'port')::int, 0) = 0`,
    [site, vsId, port],
  );
}

export class VirtualServiceRepository {
  constructor(private readonly db: Database) {}

  get(site: string, vsId: string): Promise<Read<VirtualService>> {
    return getRow(this.db.pool, VIRTUAL_SERVICE_TABLE, [site, vsId]);
  }

  /** `site` "-" lists the services of every site. */
  list(site: string, opts: ListOptions): Promise<Page<VirtualService>> {
    return listRows(this.db.pool, VIRTUAL_SERVICE_TABLE, { prefix: site === "-" ? [] : [site], ...opts });
  }

  async create(meta: WriteMeta, site: string, vsId: string, input: VirtualService, opts: CreateOptions = {}): Promise<Written<VirtualService>> {
    const name = virtualServiceName(site, vsId);
    const vs = normalizeVirtualService({ ...input, name } as VirtualService);
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        if (!(await lockRow(tx, SITE_TABLE, [site], "FOR KEY SHARE"))) throw parentMissing("parent", siteName(site));
        throwIfInvalid(await validated(tx, site, vsId, vs, undefined));
        // (validated() also threw ALREADY_EXISTS for a taken id.)
        if (opts.validateOnly) {
          return stamp(VirtualServiceSchema, vs, name, 0n, new Date(), new Date());
        }
        const written = await insertRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], virtualServiceColumns(vs), vs);
        await syncDirectors(tx, site, vsId, vs);
        return written;
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  async update(meta: WriteMeta, site: string, vsId: string, patch: VirtualService, opts: UpdateOptions): Promise<Written<VirtualService>> {
    const name = virtualServiceName(site, vsId);
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        // FOR UPDATE conflicts with the FOR KEY SHARE every real-server write takes on its service first.
        const existing = await lockRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], "FOR UPDATE");
        if (!existing) throw LvsfleetError.notFound(name);
        checkEtag(name, existing.revision, patch.etag);
        const merged = normalizeVirtualService({
          ...applyFieldMask(VirtualServiceSchema, existing, patch, [...opts.paths], "update_mask.paths"),
          name,
        } as VirtualService);
        throwIfInvalid(await validated(tx, site, vsId, merged, vsId));
        if (merged.port !== existing.port) await followServicePort(tx, site, vsId, merged.port);
        if (opts.validateOnly) return merged;
        const written = await updateRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], virtualServiceColumns(merged), existing, merged);
        await syncDirectors(tx, site, vsId, merged);
        return written;
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  /** Deletes a service; with real servers FAILED_PRECONDITION unless `force`, which deletes them too. */
  async delete(meta: WriteMeta, site: string, vsId: string, opts: DeleteOptions = {}): Promise<{ revision: bigint }> {
    const name = virtualServiceName(site, vsId);
    const { revision } = await withTransaction(this.db, meta, async (tx) => {
      const existing = await lockRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], "FOR UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, opts.etag);
      const where = "site_id = $1 AND virtual_service_id = $2";
      const realServers = await selectRows(tx, REAL_SERVER_TABLE, where, [site, vsId], "FOR UPDATE");
      if (!opts.force && realServers.length > 0) {
        const violations: PreconditionViolation[] = realServers.slice(0, 20).map((rs) => ({
          type: "HAS_CHILDREN",
          subject: rs.name,
          description: `${rs.name} still belongs to ${name}`,
        }));
        throw LvsfleetError.failedPrecondition(`${name} still has ${realServers.length} real server(s); delete them first or set force`, violations);
      }
      await deleteRows(tx, REAL_SERVER_TABLE, realServers, where, [site, vsId]);
      // Director rows go with ON DELETE CASCADE.
      await deleteRows(tx, VIRTUAL_SERVICE_TABLE, [existing], where, [site, vsId]);
    });
    return { revision };
  }
}
