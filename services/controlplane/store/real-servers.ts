import type { Host, RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { RealServerSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { LvsfleetError, throwIfInvalid } from "../domain/errors.js";
import { checkHostName, hostName, realServerName, virtualServiceName } from "../domain/names.js";
import { applyFieldMask, normalizeRealServer, validateRealServer } from "../domain/validate.js";
import { commitUncertain, withTransaction, withWriteGroup, type Database, type GroupTx, type WriteTx } from "./db.js";
import { GroupQueue, type Outcome } from "./group-commit.js";
import { parentMissing } from "./parents.js";
import { mapPgError } from "./pg-errors.js";
import { auditJson, checkEtag, deleteRows, etagOf, getRow, insertRow, listRows, lockRow, selectRows, stamp, storedJson, updateRow } from "./rows.js";
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

/** A create waiting for its group (group-commit.ts). */
interface PendingCreate {
  meta: WriteMeta;
  site: string;
  vsId: string;
  rsId: string;
  name: string;
  rs: RealServer;
}

export class RealServerRepository {
  /**
   * Creating real servers is the hot write path (thousands per service, many callers at once):
   * concurrent creates share a transaction (group commit, createGroup).
   */
  readonly group: GroupQueue<PendingCreate, Written<RealServer>>;

  constructor(private readonly db: Database) {
    this.group = new GroupQueue((items) => this.createGroup(items), {
      get max() {
        return db.groupCommitMax;
      },
    });
  }

  get(site: string, vsId: string, rsId: string): Promise<Read<RealServer>> {
    return getRow(this.db.pool, REAL_SERVER_TABLE, [site, vsId, rsId]);
  }

  /** Lists the real servers of one virtual service; `site` "-" with `vsId` "-" lists all. */
  list(site: string, vsId: string, opts: ListOptions): Promise<Page<RealServer>> {
    const prefix = site === "-" ? [] : vsId === "-" ? [site] : [site, vsId];
    return listRows(this.db.pool, REAL_SERVER_TABLE, { prefix, ...opts });
  }

  /**
   * Creates a real server: in a group with concurrent creates (one transaction, each its own revision
   * and audit row) unless group commit is off, the call asks for validate_only, or the caller's async
   * context must see its own transaction (Database.isolated).
   */
  create(meta: WriteMeta, site: string, vsId: string, rsId: string, input: RealServer, opts: CreateOptions = {}): Promise<Written<RealServer>> {
    const name = realServerName(site, vsId, rsId);
    const rs = normalizeRealServer({ ...input, name } as RealServer);
    if (!opts.validateOnly && this.db.groupCommitMax > 1 && !this.db.isolated.some((f) => f())) {
      return this.group.submit(site, { meta, site, vsId, rsId, name, rs });
    }
    return this.createAlone({ meta, site, vsId, rsId, name, rs }, opts);
  }

  /** One create in its own transaction: lock the parent, validate, insert (row + audit row), hooks, COMMIT. */
  private async createAlone(p: PendingCreate, opts: CreateOptions = {}): Promise<Written<RealServer>> {
    const { meta, site, vsId, rsId, name, rs } = p;
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

  /**
   * Group commit of concurrent creates, three round trips for the whole group:
   *   1. BEGIN; now(); the parent services (and hosts) of every create, FOR KEY SHARE, in key order —
   *      parents before their destinations, as on the single path; then each create is validated.
   *   2. One INSERT … ON CONFLICT DO NOTHING of every valid row, with a nextval (own revision) and an
   *      audit row each (data-modifying CTEs), in name order (two groups lock keys in one order).
   *   3. The hooks (site locks, outbox rows: one statement for the group) + COMMIT + NOTIFYs.
   * A create whose row hit a unique index, or that repeats a key of the group, runs again alone after
   * the group (createAlone gives the exact ALREADY_EXISTS / duplicate error, or succeeds if the other
   * row went away). If the group fails as a whole before COMMIT (nothing committed), every create runs
   * alone: a failure belongs to the write that caused it, never to its neighbours. If COMMIT itself
   * failed, the outcome is unknown and every create of the group gets that error, as it would alone.
   */
  private async createGroup(items: readonly PendingCreate[]): Promise<Outcome<Written<RealServer>>[]> {
    if (items.length === 1) return [await settle(this.createAlone(items[0]!))];
    const out: Array<Outcome<Written<RealServer>> | undefined> = [];
    let alone: number[] = [];
    try {
      await withWriteGroup(this.db, async (tx) => {
        out.length = 0;
        out.length = items.length;
        alone = [];
        await this.writeGroup(tx, items, out, alone);
      });
    } catch (err) {
      // COMMIT was sent and failed: the outcome is unknown, and so it is for every write of the group.
      if (commitUncertain(err)) return items.map((p) => ({ err: mapPgError(err, { resourceName: p.name }) }));
      alone = items.map((_, i) => i);
    }
    await Promise.all(alone.map(async (i) => (out[i] = await settle(this.createAlone(items[i]!)))));
    return out.map((o) => o ?? { err: new Error("group commit lost a write") });
  }

  private async writeGroup(tx: GroupTx, items: readonly PendingCreate[], out: Array<Outcome<Written<RealServer>> | undefined>, alone: number[]): Promise<void> {
    // 1. Parents, locked in key order (selectRows orders by the table's keys).
    const parents = [...new Map(items.map((p) => [virtualServiceName(p.site, p.vsId), p])).values()];
    const vsRows = await selectRows(tx, VIRTUAL_SERVICE_TABLE, "(site_id, virtual_service_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))", [parents.map((p) => p.site), parents.map((p) => p.vsId)], "FOR KEY SHARE");
    const services = new Map(vsRows.map((vs) => [vs.name, vs]));
    const hostKeys = new Map<string, readonly [string, string]>();
    for (const p of items) {
      const h = hostId(p.site, p.rs);
      if (h !== undefined) hostKeys.set(hostName(p.site, h), [p.site, h]);
    }
    const hosts = new Map<string, Host>();
    if (hostKeys.size > 0) {
      const keys = [...hostKeys.values()];
      const rows = await selectRows(tx, HOST_TABLE, "(site_id, host_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))", [keys.map((k) => k[0]), keys.map((k) => k[1])], "FOR KEY SHARE");
      for (const host of rows) hosts.set(host.name, host);
    }
    // Validation, as on the single path; a create that fails it fails alone.
    const ready: Array<{ i: number; p: PendingCreate; vs: VirtualService }> = [];
    const seen = new Set<string>();
    items.forEach((p, i) => {
      const vs = services.get(virtualServiceName(p.site, p.vsId));
      try {
        if (!vs) throw parentMissing("parent", virtualServiceName(p.site, p.vsId));
        const h = hostId(p.site, p.rs);
        throwIfInvalid(validateRealServer(p.rs, { virtualService: vs, host: h === undefined ? undefined : hosts.get(hostName(p.site, h)) }, "real_server"));
      } catch (err) {
        out[i] = { err: mapPgError(err, { resourceName: p.name }) };
        return;
      }
      // The same id twice in one group: the second runs alone after it (→ ALREADY_EXISTS).
      if (seen.has(p.name)) alone.push(i);
      else {
        seen.add(p.name);
        ready.push({ i, p, vs });
      }
    });
    if (ready.length === 0) return;
    // Rows in one order (by name) in every group: two groups never wait on each other's keys crosswise.
    ready.sort((a, b) => cmp(a.p.name, b.p.name));
    // 2. Rows and audit rows.
    const now = await tx.now();
    const audit = ready.map((x) => auditJson(RealServerSchema, x.p.rs, x.p.name, now, now));
    const r = await tx.query<{ i: number; revision: string }>(
      `WITH v AS (
         SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::inet[], $6::int[], $7::text[],
                              $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
           AS u(i, site_id, virtual_service_id, real_server_id, address, port, host_id, resource, after, actor, operation, reason, name)
       ), ins AS (
         INSERT INTO real_servers (site_id, virtual_service_id, real_server_id, address, port, host_id, resource, revision, create_time, update_time)
         SELECT site_id, virtual_service_id, real_server_id, address, port, host_id, resource::jsonb, nextval('revision_seq'), now(), now() FROM v
         ON CONFLICT DO NOTHING
         RETURNING site_id, virtual_service_id, real_server_id, revision
       ), aud AS (
         INSERT INTO audit_log (revision, actor, operation, reason, resource_name, site_id, before, after)
         SELECT ins.revision, v.actor, v.operation, v.reason, v.name, v.site_id, NULL::jsonb,
                v.after::jsonb || jsonb_build_object('revision', ins.revision::text, 'etag', '"' || ins.revision::text || '"')
           FROM ins JOIN v USING (site_id, virtual_service_id, real_server_id)
       )
       SELECT v.i, ins.revision::text AS revision FROM ins JOIN v USING (site_id, virtual_service_id, real_server_id)`,
      [
        ready.map((x) => x.i),
        ready.map((x) => x.p.site),
        ready.map((x) => x.p.vsId),
        ready.map((x) => x.p.rsId),
        ready.map((x) => x.p.rs.address),
        ready.map((x) => destinationPort(x.p.rs, x.vs)),
        ready.map((x) => hostId(x.p.site, x.p.rs) ?? null),
        ready.map((x) => JSON.stringify(storedJson(RealServerSchema, x.p.rs))),
        audit.map((a) => JSON.stringify(a)),
        ready.map((x) => x.p.meta.actor),
        ready.map((x) => x.p.meta.operation),
        ready.map((x) => x.p.meta.reason ?? ""),
        ready.map((x) => x.p.name),
      ],
    );
    const revisions = new Map(r.rows.map((row) => [row.i, BigInt(row.revision)]));
    ready.forEach((x, j) => {
      const revision = revisions.get(x.i);
      // Not inserted: its id or address:port is taken (by a committed row or one of this group).
      if (revision === undefined) return void alone.push(x.i);
      const resource = stamp(RealServerSchema, x.p.rs, x.p.name, revision, now, now);
      out[x.i] = { ok: { resource, revision } };
      tx.commitWrite({
        revision,
        meta: x.p.meta,
        changes: [{ kind: "realServer", resourceName: x.p.name, siteId: x.p.site, after: { ...audit[j]!, revision: revision.toString(), etag: etagOf(revision) } }],
      });
    });
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

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function settle<O>(p: Promise<O>): Promise<Outcome<O>> {
  try {
    return { ok: await p };
  } catch (err) {
    return { err };
  }
}
