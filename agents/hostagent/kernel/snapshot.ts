// One read of everything outside IPVS that the agent owns, for diffing against the desired state:
// one dump per object type (links, addresses, routes), one `nft list table`, one read per sysctl —
// never one request per VIP. Works over the real adapters and the fakes alike.
import type { AddressManager, FwmarkManager, FwmarkState, InterfaceAddress, LinkInfo, LinkManager, RouteInfo, RouteManager, SysctlKey, SysctlManager } from "./types.js";
import { SysctlNotFoundError } from "./errors.js";
import { sysctlKeyToString } from "./sysctl.js";

export interface NetKernelState {
  links: LinkInfo[];
  /** Addresses lvsfleet installed (IFA_PROTO / label marker). */
  vips: InterfaceAddress[];
  /** Routes lvsfleet installed (rtm_protocol 76). */
  routes: RouteInfo[];
  /** lvsfleet's nft table; undefined when absent. */
  fwmarks: FwmarkState | undefined;
  /** sysctl(8)-style key → value; null when the sysctl does not exist (interface gone, ip_vs not loaded). */
  sysctls: Record<string, string | null>;
}

export interface NetKernelManagers {
  links: LinkManager;
  addresses: AddressManager;
  routes: RouteManager;
  fwmarks: FwmarkManager;
  sysctls: SysctlManager;
}

export async function readNetKernelState(m: NetKernelManagers, sysctlKeys: readonly SysctlKey[]): Promise<NetKernelState> {
  // The netlink dumps share one socket and are serialised by it anyway; nft and /proc/sys run alongside.
  const [links, vips, routes, fwmarks, sysctlValues] = await Promise.all([
    m.links.list(),
    m.addresses.list({ ownedOnly: true }),
    m.routes.list({ ownedOnly: true }),
    m.fwmarks.read(),
    Promise.all(
      sysctlKeys.map((k) =>
        m.sysctls.read(k).catch((e) => {
          if (e instanceof SysctlNotFoundError) return null;
          throw e;
        }),
      ),
    ),
  ]);
  const sysctls: Record<string, string | null> = {};
  sysctlKeys.forEach((k, i) => (sysctls[sysctlKeyToString(k)] = sysctlValues[i]));
  return { links, vips, routes, fwmarks, sysctls };
}
