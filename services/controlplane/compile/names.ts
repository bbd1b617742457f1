// Resource-name helpers (AIP-122 style names, see topology.proto):
//   sites/{site}
//   sites/{site}/hosts/{host}
//   sites/{site}/virtualServices/{vs}
//   sites/{site}/virtualServices/{vs}/realServers/{rs}
//   sites/{site}/firewallMarks/{fm}
// Names reach the compiler already validated; these helpers only take them apart.

/** "sites/{site}" (or any longer name under it) → "{site}"; "" when the name is not a site name. */
export function siteId(name: string): string {
  const parts = name.split("/");
  return parts.length >= 2 && parts[0] === "sites" ? parts[1] : "";
}

/** "sites/{site}/hosts/{host}" → "{host}"; "" when the name is not a host name. */
export function hostId(name: string): string {
  const parts = name.split("/");
  return parts.length === 4 && parts[0] === "sites" && parts[2] === "hosts" ? parts[3] : "";
}

/** ".../virtualServices/{vs}/realServers/{rs}" → ".../virtualServices/{vs}" (the parent). */
export function realServerParent(name: string): string {
  const i = name.lastIndexOf("/realServers/");
  return i < 0 ? "" : name.slice(0, i);
}

/** The key of a host's desired state in the JetStream KV bucket: `<site>.<host>`. */
export function desiredStateKey(site: string, host: string): string {
  return `${site}.${host}`;
}
