// AddressManager over rtnetlink: VIPs as host addresses (/32, /128) on lo or a tunnel.
//
// Ownership marker — how lvsfleet recognises the addresses it installed (and may remove):
//  - IFA_PROTO = LVSFLEET_PROTO (76) on every address we add, IPv4 and IPv6. IFA_PROTO exists
//    since Linux 5.18 (commit 47f0bd503210, "net: Add new protocol attribute to IP addresses"),
//    is stored per address for both families and echoed in dumps. It is the only per-address tag
//    IPv6 has: IPv6 addresses carry no IFA_LABEL.
//  - IPv4 additionally gets IFA_LABEL "<ifname>:lvsf" (e.g. "lo:lvsf"), the classic alias label,
//    so operators see it in `ip addr` / ifconfig, and so ownership also survives on IPv4 with
//    kernels older than 5.18 (which ignore IFA_PROTO). The label is at most IFNAMSIZ-1 = 15 bytes:
//    for interface names longer than 10 bytes no label is set and IFA_PROTO alone marks it.
//    Linux (devinet.c) stores labels verbatim, but tools (ifconfig, iproute2 `label` checks) expect
//    a label to start with the interface name, hence "<ifname>:".
//  - A state file was rejected: it can disagree with the kernel (crash between the two writes,
//    someone deleting the address by hand), while a marker on the object itself cannot.
// Addresses lvsfleet did not mark are listed with owned=false and must never be removed by the
// reconciler (e.g. 127.0.0.1 on lo, or a VIP an operator added by hand).
import { NetlinkError } from "../socket.js";
import type { AddressManager, InterfaceAddress, IpFamily, VipSpec } from "../../kernel/types.js";
import { canonicalAddress } from "../../kernel/ipaddr.js";
import { decodeAddress, decodeLink, delAddressRequest, dumpAddressesRequest, dumpLinksRequest, familyOf, newAddressRequest } from "./codec.js";
import { IFA_F_NODAD, IFNAMSIZ, LVSFLEET_LABEL_SUFFIX, LVSFLEET_PROTO, RTM_NEWADDR, RTM_NEWLINK } from "./constants.js";
import { RtnlLinkManager } from "./link.js";
import { dumpConsistent, type RtTransport } from "./transport.js";

export interface RtnlAddressOptions {
  /** IFA_PROTO value marking lvsfleet's addresses (default LVSFLEET_PROTO). */
  proto?: number;
}

/** The IPv4 label lvsfleet puts on a VIP on `ifname`, or undefined when it would not fit. */
export function vipLabel(ifname: string): string | undefined {
  const label = ifname + LVSFLEET_LABEL_SUFFIX;
  return Buffer.byteLength(label) < IFNAMSIZ ? label : undefined;
}

export class RtnlAddressManager implements AddressManager {
  private readonly links: RtnlLinkManager;
  private readonly proto: number;

  constructor(private readonly nl: RtTransport, opts: RtnlAddressOptions = {}) {
    this.links = new RtnlLinkManager(nl);
    this.proto = opts.proto ?? LVSFLEET_PROTO;
  }

  async list(filter: { ifname?: string; family?: IpFamily; ownedOnly?: boolean } = {}): Promise<InterfaceAddress[]> {
    // One dump per object type: addresses, and links for index → name.
    const [addrMsgs, linkMsgs] = [await dumpConsistent(this.nl, dumpAddressesRequest(filter.family)), await dumpConsistent(this.nl, dumpLinksRequest())];
    const names = new Map<number, string>();
    for (const m of linkMsgs) if (m.type === RTM_NEWLINK) {
      const l = decodeLink(m.payload);
      names.set(l.index, l.name);
    }
    const out: InterfaceAddress[] = [];
    for (const m of addrMsgs) {
      if (m.type !== RTM_NEWADDR) continue;
      const a = decodeAddress(m.payload);
      if (!a) continue;
      if (filter.family && a.family !== filter.family) continue;
      const ifname = names.get(a.index) ?? `if${a.index}`;
      if (filter.ifname && ifname !== filter.ifname) continue;
      const owned = a.proto === this.proto || (a.family === 4 && a.label !== undefined && a.label === vipLabel(ifname));
      if (filter.ownedOnly && !owned) continue;
      const item: InterfaceAddress = { ifindex: a.index, ifname, family: a.family, address: a.address, prefixLen: a.prefixLen, proto: a.proto, flags: a.flags, scope: a.scope, owned };
      if (a.label !== undefined) item.label = a.label;
      out.push(item);
    }
    return out;
  }

  async add(vip: VipSpec): Promise<void> {
    const family = familyOf(vip.address, "address");
    const index = await this.links.indexOf(vip.ifname);
    await this.nl.request(
      newAddressRequest({
        index,
        ifname: vip.ifname,
        address: canonicalAddress(vip.address),
        prefixLen: vip.prefixLen ?? (family === 4 ? 32 : 128),
        label: family === 4 ? vipLabel(vip.ifname) : undefined,
        proto: this.proto,
        // A VIP must answer at once: no duplicate address detection delay (it is shared by design).
        flags: family === 6 ? IFA_F_NODAD : 0,
      }),
    );
  }

  async remove(vip: VipSpec): Promise<void> {
    const family = familyOf(vip.address, "address");
    const index = await this.links.indexOf(vip.ifname);
    await this.nl.request(delAddressRequest({ index, ifname: vip.ifname, address: canonicalAddress(vip.address), prefixLen: vip.prefixLen ?? (family === 4 ? 32 : 128) }));
  }
}

