/**
 * Postgres constraint violations → LvsfleetError. Validation inside the write transaction catches
 * almost everything first; these are the backstop for races the database settles (two writers
 * creating the same VIP, a parent deleted under a child insert), so they must read like validation.
 * Constraint names come from migrations/.
 */
import { LvsfleetError } from "../domain/errors.js";

interface PgError {
  code?: string;
  constraint?: string;
}

const UNIQUE = "23505";
const FOREIGN_KEY = "23503";

/** Unique indexes that mean "duplicate in the site / service" → INVALID_ARGUMENT on this field. */
const DUPLICATE_FIELDS: Record<string, { field: string; reason: string; description: string }> = {
  virtual_services_vip_key: {
    field: "virtual_service.address",
    reason: "DUPLICATE_VIRTUAL_SERVICE",
    description: "another virtual service of this site already has this address, protocol and port",
  },
  virtual_services_fwmark_key: {
    field: "virtual_service.fwmark",
    reason: "DUPLICATE_VIRTUAL_SERVICE",
    description: "another virtual service of this site already uses this firewall mark (for this address family)",
  },
  real_servers_address_key: {
    field: "real_server.address",
    reason: "DUPLICATE_REAL_SERVER",
    description: "another real server of this virtual service already has this address and port",
  },
  firewall_marks_mark_key: {
    field: "firewall_mark.mark",
    reason: "DUPLICATE_FIREWALL_MARK",
    description: "another firewall mark of this site already has this mark value",
  },
};

/** Foreign keys a write can trip over → INVALID_ARGUMENT on this field. */
const REFERENCE_FIELDS: Record<string, { field: string; reason: string; description: string }> = {
  virtual_services_fwmark_fkey: {
    field: "virtual_service.fwmark",
    reason: "FIREWALL_MARK_NOT_FOUND",
    description: "the mark is not defined as a FirewallMark of this site",
  },
  real_servers_host_fkey: {
    field: "real_server.host",
    reason: "HOST_NOT_FOUND",
    description: "the host does not exist in this site",
  },
  virtual_service_directors_site_id_host_id_fkey: {
    field: "virtual_service.directors",
    reason: "HOST_NOT_FOUND",
    description: "a director host does not exist in this site",
  },
};

export interface PgErrorContext {
  /** Resource being created (for ALREADY_EXISTS on a primary key). */
  resourceName: string;
  /** Request field holding the parent, for a parent that vanished. */
  parentField?: string;
}

/** Maps a pg error to LvsfleetError, or returns the error unchanged when it is not a known constraint. */
export function mapPgError(err: unknown, ctx: PgErrorContext): unknown {
  const e = err as PgError;
  if (!e || typeof e !== "object" || !e.code) return err;
  if (e.code === UNIQUE && e.constraint) {
    if (e.constraint.endsWith("_pkey")) return LvsfleetError.alreadyExists(ctx.resourceName);
    const d = DUPLICATE_FIELDS[e.constraint];
    if (d) return LvsfleetError.invalid([d]);
  }
  if (e.code === FOREIGN_KEY && e.constraint) {
    const d = REFERENCE_FIELDS[e.constraint];
    if (d) return LvsfleetError.invalid([d]);
    // Any other FK on insert is the parent (site or virtual service) gone.
    return LvsfleetError.invalid([
      { field: ctx.parentField ?? "parent", reason: "PARENT_NOT_FOUND", description: "the parent does not exist" },
    ]);
  }
  return err;
}
