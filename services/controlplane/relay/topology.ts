// Reads one site's whole topology (what compileSite needs) on a given connection, so the caller
// decides the snapshot (the relay reads it inside its REPEATABLE READ transaction).
import type pg from "pg";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { SiteTopology } from "../compile/index.js";
import { fromRow, ROW_COLUMNS, type StoredRow, type TableSpec } from "../store/rows.js";
import { FIREWALL_MARK_TABLE, HOST_TABLE, REAL_SERVER_TABLE, SITE_TABLE, VIRTUAL_SERVICE_TABLE } from "../store/specs.js";

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
