// LinkManager over rtnetlink: list, look up, create ipip tunnels, set up/down, delete.
import { NetlinkError } from "../socket.js";
import type { IpipTunnelSpec, LinkInfo, LinkManager } from "../../kernel/types.js";
import { decodeLink, delLinkRequest, dumpLinksRequest, getLinkByNameRequest, newIpipRequest, setLinkUpRequest } from "./codec.js";
import { RTM_NEWLINK } from "./constants.js";
import { dumpConsistent, type RtTransport } from "./transport.js";

/** Name of the ipip fallback device (net/ipv4/ipip.c: ipip_init_net → "tunl0"). */
export const IPIP_FALLBACK = "tunl0";

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
    const existing = await this.get(IPIP_FALLBACK);
    if (existing) return existing;
    try {
      // Loads ipip on demand; module init creates tunl0 (unless fallback devices are disabled here),
      // after which this request itself fails with EEXIST — both outcomes leave a tunl0.
      await this.nl.request(newIpipRequest({ name: IPIP_FALLBACK }));
    } catch (e) {
      if (!(e instanceof NetlinkError && e.code === "EEXIST")) throw e;
    }
    const link = await this.get(IPIP_FALLBACK);
    if (!link) throw new NetlinkError(`RTM_NEWLINK ipip ${IPIP_FALLBACK}`, 19 /* ENODEV */, { message: `${IPIP_FALLBACK} missing after creating it` });
    return link;
  }

  async setUp(name: string, up: boolean): Promise<void> {
    await this.nl.request(setLinkUpRequest(await this.indexOf(name), name, up));
  }

  async delete(name: string): Promise<void> {
    await this.nl.request(delLinkRequest(await this.indexOf(name), name));
  }
}
