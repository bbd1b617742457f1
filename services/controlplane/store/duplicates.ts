/**
 * Uniqueness checked during validation, inside the write transaction and before a revision is taken,
 * so that validate_only reports duplicates too and the error names the resource in the way. The
 * unique indexes (see migrations/) remain the guarantee: two concurrent creates both pass this check,
 * and the index lets exactly one commit (the other maps to the same violation in pg-errors.ts).
 */
import { LvsfleetError, type FieldViolation } from "../domain/errors.js";
import { firewallMarkName, realServerName, virtualServiceName } from "../domain/names.js";
import type { WriteTx } from "./db.js";
import type { RealServer, VirtualService, FirewallMark } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { virtualServiceColumns } from "./virtual-services.js";

/**
 * On create (`creating`), the same lookup also finds an existing row with the new id: ALREADY_EXISTS,
 * thrown before the write takes a revision.
 */
function alreadyExists(rows: { id: string }[], id: string, creating: boolean, name: string): { id: string }[] {
  if (creating && rows.some((r) => r.id === id)) throw LvsfleetError.alreadyExists(name);
  return rows.filter((r) => r.id !== id).slice(0, 1);
}

export async function virtualServiceDuplicates(tx: WriteTx, site: string, vsId: string, vs: VirtualService, creating: boolean): Promise<FieldViolation[]> {
  const c = virtualServiceColumns(vs);
  const name = virtualServiceName(site, vsId);
  if (c.fwmark !== null) {
    const r = await tx.query<{ id: string }>(
      `SELECT virtual_service_id AS id FROM virtual_services
        WHERE site_id = $1 AND ((fwmark = $2 AND address_family = $3) OR virtual_service_id = $4) LIMIT 2`,
      [site, c.fwmark, c.address_family, vsId],
    );
    return alreadyExists(r.rows, vsId, creating, name).map((row) => ({
      field: "virtual_service.fwmark",
      reason: "DUPLICATE_VIRTUAL_SERVICE",
      description: `${virtualServiceName(site, row.id)} already uses fwmark ${vs.fwmark}`,
    }));
  }
  const r = await tx.query<{ id: string }>(
    `SELECT virtual_service_id AS id FROM virtual_services
      WHERE site_id = $1 AND ((address = $2::inet AND protocol = $3 AND port = $4 AND fwmark IS NULL) OR virtual_service_id = $5) LIMIT 2`,
    [site, c.address, c.protocol, c.port, vsId],
  );
  return alreadyExists(r.rows, vsId, creating, name).map((row) => ({
    field: "virtual_service.address",
    reason: "DUPLICATE_VIRTUAL_SERVICE",
    description: `${virtualServiceName(site, row.id)} already has this address, protocol and port`,
  }));
}

export async function realServerDuplicates(
  tx: WriteTx,
  site: string,
  vsId: string,
  rsId: string,
  rs: RealServer,
  creating: boolean,
  /** The destination port (rs.port, or the service's port when that is 0). */
  port = rs.port,
): Promise<FieldViolation[]> {
  const r = await tx.query<{ id: string }>(
    `SELECT real_server_id AS id FROM real_servers
      WHERE site_id = $1 AND virtual_service_id = $2 AND ((address = $3::inet AND port = $4) OR real_server_id = $5) LIMIT 2`,
    [site, vsId, rs.address, port, rsId],
  );
  return alreadyExists(r.rows, rsId, creating, realServerName(site, vsId, rsId)).map((row) => ({
    field: "real_server.address",
    reason: "DUPLICATE_REAL_SERVER",
    description: `${realServerName(site, vsId, row.id)} already has this address and port`,
  }));
}

export async function firewallMarkDuplicates(tx: WriteTx, site: string, fmId: string, fm: FirewallMark, creating: boolean): Promise<FieldViolation[]> {
  const r = await tx.query<{ id: string }>(
    "SELECT firewall_mark_id AS id FROM firewall_marks WHERE site_id = $1 AND (mark = $2 OR firewall_mark_id = $3) LIMIT 2",
    [site, fm.mark, fmId],
  );
  return alreadyExists(r.rows, fmId, creating, firewallMarkName(site, fmId)).map((row) => ({
    field: "firewall_mark.mark",
    reason: "DUPLICATE_FIREWALL_MARK",
    description: `${firewallMarkName(site, row.id)} already has mark ${fm.mark}`,
  }));
}
