// NAT real servers: the Director rewrites the destination of each request to the real server, so the
// reply must come back through a Director to get its source rewritten back to the VIP. A reply that
// leaves by another router reaches the client from the real server's own address and is dropped
// (http://www.linuxvirtualserver.org/VS-NAT.html: "the real servers must use the director as their
// default gateway"). lvsfleet does not own the real server's routing, so it checks and reports: the
// desired state lists, per NAT service this host serves, the Directors' addresses
// (RealServerState.nat_return_paths); the host's default route (main table, lowest metric) must go
// via one of them. A mismatch is an ObjectError "nat-return-path <virtual service>" — the host shows
// ERROR, and the sync loop's retry clears it once the route is fixed.
//
// Checked: the main table's default route per address family. Not modelled: policy routing (ip rule),
// multipath default routes (no single gateway: reported as not via a Director), more specific routes
// to the client networks (the desired state does not name the clients).
import type { NatReturnPath } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import type { ObjectError } from "./backend.js";
import { RTN_UNICAST, RT_TABLE_MAIN } from "../netlink/rtnetlink/constants.js";
import type { IpFamily, RouteInfo } from "./types.js";

/** What the check needs: RtnlRouteManager.list has it. */
export interface RouteReader {
  list(filter?: { family?: IpFamily; table?: number }): Promise<RouteInfo[]>;
}

const familyOf = (a: string): IpFamily => (a.includes(":") ? 6 : 4);
const canonical = (a: string) => a.toLowerCase();

/** The default route the kernel uses for `family` (main table, lowest metric), if any. */
export function defaultRoute(routes: RouteInfo[], family: IpFamily): RouteInfo | undefined {
  const zero = family === 4 ? "0.0.0.0/0" : "::/0";
  return routes
    .filter((r) => r.family === family && r.table === RT_TABLE_MAIN && r.type === RTN_UNICAST && r.destination === zero)
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
}

/** One ObjectError per NAT service whose replies would not go back through one of its Directors. */
export async function checkNatReturnPaths(paths: readonly NatReturnPath[], routes: RouteReader | undefined): Promise<ObjectError[]> {
  if (paths.length === 0) return [];
  const object = (p: NatReturnPath) => `nat-return-path ${p.virtualService}`;
  if (!routes) return paths.map((p) => ({ object: object(p), operation: "check", message: "cannot read the routing table (no rtnetlink socket)" }));
  const byFamily = new Map<IpFamily, RouteInfo | undefined>();
  const errors: ObjectError[] = [];
  for (const p of paths) {
    const want = p.directorAddresses.map(canonical);
    if (want.length === 0) {
      errors.push({ object: object(p), operation: "check", message: "no Director address known for this NAT service (give the Director hosts addresses): cannot check the return path" });
      continue;
    }
    const family = familyOf(want[0]!);
    if (!byFamily.has(family)) {
      try {
        byFamily.set(family, defaultRoute(await routes.list({ family, table: RT_TABLE_MAIN }), family));
      } catch (e) {
        errors.push({ object: object(p), operation: "check", message: `reading the IPv${family} routes failed: ${(e as Error).message}` });
        continue;
      }
    }
    const route = byFamily.get(family);
    const hint = `NAT replies must go back through a Director (want the default route via ${want.join(" or ")})`;
    if (!route) {
      errors.push({ object: object(p), operation: "check", message: `no IPv${family} default route: ${hint}` });
    } else if (!route.gateway || !want.includes(canonical(route.gateway))) {
      const via = route.gateway ? `via ${route.gateway}` : `without a gateway${route.ifname ? ` (dev ${route.ifname})` : ""} (multipath or on-link)`;
      errors.push({ object: object(p), operation: "check", message: `default route ${via} does not go through a Director: ${hint}` });
    }
  }
  return errors;
}
