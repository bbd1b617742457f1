import type { Host, RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { RealServerSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { LvsfleetError, throwIfInvalid } from "../domain/errors.js";
import { checkHostName, realServerName, virtualServiceName } from "../domain/names.js";
import { applyFieldMask, normalizeRealServer, validateRealServer } from "../domain/validate.js";
import { withTransaction, type Database, type WriteTx } from "./db.js";
import { parentMissing } from "./parents.js";
import { mapPgError } from "./pg-errors.js";
import { checkEtag, deleteRows, getRow, insertRow, listRows, lockRow, stamp, updateRow } from "./rows.js";
import { realServerDuplicates } from "./duplicates.js";
import { HOST_TABLE, REAL_SERVER_TABLE, VIRTUAL_SERVICE_TABLE } from "./specs.js";
import type { CreateOptions, DeleteOptions, ListOptions, Page, Read, UpdateOptions, WriteMeta, Written } from "./types.js";

/** Host id of `rs.host` when it names a host of `site`; anything else is left to validation. */
function hostId(site: string, rs: RealServer): string | undefined {
  if (!rs.host) return undefined;
  const r = checkHostName(rs.host, "");
  return "host" in r && r.site === site ? r.host : undefined;
}

/**
 * The IPVS destination port, which the unique index keys on: port 0 means "the service's port"
 * (ipvsadm -r without :port), so 0 and the service port are the same destination.
 */
export function destinationPort(rs: RealServer, vs?: VirtualService): number {
  return rs.port === 0 && vs ? vs.port : rs.port;
}

export function columns(site: string, rs: RealServer, vs?: VirtualService): Record<string, unknown> {
  return { address: rs.address, port: destinationPort(rs, vs), host_id: hostId(site, rs) ?? null };
}

/**
 * Context for validateRealServer, locked FOR KEY SHARE (see rows.ts, "Locking"): the service (its
 * port, family and scheduler cannot change until we commit — service updates take FOR UPDATE) and
 * the host.
 */
async function loadContext(
  tx: WriteTx,
  site: string,
  vsId: string,
  rs: RealServer,
): Promise<{ virtualService: VirtualService | undefined; host: Host | undefined }> {
  const virtualService = await lockRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], "FOR KEY SHARE");
  const h = hostId(site, rs);
  const host = h ? await lockRow(tx, HOST_TABLE, [site, h], "FOR KEY SHARE") : undefined;
  return { virtualService, host };
}

export class RealServerRepository {
  constructor(private readonly db: Database) {}

  get(site: string, vsId: string, rsId: string): Promise<Read<RealServer>> {
    return getRow(this.db.pool, REAL_SERVER_TABLE, [site, vsId, rsId]);
  }

  /** Lists the real servers of one virtual service; `site` "-" with `vsId` "-" lists all. */
  list(site: string, vsId: string, opts: ListOptions): Promise<Page<RealServer>> {
    const prefix = site === "-" ? [] : vsId === "-" ? [site] : [site, vsId];
    return listRows(this.db.pool, REAL_SERVER_TABLE, { prefix, ...opts });
  }

  async create(meta: WriteMeta, site: string, vsId: string, rsId: string, input: RealServer, opts: CreateOptions = {}): Promise<Written<RealServer>> {
    const name = realServerName(site, vsId, rsId);
    const rs = normalizeRealServer({ ...input, name } as RealServer);
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        const ctx = await loadContext(tx, site, vsId, rs);
        if (!ctx.virtualService) throw parentMissing("parent", virtualServiceName(site, vsId));
        throwIfInvalid(validateRealServer(rs, { virtualService: ctx.virtualService, host: ctx.host }, "real_server"));
        // The duplicate lookup (address:port or id taken → INVALID_ARGUMENT / ALREADY_EXISTS) runs
        // only for validate_only or after the insert hit a unique index: creating real servers is
        // the hot write path (thousands per service), so the common case is one statement.
        const duplicates = async (): Promise<never> => {
          throwIfInvalid(await realServerDuplicates(tx, site, vsId, rsId, rs, true, destinationPort(rs, ctx.virtualService)));
          // The conflicting row is gone again (deleted concurrently): run the transaction again.
          throw Object.assign(new Error("unique conflict vanished"), { code: "40001" });
        };
        if (opts.validateOnly) {
          throwIfInvalid(await realServerDuplicates(tx, site, vsId, rsId, rs, true, destinationPort(rs, ctx.virtualService)));
          return stamp(RealServerSchema, rs, name, 0n, new Date(), new Date());
        }
        return insertRow(tx, REAL_SERVER_TABLE, [site, vsId, rsId], columns(site, rs, ctx.virtualService), rs, duplicates);
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  async update(meta: WriteMeta, site: string, vsId: string, rsId: string, patch: RealServer, opts: UpdateOptions): Promise<Written<RealServer>> {
    const name = realServerName(site, vsId, rsId);
    try {
      const { result, revision } = await withTransaction(this.db, meta, async (tx) => {
        // Parent first, then the row: the same order as creates and service updates.
        const virtualService = await lockRow(tx, VIRTUAL_SERVICE_TABLE, [site, vsId], "FOR KEY SHARE");
        const existing = virtualService ? await lockRow(tx, REAL_SERVER_TABLE, [site, vsId, rsId], "FOR UPDATE") : undefined;
        if (!existing || !virtualService) throw LvsfleetError.notFound(name);
        checkEtag(name, existing.revision, patch.etag);
        const merged = normalizeRealServer({ ...applyFieldMask(RealServerSchema, existing, patch, [...opts.paths], "update_mask.paths"), name } as RealServer);
        const h = hostId(site, merged);
        const host = h ? await lockRow(tx, HOST_TABLE, [site, h], "FOR KEY SHARE") : undefined;
        const violations = validateRealServer(merged, { virtualService, host }, "real_server");
        throwIfInvalid(violations.length > 0 ? violations : await realServerDuplicates(tx, site, vsId, rsId, merged, false, destinationPort(merged, virtualService)));
        if (opts.validateOnly) return merged;
        return updateRow(tx, REAL_SERVER_TABLE, [site, vsId, rsId], columns(site, merged, virtualService), existing, merged);
      });
      return { resource: result, revision };
    } catch (err) {
      throw mapPgError(err, { resourceName: name });
    }
  }

  async delete(meta: WriteMeta, site: string, vsId: string, rsId: string, opts: DeleteOptions = {}): Promise<{ revision: bigint }> {
    const name = realServerName(site, vsId, rsId);
    const { revision } = await withTransaction(this.db, meta, async (tx) => {
      const existing = await lockRow(tx, REAL_SERVER_TABLE, [site, vsId, rsId], "FOR UPDATE");
      if (!existing) throw LvsfleetError.notFound(name);
      checkEtag(name, existing.revision, opts.etag);
      await deleteRows(tx, REAL_SERVER_TABLE, [existing], "site_id = $1 AND virtual_service_id = $2 AND real_server_id = $3", [site, vsId, rsId]);
    });
    return { revision };
  }
}
