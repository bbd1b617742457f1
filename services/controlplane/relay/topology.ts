// Reads one site's whole topology (what compileSite needs) on a given connection, so the caller
// decides the snapshot (the relay reads it inside its REPEATABLE READ transaction).
import type pg from "pg";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { FirewallMark, Host, RealServer, Site, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { ResourceRef, SiteTopology } from "../compile/index.js";
import { fromRow, ROW_COLUMNS, type StoredRow, type TableSpec } from "../store/rows.js";
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
 * The current rows of the named resources of one site (read on `c`, so in the caller's snapshot):
 * name → resource, or undefined when it does not exist (deleted). Names of another site are ignored.
 */
export async function loadResources(c: pg.ClientBase, site: string, refs: readonly ResourceRef[]): Promise<Map<string, Resource | undefined>> {
  const out = new Map<string, Resource | undefined>();
  const ids = { host: [] as string[], virtualService: [] as string[], firewallMark: [] as string[], rsVs: [] as string[], rs: [] as string[] };
  let wantSite = false;
  for (const r of refs) {
    const p = r.name.split("/");
    if (p[1] !== site) continue;
    out.set(r.name, undefined);
    if (r.kind === "site") wantSite = true;
    else if (r.kind === "host") ids.host.push(p[3]!);
    else if (r.kind === "virtualService") ids.virtualService.push(p[3]!);
    else if (r.kind === "firewallMark") ids.firewallMark.push(p[3]!);
    else if (r.kind === "realServer") {
      ids.rsVs.push(p[3]!);
      ids.rs.push(p[5]!);
    }
  }
  const put = (m: Resource) => {
    if (out.has(m.name)) out.set(m.name, m);
  };
  const read = async <D extends DescMessage>(spec: TableSpec<D>, where: string, values: unknown[]) => {
    const r = await c.query<StoredRow>(`SELECT ${ROW_COLUMNS} FROM ${spec.table} WHERE site_id = $1 AND ${where}`, [site, ...values]);
    for (const row of r.rows) put(fromRow(spec.schema, row) as unknown as Resource);
  };
  if (wantSite) await read(SITE_TABLE, "true", []);
  if (ids.host.length) await read(HOST_TABLE, "host_id = ANY($2::text[])", [ids.host]);
  if (ids.virtualService.length) await read(VIRTUAL_SERVICE_TABLE, "virtual_service_id = ANY($2::text[])", [ids.virtualService]);
  if (ids.firewallMark.length) await read(FIREWALL_MARK_TABLE, "firewall_mark_id = ANY($2::text[])", [ids.firewallMark]);
  if (ids.rs.length) {
    await read(REAL_SERVER_TABLE, "(virtual_service_id, real_server_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))", [ids.rsVs, ids.rs]);
  }
  return out;
}
