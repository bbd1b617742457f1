import { LvsfleetError } from "../domain/errors.js";
import { parseSiteParent, parseVirtualServiceName } from "../domain/names.js";

/** The resource message of an Update request must be present. */
export function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw LvsfleetError.invalid([{ field, reason: "REQUIRED", description: `${field} is required` }]);
  }
  return value;
}

/** A List parent `sites/{site}`, or `sites/-` for every site: returns the site id or "-". */
export function siteParent(parent: string, field = "parent"): string {
  return parseSiteParent(parent, field, { allowWildcard: true }).site;
}

/**
 * A ListRealServers parent `sites/{site}/virtualServices/{virtual_service}`; AIP-159 wildcards allowed:
 * `sites/{site}/virtualServices/-` (every service of a site), `sites/-/virtualServices/-` (all).
 */
export function virtualServiceParent(parent: string, field = "parent"): { site: string; virtualService: string } {
  const parts = typeof parent === "string" ? parent.split("/") : [];
  if (parts.length === 4 && parts[2] === "virtualServices" && parts[3] === "-") {
    return { site: siteParent(`sites/${parts[1]}`, field), virtualService: "-" };
  }
  return parseVirtualServiceName(parent, field);
}
