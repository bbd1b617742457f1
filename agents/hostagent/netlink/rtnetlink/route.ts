// RouteManager over rtnetlink. Routes lvsfleet adds carry rtm_protocol = LVSFLEET_PROTO (76), the
// standard way routing daemons mark their routes (bird = 12, keepalived = 18): `ip route show proto 76`.
import type { IpFamily, RouteInfo, RouteManager, RouteSpec } from "../../kernel/types.js";
import { parseCidr } from "../../kernel/ipaddr.js";
import { decodeLink, decodeRoute, delRouteRequest, dumpLinksRequest, dumpRoutesRequest, newRouteRequest, type RouteRequestSpec } from "./codec.js";
import { LVSFLEET_PROTO, RTM_NEWLINK, RTM_NEWROUTE, RT_TABLE_MAIN } from "./constants.js";
import { RtnlLinkManager } from "./link.js";
import { dumpConsistent, type RtTransport } from "./transport.js";
import { NetlinkEncodeError } from "../socket.js";

export interface RtnlRouteOptions {
  proto?: number;
}

export class RtnlRouteManager implements RouteManager {
  private readonly links: RtnlLinkManager;
  private readonly proto: number;

  constructor(private readonly nl: RtTransport, opts: RtnlRouteOptions = {}) {
    this.links = new RtnlLinkManager(nl);
    this.proto = opts.proto ?? LVSFLEET_PROTO;
  }

  async list(filter: { family?: IpFamily; table?: number; ownedOnly?: boolean } = {}): Promise<RouteInfo[]> {
    const [routeMsgs, linkMsgs] = [await dumpConsistent(this.nl, dumpRoutesRequest(filter.family)), await dumpConsistent(this.nl, dumpLinksRequest())];
    const names = new Map<number, string>();
    for (const m of linkMsgs) if (m.type === RTM_NEWLINK) {
      const l = decodeLink(m.payload);
      names.set(l.index, l.name);
    }
    const out: RouteInfo[] = [];
    for (const m of routeMsgs) {
      if (m.type !== RTM_NEWROUTE) continue;
      const r = decodeRoute(m.payload);
      if (!r) continue;
      if (filter.family && r.family !== filter.family) continue;
      if (filter.table !== undefined && r.table !== filter.table) continue;
      const owned = r.protocol === this.proto;
      if (filter.ownedOnly && !owned) continue;
      const info: RouteInfo = {
        family: r.family,
        destination: `${r.dst}/${r.dstLen}`,
        table: r.table,
        protocol: r.protocol,
        scope: r.scope,
        type: r.type,
        owned,
      };
      if (r.gateway) info.gateway = r.gateway;
      if (r.oif !== undefined) {
        info.ifindex = r.oif;
        const n = names.get(r.oif);
        if (n) info.ifname = n;
      }
      if (r.metric !== undefined) info.metric = r.metric;
      out.push(info);
    }
    return out;
  }

  private async spec(route: RouteSpec): Promise<RouteRequestSpec> {
    let dst;
    try {
      dst = parseCidr(route.destination);
    } catch (e) {
      throw new NetlinkEncodeError(`destination: ${(e as Error).message}`);
    }
    if (!route.gateway && !route.ifname) throw new NetlinkEncodeError("route needs a gateway or an ifname");
    const s: RouteRequestSpec = { family: dst.family, dst: dst.address, dstLen: dst.prefixLen, table: route.table ?? RT_TABLE_MAIN, protocol: this.proto };
    if (route.gateway) s.gateway = route.gateway;
    if (route.ifname) s.oif = await this.links.indexOf(route.ifname);
    if (route.metric !== undefined) s.metric = route.metric;
    return s;
  }

  async add(route: RouteSpec): Promise<void> {
    await this.nl.request(newRouteRequest(await this.spec(route)));
  }

  /** Removes the route; the kernel matches on the given fields (and rtm_protocol = ours). */
  async remove(route: RouteSpec): Promise<void> {
    await this.nl.request(delRouteRequest(await this.spec(route)));
  }
}

