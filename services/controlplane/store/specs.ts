/** The resource tables (see migrations/) and how their keys form resource names. */
import { FirewallMarkSchema, HostSchema, RealServerSchema, SiteSchema, VirtualServiceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { firewallMarkName, hostName, realServerName, siteName, virtualServiceName } from "../domain/names.js";
import type { TableSpec } from "./rows.js";

export const SITE_TABLE: TableSpec<typeof SiteSchema> = {
  kind: "site",
  schema: SiteSchema,
  table: "sites",
  keys: ["site_id"],
  name: ([site]) => siteName(site!),
};

export const HOST_TABLE: TableSpec<typeof HostSchema> = {
  kind: "host",
  schema: HostSchema,
  table: "hosts",
  keys: ["site_id", "host_id"],
  name: ([site, host]) => hostName(site!, host!),
};

export const FIREWALL_MARK_TABLE: TableSpec<typeof FirewallMarkSchema> = {
  kind: "firewallMark",
  schema: FirewallMarkSchema,
  table: "firewall_marks",
  keys: ["site_id", "firewall_mark_id"],
  name: ([site, fm]) => firewallMarkName(site!, fm!),
};

export const VIRTUAL_SERVICE_TABLE: TableSpec<typeof VirtualServiceSchema> = {
  kind: "virtualService",
  schema: VirtualServiceSchema,
  table: "virtual_services",
  keys: ["site_id", "virtual_service_id"],
  name: ([site, vs]) => virtualServiceName(site!, vs!),
};

export const REAL_SERVER_TABLE: TableSpec<typeof RealServerSchema> = {
  kind: "realServer",
  schema: RealServerSchema,
  table: "real_servers",
  keys: ["site_id", "virtual_service_id", "real_server_id"],
  name: ([site, vs, rs]) => realServerName(site!, vs!, rs!),
};
