import type { FirewallMark } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { FirewallMarkSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { LvsfleetError, throwIfInvalid, type PreconditionViolation } from "../domain/errors.js";
import { firewallMarkName, siteName } from "../domain/names.js";
import { applyFieldMask, normalizeFirewallMark, validateFirewallMark } from "../domain/validate.js";
import { withTransaction, type Database } from "./db.js";
import { parentMissing } from "./parents.js";
import { mapPgError } from "./pg-errors.js";
import { checkEtag, deleteRows, getRow, insertRow, listRows, lockRow, selectRows, stamp, updateRow } from "./rows.js";
import { firewallMarkDuplicates } from "./duplicates.js";
import { FIREWALL_MARK_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import type { CreateOptions, DeleteOptions, ListOptions, Page, Read, UpdateOptions, WriteMeta, Written } from "./types.js";

export class FirewallMarkRepository {
  constructor(private readonly db: Database) {}

  get(site: string, fmId: string): Promise<Read<FirewallMark>> {
    return getRow(this.db.pool, FIREWALL_MARK_TABLE, [site, fmId]);
  }

  /** `site` "-" lists the marks of every site. */
  list(site: string, opts: ListOptions): Promise<Page<FirewallMark>> {
    return listRows(this.db.pool, FIREWALL_MARK_TABLE, { prefix: site === "-" ? [] : [site], ...opts });
  }

  async create(meta: WriteMeta, site: string, fmId: string, input: FirewallMark, opts: CreateOptions = {}): Promise<Written<FirewallMark>> {
    const name = firewallMarkName(site, fmId);
    const fm = normalizeFirewallMark({ ...input, name } as FirewallMark);
    throwIfInvalid(validateFirewallMark(fm, "firewall_mark"));
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        if (!(await lockRow(tx, SITE_TABLE, [site], "FOR KEY SHARE"))) throw parentMissing("parent", siteName(site));
        // Also throws ALREADY_EXISTS for a taken id, before a revision is taken.
        throwIfInvalid(await firewallMarkDuplicates(tx, site, fmId, fm, true));
        if (opts.validateOnly) {
          return stamp(FirewallMarkSchema, fm, name, 0n, new Date(), new Date());
        }
        return insertRow(tx, FIREWALL_MARK_TABLE, [site, fmId], { mark: fm.mark }, fm);
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  async update(meta: WriteMeta, site: string, fmId: string, patch: FirewallMark, opts: UpdateOptions): Promise<Written<FirewallMark>> {
    const name = firewallMarkName(site, fmId);
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        const existing = await lockRow(tx, FIREWALL_MARK_TABLE, [site, fmId], "FOR UPDATE");
        if (!existing) throw LvsfleetError.notFound(name);
        checkEtag(name, existing.revision, patch.etag);
        const merged = normalizeFirewallMark({ ...applyFieldMask(FirewallMarkSchema, existing, patch, [...opts.paths], "update_mask.paths"), name } as FirewallMark);
        const violations = validateFirewallMark(merged, "firewall_mark");
        throwIfInvalid(violations.length > 0 ? violations : await firewallMarkDuplicates(tx, site, fmId, merged, false));
        if (merged.mark !== existing.mark) {
          const users = await selectRows(tx, VIRTUAL_SERVICE_TABLE, "site_id = $1 AND fwmark = $2", [site, existing.mark]);
          if (users.length > 0) {
            throw LvsfleetError.failedPrecondition(
              `mark ${existing.mark} of ${name} is used by ${users.length} virtual service(s); it cannot be renumbered while in use`,
              users.slice(0, 20).map((vs) => ({ type: "IN_USE", subject: vs.name, description: `${vs.name} uses fwmark ${existing.mark}` })),
            );
          }
        }
        if (opts.validateOnly) return merged;
        return updateRow(tx, FIREWALL_MARK_TABLE, [site, fmId], { mark: merged.mark }, existing, merged);
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  /**
   * Deletes a mark. A mark used by fwmark virtual services fails with FAILED_PRECONDITION unless
   * `force`, which deletes those services (and their real servers) in the same transaction.
   */
  async delete(meta: WriteMeta, site: string, fmId: string, opts: DeleteOptions = {}): Promise<{ revision: bigint }> {
    const name = firewallMarkName(site, fmId);
    const { revision } = await withTransaction(this.db, meta, async (tx) => {
      const existing = await lockRow(tx, FIREWALL_MARK_TABLE, [site, fmId], "FOR UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, opts.etag);
      const vsWhere = "site_id = $1 AND fwmark = $2";
      const services = await selectRows(tx, VIRTUAL_SERVICE_TABLE, vsWhere, [site, existing.mark], "FOR UPDATE");
      if (!opts.force && services.length > 0) {
        const violations: PreconditionViolation[] = services.slice(0, 20).map((vs) => ({
          type: "IN_USE",
          subject: vs.name,
          description: `${vs.name} is a fwmark service on mark ${existing.mark}`,
        }));
        throw LvsfleetError.failedPrecondition(`${name} is used by ${services.length} virtual service(s); delete them first or set force`, violations);
      }
      const rsWhere = `site_id = $1 AND virtual_service_id IN (SELECT virtual_service_id FROM virtual_services WHERE site_id = $1 AND fwmark = $2)`;
      const realServers = await selectRows(tx, REAL_SERVER_TABLE, rsWhere, [site, existing.mark], "FOR UPDATE");
      await deleteRows(tx, REAL_SERVER_TABLE, realServers, rsWhere, [site, existing.mark]);
      await deleteRows(tx, VIRTUAL_SERVICE_TABLE, services, vsWhere, [site, existing.mark]);
      await deleteRows(tx, FIREWALL_MARK_TABLE, [existing], "site_id = $1 AND firewall_mark_id = $2", [site, fmId]);
    });
    return { revision };
  }
}
