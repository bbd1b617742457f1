/**
 * OperatorService handlers: imports of ipvsadm-save and keepalived.conf files, export of a
 * Director's rules as `ipvsadm -S -n` text. Plain functions over the injected store; the parsing and
 * formatting are pure (services/controlplane/operator/), the write is one transaction
 * (store/bulk.ts): all or nothing, audited with the file name as the reason.
 */
import { create } from "@bufbuild/protobuf";
import {
  ExportIpvsadmResponseSchema,
  ImportIpvsadmResponseSchema,
  ImportKeepalivedResponseSchema,
  ImportWarningSchema,
  type ExportIpvsadmRequest,
  type ExportIpvsadmResponse,
  type ImportIpvsadmRequest,
  type ImportIpvsadmResponse,
  type ImportKeepalivedRequest,
  type ImportKeepalivedResponse,
  type OperatorService,
} from "../../../gen/lvsfleet/v1/operator_service_pb.js";
import type { RealServer, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { ServiceImpl } from "../../../lib/grpc/server.js";
import { LvsfleetError } from "../domain/errors.js";
import { checkHostName, hostName, isValidId, parseSiteName } from "../domain/names.js";
import { TEXT_FIELD, type ImportResult } from "../operator/common.js";
import { formatIpvsadmSave } from "../operator/ipvsadm-export.js";
import { parseIpvsadmSave } from "../operator/ipvsadm-save.js";
import { parseKeepalivedConf } from "../operator/keepalived.js";
import type { SiteTopology } from "../compile/index.js";
import { loadSiteTopology } from "../relay/topology.js";
import { createBulk } from "../store/bulk.js";
import { READ_REVISION_SQL } from "../store/db.js";
import type { TopologyStore } from "../store/index.js";
import { writeMeta, type RequestContext } from "./context.js";
import { listRealServerHealth } from "../status/health-store.js";
import { planChange, type HealthSource } from "./plan.js";
import { requestContext } from "./topology-service.js";

/** The health the Directors reported (status/health-store.ts): the plan's "last healthy real server" input. */
const storedHealth: HealthSource = (store, site) => listRealServerHealth(store.db.pool, site);

export function operatorService(store: TopologyStore): ServiceImpl<typeof OperatorService> {
  return {
    importIpvsadm: (req, call) => importIpvsadm(store, req, requestContext(call)),
    importKeepalived: (req, call) => importKeepalived(store, req, requestContext(call)),
    exportIpvsadm: (req) => exportIpvsadm(store, req),
    planChange: (req, call) => planChange(store, req, requestContext(call), storedHealth),
  };
}

/** `director`: a host name of the parent's site, or a bare host id in it. */
function directorName(site: string, director: string, required: boolean): string | undefined {
  if (!director) {
    if (!required) return undefined;
    throw LvsfleetError.invalid([{ field: "director", reason: "REQUIRED", description: "the Director host is required (sites/{site}/hosts/{host} or the host id)" }]);
  }
  if (!director.includes("/")) {
    if (!isValidId(director)) throw LvsfleetError.invalid([{ field: "director", reason: "INVALID_NAME", description: `${JSON.stringify(String(director).slice(0, 80))} is not a host name or id` }]);
    return hostName(site, director);
  }
  const r = checkHostName(director, "director");
  if ("field" in r) throw LvsfleetError.invalid([r]);
  if (r.site !== site) throw LvsfleetError.invalid([{ field: "director", reason: "WRONG_SITE", description: `${director} is not a host of sites/${site}` }]);
  return director;
}

const MAX_FILE_NAME = 200;

/** The audit reason: which file, plus the caller's own reason if any. */
function importMeta(ctx: RequestContext, operation: string, kind: string, fileName: string) {
  // eslint-disable-next-line no-control-regex
  const clean = (fileName || "(unnamed)").replace(/[\u0000-\u001f\u007f]/g, "?");
  const file = clean.length > MAX_FILE_NAME ? `${clean.slice(0, MAX_FILE_NAME)}…` : clean;
  const meta = writeMeta(ctx, operation); // checks the caller's reason
  return { ...meta, reason: `${kind} import of ${JSON.stringify(file)}${meta.reason ? `: ${meta.reason}` : ""}` };
}

async function runImport(
  store: TopologyStore,
  site: string,
  parsed: ImportResult,
  meta: { actor: string; operation: string; reason: string },
  dryRun: boolean,
): Promise<{ virtualServices: VirtualService[]; realServers: RealServer[]; revision: bigint; warnings: ReturnType<typeof warnings> }> {
  const items = parsed.virtualServices.map((v) => ({
    id: v.id,
    virtualService: v.virtualService,
    label: `line ${v.line}`,
    realServers: v.realServers.map((r) => ({ id: r.id, realServer: r.realServer, label: `line ${r.line}` })),
  }));
  if (items.length === 0) {
    throw LvsfleetError.invalid([{ field: TEXT_FIELD, reason: "NOTHING_TO_IMPORT", description: "the file defines no virtual service" }]);
  }
  const r = await createBulk(store.db, meta, site, items, { validateOnly: dryRun, field: TEXT_FIELD });
  return { ...r, warnings: warnings(parsed) };
}

function warnings(parsed: ImportResult) {
  return parsed.warnings.map((w) => create(ImportWarningSchema, { line: w.line, directive: w.directive, message: w.message }));
}

export async function importIpvsadm(store: TopologyStore, req: ImportIpvsadmRequest, ctx: RequestContext): Promise<ImportIpvsadmResponse> {
  const { site } = parseSiteName(req.parent, "parent");
  const director = directorName(site, req.director, true);
  const meta = importMeta(ctx, "ImportIpvsadm", "ipvsadm", req.fileName);
  const parsed = parseIpvsadmSave(req.text, { director });
  const r = await runImport(store, site, parsed, meta, req.dryRun);
  return create(ImportIpvsadmResponseSchema, { ...r, dryRun: req.dryRun });
}

export async function importKeepalived(store: TopologyStore, req: ImportKeepalivedRequest, ctx: RequestContext): Promise<ImportKeepalivedResponse> {
  const { site } = parseSiteName(req.parent, "parent");
  const director = directorName(site, req.director, false);
  const meta = importMeta(ctx, "ImportKeepalived", "keepalived", req.fileName);
  const parsed = parseKeepalivedConf(req.text, { director });
  const r = await runImport(store, site, parsed, meta, req.dryRun);
  return create(ImportKeepalivedResponseSchema, { ...r, dryRun: req.dryRun });
}

/**
 * Reads everything in ONE snapshot (a REPEATABLE READ, READ ONLY transaction): the revision, the host,
 * the services and their real servers. A write committing meanwhile is either wholly in the export
 * or wholly out of it, never half (e.g. a service without the real servers an import gave it).
 */
export async function exportIpvsadm(store: TopologyStore, req: ExportIpvsadmRequest): Promise<ExportIpvsadmResponse> {
  const { site } = parseSiteName(req.parent, "parent");
  const director = directorName(site, req.director, true)!;
  const c = await store.db.pool.connect();
  let revision: bigint;
  let topo: SiteTopology | undefined;
  try {
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    revision = BigInt((await c.query<{ r: string }>(READ_REVISION_SQL)).rows[0]!.r);
    topo = await loadSiteTopology(c, site);
    await c.query("COMMIT");
  } catch (err) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
  // NOT_FOUND for a host (or site) that does not exist.
  if (!topo?.hosts.some((h) => h.name === director)) throw LvsfleetError.notFound(director);
  const services = topo.virtualServices.filter((vs) => vs.directors.includes(director));
  const held = new Set(services.map((vs) => vs.name));
  const byService = new Map<string, RealServer[]>();
  for (const rs of topo.realServers) {
    const parent = rs.name.slice(0, rs.name.indexOf("/realServers/"));
    if (held.has(parent)) byService.set(parent, [...(byService.get(parent) ?? []), rs]);
  }
  const text = formatIpvsadmSave(services.map((vs) => ({ virtualService: vs, realServers: byService.get(vs.name) ?? [] })));
  let rsCount = 0;
  for (const l of byService.values()) rsCount += l.length;
  return create(ExportIpvsadmResponseSchema, { text, revision, virtualServiceCount: services.length, realServerCount: rsCount });
}
