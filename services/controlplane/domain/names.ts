/**
 * Resource names of the topology API (https://google.aip.dev/122):
 *
 *   sites/{site}
 *   sites/{site}/hosts/{host}
 *   sites/{site}/virtualServices/{virtual_service}
 *   sites/{site}/virtualServices/{virtual_service}/realServers/{real_server}
 *   sites/{site}/firewallMarks/{firewall_mark}
 *
 * Every id is an RFC 1123 label (https://google.aip.dev/122#resource-id-segments): lower-case letter
 * first, then lower-case letters, digits and hyphens, no trailing hyphen, at most 63 characters — so
 * an id is also a valid DNS label, nftables/JetStream subject token and Postgres-friendly key.
 *
 * The validators return violations; the parse* functions throw LvsfleetError INVALID_ARGUMENT
 * (and nothing else) naming the request field that held the name.
 */
import { LvsfleetError, type FieldViolation } from "./errors.js";

const ID_RE = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** The AIP-159 wildcard for "every site" in List parents (`sites/-`). */
export const WILDCARD = "-";

export const SITES = "sites";
export const HOSTS = "hosts";
export const VIRTUAL_SERVICES = "virtualServices";
export const REAL_SERVERS = "realServers";
export const FIREWALL_MARKS = "firewallMarks";

/** True when `id` is a valid resource id. Never throws, whatever `id` is. */
export function isValidId(id: unknown): id is string {
  return typeof id === "string" && ID_RE.test(id);
}

/** Violations of one resource id (e.g. `site_id` of CreateSiteRequest). Empty when valid. */
export function validateId(id: string, field: string): FieldViolation[] {
  if (typeof id !== "string" || id === "") {
    return [{ field, reason: "REQUIRED", description: "an id is required" }];
  }
  if (!ID_RE.test(id)) {
    return [
      {
        field,
        reason: "INVALID_ID",
        description: `${JSON.stringify(clip(id))} is not a valid id: 1-63 characters, lower-case letters, digits and '-', starting with a letter and not ending with '-'`,
      },
    ];
  }
  return [];
}

export function siteName(site: string): string {
  return `${SITES}/${site}`;
}
export function hostName(site: string, host: string): string {
  return `${SITES}/${site}/${HOSTS}/${host}`;
}
export function virtualServiceName(site: string, virtualService: string): string {
  return `${SITES}/${site}/${VIRTUAL_SERVICES}/${virtualService}`;
}
export function realServerName(site: string, virtualService: string, realServer: string): string {
  return `${SITES}/${site}/${VIRTUAL_SERVICES}/${virtualService}/${REAL_SERVERS}/${realServer}`;
}
export function firewallMarkName(site: string, firewallMark: string): string {
  return `${SITES}/${site}/${FIREWALL_MARKS}/${firewallMark}`;
}

/**
 * Splits `name` against a pattern of alternating collection ids and variables (`null`), e.g.
 * ["sites", null, "hosts", null]. Returns the ids, or a violation.
 */
function match(name: unknown, pattern: readonly (string | null)[], field: string, what: string, wildcardAt?: number): string[] | FieldViolation {
  // Every API call parses a name or two: no closures or strings built on the path that succeeds.
  if (typeof name !== "string" || name === "") {
    return { field, reason: "REQUIRED", description: `a ${what} name (${shapeOf(pattern)}) is required` };
  }
  const parts = name.split("/");
  if (parts.length !== pattern.length) return badName(name, pattern, field, what, "");
  const ids: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i];
    const got = parts[i]!;
    if (want !== null) {
      if (got !== want) return badName(name, pattern, field, what, "");
    } else if (i === wildcardAt && got === WILDCARD) {
      ids.push(got);
    } else if (!ID_RE.test(got)) {
      return badName(name, pattern, field, what, `: ${JSON.stringify(clip(got))} is not a valid id`);
    } else {
      ids.push(got);
    }
  }
  return ids;
}

function shapeOf(pattern: readonly (string | null)[]): string {
  return pattern.map((p) => p ?? "{id}").join("/");
}

function badName(name: string, pattern: readonly (string | null)[], field: string, what: string, extra: string): FieldViolation {
  return { field, reason: "INVALID_NAME", description: `${JSON.stringify(clip(name))} is not a ${what} name (${shapeOf(pattern)})${extra}` };
}

function parse(name: string, pattern: readonly (string | null)[], field: string, what: string, wildcardAt?: number): string[] {
  const r = match(name, pattern, field, what, wildcardAt);
  if (!Array.isArray(r)) throw LvsfleetError.invalid([r]);
  return r;
}

const SITE_PATTERN = [SITES, null] as const;
const HOST_PATTERN = [SITES, null, HOSTS, null] as const;
const VS_PATTERN = [SITES, null, VIRTUAL_SERVICES, null] as const;
const RS_PATTERN = [SITES, null, VIRTUAL_SERVICES, null, REAL_SERVERS, null] as const;
const FM_PATTERN = [SITES, null, FIREWALL_MARKS, null] as const;

export function parseSiteName(name: string, field: string): { site: string } {
  const [site] = parse(name, SITE_PATTERN, field, "site");
  return { site: site! };
}

/** A List parent `sites/{site}` that may be the wildcard `sites/-` (every site): site is "-" then. */
export function parseSiteParent(name: string, field: string, opts: { allowWildcard: boolean }): { site: string } {
  const [site] = parse(name, SITE_PATTERN, field, "site", opts.allowWildcard ? 1 : undefined);
  return { site: site! };
}

export function parseHostName(name: string, field: string): { site: string; host: string } {
  const [site, host] = parse(name, HOST_PATTERN, field, "host");
  return { site: site!, host: host! };
}

export function parseVirtualServiceName(name: string, field: string): { site: string; virtualService: string } {
  const [site, virtualService] = parse(name, VS_PATTERN, field, "virtual service");
  return { site: site!, virtualService: virtualService! };
}

export function parseRealServerName(name: string, field: string): { site: string; virtualService: string; realServer: string } {
  const [site, virtualService, realServer] = parse(name, RS_PATTERN, field, "real server");
  return { site: site!, virtualService: virtualService!, realServer: realServer! };
}

export function parseFirewallMarkName(name: string, field: string): { site: string; firewallMark: string } {
  const [site, firewallMark] = parse(name, FM_PATTERN, field, "firewall mark");
  return { site: site!, firewallMark: firewallMark! };
}

/** Non-throwing variants for validators: the parsed ids, or the violation. */
export function checkHostName(name: unknown, field: string): { site: string; host: string } | FieldViolation {
  const r = match(name, HOST_PATTERN, field, "host");
  return Array.isArray(r) ? { site: r[0]!, host: r[1]! } : r;
}
export function checkSiteName(name: unknown, field: string): { site: string } | FieldViolation {
  const r = match(name, SITE_PATTERN, field, "site");
  return Array.isArray(r) ? { site: r[0]! } : r;
}
export function checkVirtualServiceName(name: unknown, field: string): { site: string; virtualService: string } | FieldViolation {
  const r = match(name, VS_PATTERN, field, "virtual service");
  return Array.isArray(r) ? { site: r[0]!, virtualService: r[1]! } : r;
}
export function checkRealServerName(name: unknown, field: string): { site: string; virtualService: string; realServer: string } | FieldViolation {
  const r = match(name, RS_PATTERN, field, "real server");
  return Array.isArray(r) ? { site: r[0]!, virtualService: r[1]!, realServer: r[2]! } : r;
}
export function checkFirewallMarkName(name: unknown, field: string): { site: string; firewallMark: string } | FieldViolation {
  const r = match(name, FM_PATTERN, field, "firewall mark");
  return Array.isArray(r) ? { site: r[0]!, firewallMark: r[1]! } : r;
}

/** Keeps error messages short whatever the caller sent. */
export function clip(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
