/**
 * PlanChange: what one write would do to the kernel of each host of its site, and apply-if-unchanged.
 *
 * How (the store runs every write in a transaction of its own, so a handler cannot run inside a
 * caller's transaction):
 *  1. One REPEATABLE READ, READ ONLY transaction reads the site's revision (max audit revision of the
 *     site) and its whole topology (relay/topology.ts) — the "before" and the plan's `revision`.
 *  2. The "after" resource comes from the normal write handler run with validate_only (creates and
 *     updates): the same name parsing, field-mask merge, normalisation and validation as the real
 *     write, nothing written. Deletes are applied to the copy directly (with the same NOT_FOUND /
 *     HAS_CHILDREN checks the store makes). The after-topology is the before one with that resource
 *     replaced, added or removed; compileSite on both, diffed per host (plan/).
 *  3. With `apply`: `expected_revision` must equal the revision read in 1 (else ABORTED, nothing
 *     written), then the same request goes through the normal write handler (its own audit entry and
 *     operation name) and its revision is returned. The check is made again inside the write's own
 *     transaction, before COMMIT (a store after-write hook, scoped to this call by
 *     AsyncLocalStorage): a write to the site that committed after the read of 1 aborts it (ABORTED,
 *     rolled back).
 * Remaining window: a write to the site still in flight (not yet committed) when that check runs is
 * not seen; closing it needs a per-site lock that every write takes, which the store does not have.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { create } from "@bufbuild/protobuf";
import {
  HostPlanSchema,
  PlanAction,
  PlanChangeResponseSchema,
  PlanItemSchema,
  type PlanChangeRequest,
  type PlanChangeResponse,
} from "../../../gen/lvsfleet/v1/operator_service_pb.js";
import type { RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { SiteTopology } from "../compile/index.js";
import { LvsfleetError } from "../domain/errors.js";
import { parseRealServerName, parseSiteName, parseVirtualServiceName } from "../domain/names.js";
import { planSite, type PlanActionName } from "../plan/index.js";
import { loadSiteTopology } from "../relay/topology.js";
import type { TopologyStore } from "../store/index.js";
import type { RequestContext } from "./context.js";
import { required } from "./fields.js";
import { createRealServer, deleteRealServer, updateRealServer } from "./real-servers.js";
import { updateSite } from "./sites.js";
import { createVirtualService, deleteVirtualService, updateVirtualService } from "./virtual-services.js";

const ACTION: Record<PlanActionName, PlanAction> = { ADD: PlanAction.ADD, CHANGE: PlanAction.CHANGE, REMOVE: PlanAction.REMOVE };

type Change = PlanChangeRequest["change"];

/** The site a change writes to (parsed like the write handler parses it). */
function siteOf(change: Change): string {
  switch (change.case) {
    case "createVirtualService":
      return parseSiteName(change.value.parent, "create_virtual_service.parent").site;
    case "updateVirtualService":
      return parseVirtualServiceName(required(change.value.virtualService, "update_virtual_service.virtual_service").name, "update_virtual_service.virtual_service.name").site;
    case "deleteVirtualService":
      return parseVirtualServiceName(change.value.name, "delete_virtual_service.name").site;
    case "createRealServer":
      return parseVirtualServiceName(change.value.parent, "create_real_server.parent").site;
    case "updateRealServer":
      return parseRealServerName(required(change.value.realServer, "update_real_server.real_server").name, "update_real_server.real_server.name").site;
    case "deleteRealServer":
      return parseRealServerName(change.value.name, "delete_real_server.name").site;
    case "updateSite":
      return parseSiteName(required(change.value.site, "update_site.site").name, "update_site.site.name").site;
    default:
      throw LvsfleetError.invalid([{ field: "change", reason: "REQUIRED", description: "one write request is required" }]);
  }
}

/** The site's revision (highest audit revision of the site) and its topology, in one snapshot. */
async function readSite(store: TopologyStore, site: string): Promise<{ revision: bigint; topo: SiteTopology }> {
  const c = await store.db.pool.connect();
  try {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const r = await c.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log WHERE site_id = $1", [site]);
    const topo = await loadSiteTopology(c, site);
    await c.query("COMMIT");
    if (!topo) throw LvsfleetError.notFound(`sites/${site}`);
    return { revision: BigInt(r.rows[0]!.r), topo };
  } catch (err) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

function replaceVs(topo: SiteTopology, vs: VirtualService): SiteTopology {
  return { ...topo, virtualServices: [...topo.virtualServices.filter((v) => v.name !== vs.name), vs] };
}
function replaceRs(topo: SiteTopology, rs: RealServer): SiteTopology {
  return { ...topo, realServers: [...topo.realServers.filter((r) => r.name !== rs.name), rs] };
}

/** The topology after the change, without writing anything. */
async function afterTopology(store: TopologyStore, before: SiteTopology, change: Change, ctx: RequestContext): Promise<SiteTopology> {
  switch (change.case) {
    case "createVirtualService":
      return replaceVs(before, (await createVirtualService(store, { ...change.value, validateOnly: true }, ctx)).virtualService!);
    case "updateVirtualService":
      return replaceVs(before, (await updateVirtualService(store, { ...change.value, validateOnly: true }, ctx)).virtualService!);
    case "createRealServer":
      return replaceRs(before, (await createRealServer(store, { ...change.value, validateOnly: true }, ctx)).realServer!);
    case "updateRealServer":
      return replaceRs(before, (await updateRealServer(store, { ...change.value, validateOnly: true }, ctx)).realServer!);
    case "updateSite":
      return { ...before, site: (await updateSite(store, { ...change.value, validateOnly: true }, ctx)).site! };
    case "deleteVirtualService": {
      const name = change.value.name;
      if (!before.virtualServices.some((v) => v.name === name)) throw LvsfleetError.notFound(name);
      const children = before.realServers.filter((r) => r.name.startsWith(`${name}/realServers/`));
      if (children.length && !change.value.force) {
        throw LvsfleetError.failedPrecondition(`${name} still has ${children.length} real server(s); delete them first or set force`, [
          { type: "HAS_CHILDREN", subject: name, description: `${children.length} real server(s)` },
        ]);
      }
      return {
        ...before,
        virtualServices: before.virtualServices.filter((v) => v.name !== name),
        realServers: before.realServers.filter((r) => !r.name.startsWith(`${name}/realServers/`)),
      };
    }
    case "deleteRealServer": {
      const name = change.value.name;
      if (!before.realServers.some((r) => r.name === name)) throw LvsfleetError.notFound(name);
      return { ...before, realServers: before.realServers.filter((r) => r.name !== name) };
    }
    default:
      throw LvsfleetError.invalid([{ field: "change", reason: "REQUIRED", description: "one write request is required" }]);
  }
}

/** Performs the change through the normal write handler; returns the write's revision. */
async function write(store: TopologyStore, change: Change, ctx: RequestContext): Promise<bigint> {
  switch (change.case) {
    case "createVirtualService":
      return (await createVirtualService(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "updateVirtualService":
      return (await updateVirtualService(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "deleteVirtualService":
      return (await deleteVirtualService(store, change.value, ctx)).revision;
    case "createRealServer":
      return (await createRealServer(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "updateRealServer":
      return (await updateRealServer(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "deleteRealServer":
      return (await deleteRealServer(store, change.value, ctx)).revision;
    case "updateSite":
      return (await updateSite(store, { ...change.value, validateOnly: false }, ctx)).revision;
    default:
      throw LvsfleetError.invalid([{ field: "change", reason: "REQUIRED", description: "one write request is required" }]);
  }
}

/** The apply in progress in this async context: its site and expected revision. */
const applyGuard = new AsyncLocalStorage<{ site: string; expected: bigint }>();
const guarded = new WeakSet<TopologyStore>();

/**
 * Registers (once per store) the after-write hook that re-checks an apply's expected revision inside
 * the write transaction: no other revision of the site may have committed since the plan.
 */
export function guardApplies(store: TopologyStore): void {
  if (guarded.has(store)) return;
  guarded.add(store);
  store.onWrite(async (tx, record) => {
    const g = applyGuard.getStore();
    if (!g || !record.changes.some((c) => c.siteId === g.site)) return;
    const r = await tx.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log WHERE site_id = $1 AND revision <> $2", [g.site, record.revision.toString()]);
    const now = BigInt(r.rows[0]!.r);
    if (now !== g.expected) {
      throw LvsfleetError.aborted(`sites/${g.site} moved while applying: planned against revision ${g.expected}, now at ${now}; plan again`, `sites/${g.site}`);
    }
  });
}

export async function planChange(store: TopologyStore, req: PlanChangeRequest, ctx: RequestContext): Promise<PlanChangeResponse> {
  const site = siteOf(req.change);
  if (req.apply && req.expectedRevision <= 0n) {
    throw LvsfleetError.invalid([{ field: "expected_revision", reason: "REQUIRED", description: "apply needs the revision of the plan it applies" }]);
  }
  const { revision, topo: before } = await readSite(store, site);
  const after = await afterTopology(store, before, req.change, ctx);
  const plan = planSite(before, after);
  const hosts = [...plan.hosts].map(([host, items]) =>
    create(HostPlanSchema, {
      host,
      items: items.map((d) => create(PlanItemSchema, { kind: d.kind, action: ACTION[d.action], object: d.object, before: d.before, after: d.after })),
    }),
  );
  let appliedRevision = 0n;
  if (req.apply) {
    if (req.expectedRevision !== revision) {
      throw LvsfleetError.aborted(`sites/${site} moved: planned against revision ${req.expectedRevision}, now at ${revision}; plan again`, `sites/${site}`);
    }
    guardApplies(store);
    appliedRevision = await applyGuard.run({ site, expected: revision }, () => write(store, req.change, ctx));
  }
  return create(PlanChangeResponseSchema, { revision, hosts, warnings: plan.warnings, appliedRevision });
}
