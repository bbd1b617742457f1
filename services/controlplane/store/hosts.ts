import type { Host, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { HostSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { HostRole } from "../../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError, throwIfInvalid, type FieldViolation, type PreconditionViolation } from "../domain/errors.js";
import { hostName, siteName } from "../domain/names.js";
import { applyFieldMask, normalizeHost, validateHost } from "../domain/validate.js";
import { withTransaction, type Database, type WriteTx } from "./db.js";
import { mapPgError } from "./pg-errors.js";
import { checkEtag, deleteRows, getRow, insertRow, listRows, lockRow, selectRows, stamp, updateRow } from "./rows.js";
import { HOST_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import type { CreateOptions, DeleteOptions, ListOptions, Page, Read, UpdateOptions, WriteMeta, Written } from "./types.js";
import { parentMissing } from "./parents.js";
import { virtualServiceColumns } from "./virtual-services.js";

export class HostRepository {
  constructor(private readonly db: Database) {}

  get(site: string, host: string): Promise<Read<Host>> {
    return getRow(this.db.pool, HOST_TABLE, [site, host]);
  }

  /** `site` "-" lists the hosts of every site. */
  list(site: string, opts: ListOptions): Promise<Page<Host>> {
    return listRows(this.db.pool, HOST_TABLE, { prefix: site === "-" ? [] : [site], ...opts });
  }

  async create(meta: WriteMeta, site: string, hostId: string, input: Host, opts: CreateOptions = {}): Promise<Written<Host>> {
    const name = hostName(site, hostId);
    const host = normalizeHost({ ...input, name } as Host);
    throwIfInvalid(validateHost(host, "host"));
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        // FOR KEY SHARE: the site must exist and must not be deleted before we commit.
        if (!(await lockRow(tx, SITE_TABLE, [site], "FOR KEY SHARE"))) throw parentMissing("parent", siteName(site));
        // A taken id fails before a revision is taken (the primary key remains the guarantee).
        if (await lockRow(tx, HOST_TABLE, [site, hostId], "FOR KEY SHARE")) throw LvsfleetError.alreadyExists(name);
        if (opts.validateOnly) {
          return stamp(HostSchema, host, name, 0n, new Date(), new Date());
        }
        return insertRow(tx, HOST_TABLE, [site, hostId], {}, host);
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  async update(meta: WriteMeta, site: string, hostId: string, patch: Host, opts: UpdateOptions): Promise<Written<Host>> {
    const name = hostName(site, hostId);
    const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
      // FOR UPDATE (not NO KEY): it must conflict with the FOR KEY SHARE that virtual-service and
      // real-server writes hold on the hosts they validate against (see rows.ts, "Locking").
      const existing = await lockRow(tx, HOST_TABLE, [site, hostId], "FOR UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, patch.etag);
      const merged = normalizeHost({ ...applyFieldMask(HostSchema, existing, patch, [...opts.paths], "update_mask.paths"), name } as Host);
      const violations: FieldViolation[] = validateHost(merged, "host");
      // A Director of a virtual service must keep the DIRECTOR role.
      if (!merged.roles.includes(HostRole.DIRECTOR)) {
        const uses = await directorOf(tx, site, hostId);
        if (uses.length > 0) {
          violations.push({
            field: "host.roles",
            reason: "DIRECTOR_ROLE_IN_USE",
            description: `the host is a Director of ${uses.slice(0, 5).join(", ")}${uses.length > 5 ? ", …" : ""}; remove it there first`,
          });
        }
      }
      // The host of a real server must keep the REAL_SERVER role.
      if (!merged.roles.includes(HostRole.REAL_SERVER)) {
        const r = await tx.query<{ name: string }>(
          `SELECT resource->>'name' AS name FROM real_servers WHERE site_id = $1 AND host_id = $2 ORDER BY 1 LIMIT 6`,
          [site, hostId],
        );
        if (r.rows.length > 0) {
          const uses = r.rows.map((row) => row.name);
          violations.push({
            field: "host.roles",
            reason: "REAL_SERVER_ROLE_IN_USE",
            description: `the host is the host of ${uses.slice(0, 5).join(", ")}${uses.length > 5 ? ", …" : ""}; remove it there first`,
          });
        }
      }
      throwIfInvalid(violations);
      if (opts.validateOnly) return merged;
      return updateRow(tx, HOST_TABLE, [site, hostId], {}, existing, merged);
    });
    return { resource: result, revision };
  }

  /**
   * Deletes a host. A host still referenced (a Director of a virtual service, or the host of a real
   * server) fails with FAILED_PRECONDITION unless `force`, which removes it from those services'
   * directors and deletes those real servers, in the same transaction.
   */
  async delete(meta: WriteMeta, site: string, hostId: string, opts: DeleteOptions = {}): Promise<{ revision: bigint }> {
    const name = hostName(site, hostId);
    const { revision } = await withTransaction(this.db, meta, async (tx) => {
      const existing = await lockRow(tx, HOST_TABLE, [site, hostId], "FOR UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, opts.etag);
      const services = await selectRows(
        tx,
        VIRTUAL_SERVICE_TABLE,
        `site_id = $1 AND virtual_service_id IN (SELECT virtual_service_id FROM virtual_service_directors WHERE site_id = $1 AND host_id = $2)`,
        [site, hostId],
        "FOR UPDATE",
      );
      const rsWhere = "site_id = $1 AND host_id = $2";
      const realServers = await selectRows(tx, REAL_SERVER_TABLE, rsWhere, [site, hostId], "FOR UPDATE");
      if (!opts.force && services.length + realServers.length > 0) {
        const violations: PreconditionViolation[] = [
          ...services.map((vs) => ({ type: "IN_USE", subject: vs.name, description: `${name} is a Director of ${vs.name}` })),
          ...realServers.map((rs) => ({ type: "IN_USE", subject: rs.name, description: `${name} is the host of ${rs.name}` })),
        ].slice(0, 20);
        throw LvsfleetError.failedPrecondition(
          `${name} is a Director of ${services.length} virtual service(s) and the host of ${realServers.length} real server(s); remove those references first or set force`,
          violations,
        );
      }
      for (const vs of services) {
        const vsId = vs.name.split("/")[3]!;
        const updated: VirtualService = { ...vs, directors: vs.directors.filter((d) => d !== name) };
        await updateRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], virtualServiceColumns(updated), vs, updated);
      }
      await tx.query("DELETE FROM virtual_service_directors WHERE site_id = $1 AND host_id = $2", [site, hostId]);
      await deleteRows(tx, REAL_SERVER_TABLE, realServers, rsWhere, [site, hostId]);
      await deleteRows(tx, HOST_TABLE, [existing], "site_id = $1 AND host_id = $2", [site, hostId]);
    });
    return { revision };
  }
}

/** Names of the virtual services that have this host as a Director. */
async function directorOf(tx: WriteTx, site: string, hostId: string): Promise<string[]> {
  const r = await tx.query<{ vs: string }>(
    "SELECT virtual_service_id AS vs FROM virtual_service_directors WHERE site_id = $1 AND host_id = $2 ORDER BY 1",
    [site, hostId],
  );
  return r.rows.map((row) => `${siteName(site)}/virtualServices/${row.vs}`);
}
