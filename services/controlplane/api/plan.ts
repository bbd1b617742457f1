/**
 * PlanChange: what one write (or import) would do to the kernel of each host of its site, and
 * apply-if-unchanged.
 *
 * How:
 *  1. One REPEATABLE READ, READ ONLY transaction reads the site's revision (max audit revision of the
 *     site) and its whole topology (relay/topology.ts): the "before" and the plan's `revision`.
 *  2. The "after" comes from the write itself: the normal write handler runs (same parsing,
 *     field-mask merge, validation, cascades of a forced delete, errors) with a plan scope set
 *     (AsyncLocalStorage). The scope's after-write hook, inside that transaction, takes the site's
 *     lock exclusively (store/site-lock.ts), checks the site's revision is still the one of 1 (if
 *     not, 1 and 2 run again, a few times), reads the site's topology as the write left it and
 *     throws it: the transaction ALWAYS rolls back (nothing is written; only a revision number of
 *     the sequence is used up). compileSite on both, diffed per host (plan/), with the real servers'
 *     reported health (status/health-store.ts) for the "last healthy real server" warning.
 *  3. With `apply`: `expected_revision` must equal the revision of 1 (else ABORTED), then the same
 *     request goes through the normal write handler (its own audit entry and operation name) with
 *     an apply scope: its hook takes the site's lock exclusively and then checks, in a new statement,
 *     that no other revision of the site committed since the plan (else ABORTED, rolled back). Every
 *     write takes that lock shared before its COMMIT, so a write still in flight at the check is
 *     waited for (and then seen), and none can commit between the check and the apply's COMMIT.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { create } from "@bufbuild/protobuf";
import {
  HostPlanSchema,
  ImportWarningSchema,
  PlanAction,
  PlanChangeResponseSchema,
  PlanItemSchema,
  type ImportWarning,
  type PlanChangeRequest,
  type PlanChangeResponse,
} from "../../../gen/lvsfleet/v1/operator_service_pb.js";
import type { SiteTopology } from "../compile/index.js";
import { LvsfleetError, throwIfInvalid } from "../domain/errors.js";
import { parseFirewallMarkName, parseHostName, parseRealServerName, parseSiteName, parseVirtualServiceName, validateId } from "../domain/names.js";
import { parseIpvsadmSave } from "../operator/ipvsadm-save.js";
import { parseKeepalivedConf } from "../operator/keepalived.js";
import { planSite, type PlanActionName, type RealServerHealth } from "../plan/index.js";
import { loadSiteTopology } from "../relay/topology.js";
import type { HookTx, TopologyStore } from "../store/index.js";
import { lockSiteExclusive } from "../store/site-lock.js";
import type { RequestContext } from "./context.js";
import { required } from "./fields.js";
import { createFirewallMark, deleteFirewallMark, updateFirewallMark } from "./firewall-marks.js";
import { createHost, deleteHost, updateHost } from "./hosts.js";
import { importIpvsadm, importKeepalived } from "./operator.js";
import { createRealServer, deleteRealServer, updateRealServer } from "./real-servers.js";
import { createSite, deleteSite, updateSite } from "./sites.js";
import { createVirtualService, deleteVirtualService, updateVirtualService } from "./virtual-services.js";

const ACTION: Record<PlanActionName, PlanAction> = { ADD: PlanAction.ADD, CHANGE: PlanAction.CHANGE, REMOVE: PlanAction.REMOVE };

type Change = PlanChangeRequest["change"];

const NO_CHANGE = () => LvsfleetError.invalid([{ field: "change", reason: "REQUIRED", description: "one write or import request is required" }]);

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
    case "createSite":
      throwIfInvalid(validateId(change.value.siteId, "create_site.site_id"));
      return change.value.siteId;
    case "updateSite":
      return parseSiteName(required(change.value.site, "update_site.site").name, "update_site.site.name").site;
    case "deleteSite":
      return parseSiteName(change.value.name, "delete_site.name").site;
    case "createHost":
      return parseSiteName(change.value.parent, "create_host.parent").site;
    case "updateHost":
      return parseHostName(required(change.value.host, "update_host.host").name, "update_host.host.name").site;
    case "deleteHost":
      return parseHostName(change.value.name, "delete_host.name").site;
    case "createFirewallMark":
      return parseSiteName(change.value.parent, "create_firewall_mark.parent").site;
    case "updateFirewallMark":
      return parseFirewallMarkName(required(change.value.firewallMark, "update_firewall_mark.firewall_mark").name, "update_firewall_mark.firewall_mark.name").site;
    case "deleteFirewallMark":
      return parseFirewallMarkName(change.value.name, "delete_firewall_mark.name").site;
    case "importIpvsadm":
      return parseSiteName(change.value.parent, "import_ipvsadm.parent").site;
    case "importKeepalived":
      return parseSiteName(change.value.parent, "import_keepalived.parent").site;
    default:
      throw NO_CHANGE();
  }
}

/** The site's revision (highest audit revision of the site) and its topology (undefined: no such site), in one snapshot. */
async function readSite(store: TopologyStore, site: string): Promise<{ revision: bigint; topo: SiteTopology | undefined }> {
  const c = await store.db.pool.connect();
  try {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const r = await c.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log WHERE site_id = $1", [site]);
    const topo = await loadSiteTopology(c, site);
    await c.query("COMMIT");
    return { revision: BigInt(r.rows[0]!.r), topo };
  } catch (err) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/** Performs the change through the normal write handler (never validate-only / dry-run); returns the write's revision. */
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
    case "createSite":
      return (await createSite(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "updateSite":
      return (await updateSite(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "deleteSite":
      return (await deleteSite(store, change.value, ctx)).revision;
    case "createHost":
      return (await createHost(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "updateHost":
      return (await updateHost(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "deleteHost":
      return (await deleteHost(store, change.value, ctx)).revision;
    case "createFirewallMark":
      return (await createFirewallMark(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "updateFirewallMark":
      return (await updateFirewallMark(store, { ...change.value, validateOnly: false }, ctx)).revision;
    case "deleteFirewallMark":
      return (await deleteFirewallMark(store, change.value, ctx)).revision;
    case "importIpvsadm":
      return (await importIpvsadm(store, { ...change.value, dryRun: false }, ctx)).revision;
    case "importKeepalived":
      return (await importKeepalived(store, { ...change.value, dryRun: false }, ctx)).revision;
    default:
      throw NO_CHANGE();
  }
}

/** An import's unsupported directives (the handler validated the text already). */
function importWarnings(change: Change): ImportWarning[] {
  const parsed =
    change.case === "importIpvsadm"
      ? parseIpvsadmSave(change.value.text, {})
      : change.case === "importKeepalived"
        ? parseKeepalivedConf(change.value.text, {})
        : undefined;
  return (parsed?.warnings ?? []).map((w) => create(ImportWarningSchema, { line: w.line, directive: w.directive, message: w.message }));
}

/** A plan or an apply in progress in this async context. */
interface Scope {
  mode: "plan" | "apply";
  site: string;
  /** The revision the plan was computed against. */
  expected: bigint;
}
const scope = new AsyncLocalStorage<Scope>();

/** Thrown by the plan hook to roll the write back, carrying the topology the write left. */
class PlanRollback extends Error {
  constructor(readonly after: SiteTopology | undefined) {
    super("plan: rolled back");
  }
}
/** Thrown by the plan hook when the site moved since the "before" was read. */
class SiteMoved extends Error {
  constructor(readonly now: bigint) {
    super("plan: site moved");
  }
}

/** The site's highest revision other than this transaction's own. */
async function otherRevision(tx: HookTx, site: string, own: bigint): Promise<bigint> {
  const r = await tx.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log WHERE site_id = $1 AND revision <> $2", [site, own.toString()]);
  return BigInt(r.rows[0]!.r);
}

const guarded = new WeakSet<TopologyStore>();

/**
 * Installs (once per store) the hook of plans and applies. It runs FIRST in the write transaction
 * (before the shared site lock and the outbox): the exclusive lock is then taken before the shared
 * one, so two applies to one site queue instead of deadlocking on an upgrade.
 */
export function guardApplies(store: TopologyStore): void {
  if (guarded.has(store)) return;
  guarded.add(store);
  // A plan or apply's write must run alone in its transaction: this hook reads its scope from the
  // async context, which a shared (group-commit) transaction does not carry.
  store.db.isolated.push(() => scope.getStore() !== undefined);
  store.db.afterWrite.unshift(async (tx, writes) => {
    const s = scope.getStore();
    if (!s) return;
    if (writes.length !== 1) throw new Error("a plan or apply write shared its transaction");
    const record = writes[0]!;
    if (s.mode === "apply" && !record.changes.some((c) => c.siteId === s.site)) return;
    await lockSiteExclusive(tx, s.site);
    // A new statement after the lock: READ COMMITTED sees every write that held the lock before us.
    const now = await otherRevision(tx, s.site, record.revision);
    if (s.mode === "plan") {
      // A plan never commits: whatever happens here, throw.
      if (now !== s.expected) throw new SiteMoved(now);
      throw new PlanRollback(await loadSiteTopology(tx.client, s.site));
    }
    if (now !== s.expected) {
      throw LvsfleetError.aborted(`sites/${s.site} moved while applying: planned against revision ${s.expected}, now at ${now}; plan again`, `sites/${s.site}`);
    }
  });
}

/** Reported health of the site's real servers; the plan's input for the "last healthy" warning. */
export type HealthSource = (store: TopologyStore, site: string) => Promise<ReadonlyMap<string, readonly RealServerHealth[]> | undefined>;

const PLAN_ATTEMPTS = 4;

/** The topology before and after the change (nothing written), and the revision it was planned against. */
async function dryRun(store: TopologyStore, site: string, change: Change, ctx: RequestContext): Promise<{ revision: bigint; before?: SiteTopology; after?: SiteTopology }> {
  for (let attempt = 1; ; attempt++) {
    const { revision, topo: before } = await readSite(store, site);
    try {
      await scope.run({ mode: "plan", site, expected: revision }, () => write(store, change, ctx));
      // Returned without reaching the hook: the write recorded no change.
      return { revision, before, after: before };
    } catch (err) {
      if (err instanceof PlanRollback) return { revision, before, after: err.after };
      if (!(err instanceof SiteMoved)) throw err;
      if (attempt >= PLAN_ATTEMPTS) {
        throw LvsfleetError.aborted(`sites/${site} kept changing while planning (now at revision ${err.now}); plan again`, `sites/${site}`);
      }
    }
  }
}

export async function planChange(store: TopologyStore, req: PlanChangeRequest, ctx: RequestContext, health?: HealthSource): Promise<PlanChangeResponse> {
  const site = siteOf(req.change);
  if (req.apply && (req.expectedRevision === undefined || req.expectedRevision < 0n)) {
    throw LvsfleetError.invalid([{ field: "expected_revision", reason: "REQUIRED", description: "apply needs the revision of the plan it applies" }]);
  }
  guardApplies(store);
  const { revision, before, after } = await dryRun(store, site, req.change, ctx);
  const plan = planSite(before, after, { health: health ? await health(store, site) : undefined });
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
    appliedRevision = await scope.run({ mode: "apply", site, expected: revision }, () => write(store, req.change, ctx));
  }
  return create(PlanChangeResponseSchema, { revision, hosts, warnings: plan.warnings, appliedRevision, importWarnings: importWarnings(req.change) });
}
