/**
 * Short ids → resource names. Operators type `ams1/web/rs1`; the API wants
 * `sites/ams1/virtualServices/web/realServers/rs1` (https://google.aip.dev/122). Full names (starting
 * with `sites/`) pass through untouched, so scripts can paste what `--json` printed.
 */
import { UsageError } from "./usage.js";

export type Kind = "site" | "host" | "vs" | "rs" | "mark";

/** Collection ids under a site, per kind (the parent chain is always sites/…). */
const PATTERN: Record<Kind, string[]> = {
  site: ["sites"],
  host: ["sites", "hosts"],
  vs: ["sites", "virtualServices"],
  rs: ["sites", "virtualServices", "realServers"],
  mark: ["sites", "firewallMarks"],
};

const EXAMPLE: Record<Kind, string> = {
  site: "ams1",
  host: "ams1/lb1",
  vs: "ams1/web",
  rs: "ams1/web/rs1",
  mark: "ams1/https",
};

/** `ams1/web` → `sites/ams1/virtualServices/web` (for kind "vs"); full names are returned as given. */
export function expandName(kind: Kind, id: string): string {
  if (id.startsWith("sites/")) return id;
  const parts = id.split("/");
  const pattern = PATTERN[kind];
  if (parts.length !== pattern.length || parts.some((p) => p === "")) {
    throw new UsageError(`${JSON.stringify(id)} is not a ${kind} id (expected e.g. ${EXAMPLE[kind]} or a full resource name)`);
  }
  return pattern.map((c, i) => `${c}/${parts[i]}`).join("/");
}

/** Splits a resource name into its parent name and its own id: `sites/a/hosts/b` → [`sites/a`, `b`]. */
export function splitName(name: string): [parent: string, id: string] {
  const parts = name.split("/");
  return [parts.slice(0, -2).join("/"), parts[parts.length - 1] ?? ""];
}

/**
 * A reference to a host from inside a site (a VirtualService's directors, a RealServer's host):
 * `lb1` means the host in `site`, `ams1/lb1` and full names are taken as they are.
 */
export function expandHostRef(site: string, ref: string): string {
  if (ref.startsWith("sites/")) return ref;
  return expandName("host", ref.includes("/") ? ref : `${site}/${ref}`);
}

/** The site id of any resource name (`sites/ams1/...` → `ams1`). */
export function siteOf(name: string): string {
  return name.split("/")[1] ?? "";
}

/** The last segment of a resource name: the id an operator typed. */
export function shortId(name: string): string {
  return name.split("/").pop() ?? name;
}
