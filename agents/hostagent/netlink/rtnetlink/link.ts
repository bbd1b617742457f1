// LinkManager over rtnetlink: list, look up, create ipip tunnels and the tunnel fallback devices LVS
// TUN real servers receive on (tunl0, ip6tnl0, sit0, gre0, ip6gre0), set up/down, delete.
import { NetlinkError } from "../socket.js";
import type { IpipTunnelSpec, LinkInfo, LinkManager } from "../../kernel/types.js";
import { decodeLink, delLinkRequest, dumpLinksRequest, getLinkByNameRequest, newIpipRequest, newLinkOfKindRequest, setLinkUpRequest } from "./codec.js";
import { RTM_NEWLINK } from "./constants.js";
import { dumpConsistent, type RtTransport } from "./transport.js";

/** Name of the ipip fallback device (net/ipv4/ipip.c: ipip_init_net → "tunl0"). */
export const IPIP_FALLBACK = "tunl0";

/**
 * The any/any ("fallback") device each tunnel module creates in every namespace, keyed by link kind.
 * An LVS real server holds the VIP on the one matching the director's tunnel type and family:
 *   ipip   tunl0    IPv4-in-IPv4: IPVS TUN (tun_type ipip) to an IPv4 real server; also the inner
 *                   IPIP of GUE (with a fou port, see fou.ts)
 *   ip6tnl ip6tnl0  IPv6 TUN: IPv6-in-IPv6 (and IPv4-in-IPv6) from an IPv6 director
 *   sit    sit0     IPv6-in-IPv4
 *   gre    gre0     IPVS TUN with tun_type gre, IPv4 outer
 *   ip6gre ip6gre0  the same with an IPv6 outer header
 */
export const TUNNEL_FALLBACKS = { ipip: "tunl0", ip6tnl: "ip6tnl0", sit: "sit0", gre: "gre0", ip6gre: "ip6gre0" } as const;
export type TunnelFallbackKind = keyof typeof TUNNEL_FALLBACKS;

export class RtnlLinkManager implements LinkManager {
  constructor(private readonly nl: RtTransport) {}

  async list(): Promise<LinkInfo[]> {
    const msgs = await dumpConsistent(this.nl, dumpLinksRequest());
    return msgs.filter((m) => m.type === RTM_NEWLINK).map((m) => decodeLink(m.payload));
  }

  async get(name: string): Promise<LinkInfo | undefined> {
    try {
      const msgs = await this.nl.request(getLinkByNameRequest(name));
      const m = msgs.find((x) => x.type === RTM_NEWLINK);
      return m ? decodeLink(m.payload) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === "ENODEV") return undefined;
      throw e;
    }
  }

  /** Index of an existing link; NetlinkError ENODEV (op names the link) when there is none. */
  async indexOf(name: string): Promise<number> {
    const msgs = await this.nl.request(getLinkByNameRequest(name));
    const m = msgs.find((x) => x.type === RTM_NEWLINK);
    if (!m) throw new NetlinkError(`RTM_GETLINK ${name}`, 19 /* ENODEV */);
    return decodeLink(m.payload).index;
  }

  /**
   * Creates an ipip tunnel (down, as the kernel creates every link; call setUp). EEXIST when the
   * name is taken or another ipip tunnel has the same local/remote pair (tunl0 holds any/any),
   * errno 95 EOPNOTSUPP when the kernel has no ipip support (CONFIG_NET_IPIP) — `code` reads
   * "ENOTSUP", the name Node's errno table lists first for 95.
   */
  async createIpip(spec: IpipTunnelSpec): Promise<LinkInfo> {
    await this.nl.request(newIpipRequest(spec));
    const link = await this.get(spec.name);
    if (!link) throw new NetlinkError(`RTM_NEWLINK ipip ${spec.name}`, 19 /* ENODEV */, { message: `ipip ${spec.name} vanished right after creation` });
    return link;
  }

  async ensureIpipFallback(): Promise<LinkInfo> {
    return this.ensureTunnelFallback("ipip");
  }

  /**
   * The fallback device of a tunnel kind (TUNNEL_FALLBACKS), creating it when missing: asking for a
   * link of that kind loads the module, whose per-namespace init creates the fallback device (unless
   * net.core.fb_tunnels_only_for_init_net keeps it out of this namespace — then this request makes
   * a plain any/any device of that name), after which the request itself fails with EEXIST; both
   * outcomes leave the device. EOPNOTSUPP ("ENOTSUP") when the kernel lacks the tunnel type.
   * Idempotent; the device is left down (setUp).
   */
  async ensureTunnelFallback(kind: TunnelFallbackKind): Promise<LinkInfo> {
    const name = TUNNEL_FALLBACKS[kind];
    if (!name) throw new NetlinkError(`RTM_NEWLINK ${String(kind)}`, 22 /* EINVAL */, { message: `no fallback tunnel device for link kind ${JSON.stringify(kind)}` });
    const existing = await this.get(name);
    if (existing) return existing;
    try {
      await this.nl.request(kind === "ipip" ? newIpipRequest({ name }) : newLinkOfKindRequest(name, kind));
    } catch (e) {
      if (!(e instanceof NetlinkError && e.code === "EEXIST")) throw e;
    }
    const link = await this.get(name);
    if (!link) throw new NetlinkError(`RTM_NEWLINK ${kind} ${name}`, 19 /* ENODEV */, { message: `${name} missing after creating it` });
    return link;
  }

  async setUp(name: string, up: boolean): Promise<void> {
    await this.nl.request(setLinkUpRequest(await this.indexOf(name), name, up));
  }

  async delete(name: string): Promise<void> {
    await this.nl.request(delLinkRequest(await this.indexOf(name), name));
  }
}
