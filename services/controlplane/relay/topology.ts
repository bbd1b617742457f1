// Reads one site's whole topology (what compileSite needs) on a given connection, so the caller
// decides the snapshot (the relay reads it inside its REPEATABLE READ transaction).
import type pg from "pg";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { FirewallMark, Host, RealServer, Site, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { ResourceRef, SiteTopology } from "../compile/index.js";
import { fromRow, ROW_COLUMNS, type StoredRow, type TableSpec } from "../store/rows.js";
import { epochMs } from "../store/db.js";
import { FIREWALL_MARK_TABLE, HOST_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "../store/specs.js";

export type Resource = Site | Host | VirtualService | RealServer | FirewallMark;

async function rows<D extends DescMessage>(c: pg.ClientBase, spec: TableSpec<D>, site: string): Promise<MessageShape<D>[]> {
  const r = await c.query<StoredRow>(`SELECT ${ROW_COLUMNS} FROM ${spec.table} WHERE site_id = $1 ORDER BY ${spec.keys.join(", ")}`, [site]);
  return r.rows.map((row) => fromRow(spec.schema, row));
}

/** The site's topology, or undefined when the site does not exist (deleted). */
export async function loadSiteTopology(c: pg.ClientBase, site: string): Promise<SiteTopology | undefined> {
  const [sites, hosts, virtualServices, realServers, firewallMarks] = [
    await rows(c, SITE_TABLE, site),
    await rows(c, HOST_TABLE, site),
    await rows(c, VIRTUAL_SERVICE_TABLE, site),
    await rows(c, REAL_SERVER_TABLE, site),
    await rows(c, FIREWALL_MARK_TABLE, site),
  ];
  if (!sites[0]) return undefined;
  return { site: sites[0], hosts, virtualServices, realServers, firewallMarks };
}

/**
 * The current rows of every resource the first `limit` outbox rows name (a deleted one has no row):
 * one parameter-free statement (a UNION ALL over the tables) that goes in the compile transaction's
 * first round trip, after the rows are taken — so the same snapshot and the same rows (only the
 * relay deletes outbox rows). Each row is tagged with the outbox row's kind and name. A name of
 * another site than its row's is not read.
 */
const OUTBOX_READS: ReadonlyArray<{ kind: ResourceRef["kind"]; spec: TableSpec<DescMessage>; on: string }> = [
  { kind: "site", spec: SITE_TABLE as unknown as TableSpec<DescMessage>, on: "x.site_id = t.site" },
  { kind: "host", spec: HOST_TABLE as unknown as TableSpec<DescMessage>, on: "x.site_id = t.site AND x.host_id = split_part(t.resource, '/', 4)" },
  { kind: "virtualService", spec: VIRTUAL_SERVICE_TABLE as unknown as TableSpec<DescMessage>, on: "x.site_id = t.site AND x.virtual_service_id = split_part(t.resource, '/', 4)" },
  { kind: "firewallMark", spec: FIREWALL_MARK_TABLE as unknown as TableSpec<DescMessage>, on: "x.site_id = t.site AND x.firewall_mark_id = split_part(t.resource, '/', 4)" },
  {
    kind: "realServer",
    spec: REAL_SERVER_TABLE as unknown as TableSpec<DescMessage>,
    on: "x.site_id = t.site AND x.virtual_service_id = split_part(t.resource, '/', 4) AND x.real_server_id = split_part(t.resource, '/', 6)",
  },
];

export function outboxResourcesSql(limit: number): string {
  const cols = `x.resource, x.revision::text AS revision, ${epochMs("x.create_time")} AS create_ms, ${epochMs("x.update_time")} AS update_ms`;
  return `WITH t AS (SELECT DISTINCT site, kind, resource FROM (SELECT site, kind, resource FROM outbox ORDER BY id LIMIT ${Math.floor(limit)}) o
                   WHERE split_part(resource, '/', 2) = site)
  ${OUTBOX_READS.map((r) => `SELECT t.kind AS outbox_kind, t.resource AS outbox_name, ${cols} FROM ${r.spec.table} x JOIN t ON t.kind = '${r.kind}' AND ${r.on}`).join("\n  UNION ALL ")}`;
}

/** outboxResourcesSql's rows → site → name → resource (names absent: not there). */
export function outboxResources(res: pg.QueryResult): Map<string, Map<string, Resource>> {
  const out = new Map<string, Map<string, Resource>>();
  for (const row of res.rows as Array<StoredRow & { outbox_kind: string; outbox_name: string }>) {
    const spec = OUTBOX_READS.find((r) => r.kind === row.outbox_kind)!.spec;
    const site = row.outbox_name.split("/")[1]!;
    let m = out.get(site);
    if (!m) out.set(site, (m = new Map()));
    m.set(row.outbox_name, fromRow(spec.schema, row) as unknown as Resource);
  }
  return out;
}
