import type { Site } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { SiteSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { LvsfleetError, throwIfInvalid, type PreconditionViolation } from "../domain/errors.js";
import { siteName } from "../domain/names.js";
import { applyFieldMask, normalizeSite, validateSite } from "../domain/validate.js";
import { withTransaction, type Database } from "./db.js";
import { mapPgError } from "./pg-errors.js";
import { checkEtag, deleteRows, getRow, listRows, lockRow, selectRows, stamp, updateRow, insertRow } from "./rows.js";
import { FIREWALL_MARK_TABLE, HOST_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import type { CreateOptions, DeleteOptions, ListOptions, Page, Read, UpdateOptions, WriteMeta, Written } from "./types.js";

export class SiteRepository {
  constructor(private readonly db: Database) {}

  get(site: string): Promise<Read<Site>> {
    return getRow(this.db.pool, SITE_TABLE, [site]);
  }

  list(opts: ListOptions): Promise<Page<Site>> {
    return listRows(this.db.pool, SITE_TABLE, { prefix: [], ...opts });
  }

  async create(meta: WriteMeta, siteId: string, input: Site, opts: CreateOptions = {}): Promise<Written<Site>> {
    const name = siteName(siteId);
    const site = normalizeSite({ ...input, name } as Site);
    throwIfInvalid(validateSite(site, "site"));
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        // A taken id fails before a revision is taken (the primary key remains the guarantee).
        if (await lockRow(tx, SITE_TABLE, [siteId], "FOR KEY SHARE")) throw LvsfleetError.alreadyExists(name);
        if (opts.validateOnly) return stamp(SiteSchema, site, name, 0n, new Date(), new Date());
        return insertRow(tx, SITE_TABLE, [siteId], {}, site);
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  async update(meta: WriteMeta, siteId: string, patch: Site, opts: UpdateOptions): Promise<Written<Site>> {
    const name = siteName(siteId);
    const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
      const existing = await lockRow(tx, SITE_TABLE, [siteId], "FOR NO KEY UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, patch.etag);
      const merged = normalizeSite({ ...applyFieldMask(SiteSchema, existing, patch, [...opts.paths], "update_mask.paths"), name } as Site);
      throwIfInvalid(validateSite(merged, "site"));
      if (opts.validateOnly) return merged;
      return updateRow(tx, SITE_TABLE, [siteId], {}, existing, merged);
    });
    return { resource: result, revision };
  }

  /**
   * Deletes a site. With children (hosts, virtual services, firewall marks) it fails with
   * FAILED_PRECONDITION unless `force`, which deletes them all in the same transaction.
   */
  async delete(meta: WriteMeta, siteId: string, opts: DeleteOptions = {}): Promise<{ revision: bigint }> {
    const name = siteName(siteId);
    const { revision } = await withTransaction(this.db, meta, async (tx) => {
      // FOR UPDATE conflicts with the FOR KEY SHARE that a child insert's foreign key check takes:
      // no new child can appear under us.
      const existing = await lockRow(tx, SITE_TABLE, [siteId], "FOR UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, opts.etag);
      const bySite = "site_id = $1";
      // Parent before child, everywhere, so concurrent writers lock in the same order.
      const services = await selectRows(tx, VIRTUAL_SERVICE_TABLE, bySite, [siteId], "FOR UPDATE");
      const hosts = await selectRows(tx, HOST_TABLE, bySite, [siteId], "FOR UPDATE");
      const marks = await selectRows(tx, FIREWALL_MARK_TABLE, bySite, [siteId], "FOR UPDATE");
      if (!opts.force && services.length + hosts.length + marks.length > 0) {
        const violations: PreconditionViolation[] = [...services, ...hosts, ...marks].slice(0, 20).map((c) => ({
          type: "HAS_CHILDREN",
          subject: c.name,
          description: `${c.name} still belongs to ${name}`,
        }));
        throw LvsfleetError.failedPrecondition(
          `${name} still has ${services.length} virtual service(s), ${hosts.length} host(s) and ${marks.length} firewall mark(s); delete them first or set force`,
          violations,
        );
      }
      const realServers = await selectRows(tx, REAL_SERVER_TABLE, bySite, [siteId], "FOR UPDATE");
      await deleteRows(tx, REAL_SERVER_TABLE, realServers, bySite, [siteId]);
      await deleteRows(tx, VIRTUAL_SERVICE_TABLE, services, bySite, [siteId]);
      await deleteRows(tx, FIREWALL_MARK_TABLE, marks, bySite, [siteId]);
      await deleteRows(tx, HOST_TABLE, hosts, bySite, [siteId]);
      await deleteRows(tx, SITE_TABLE, [existing], bySite, [siteId]);
    });
    return { revision };
  }
}
