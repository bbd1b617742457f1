// rtnetlink constants, 1:1 from the kernel UAPI headers on this machine:
// /usr/include/linux/rtnetlink.h, if_link.h, if_addr.h, if_tunnel.h, if.h, netlink.h.
// Only the ones lvsfleet uses; names exactly as in the headers.

// rtnetlink.h: message types
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

// socket.h
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

// if_link.h: enum IFLA_*
export const IFLA_ADDRESS = 1;
export const IFLA_BROADCAST = 2;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKINFO = 18;
export const IFLA_EXT_MASK = 29;

// if_link.h: enum IFLA_INFO_*
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;

// rtnetlink.h: RTEXT_FILTER_*
export const RTEXT_FILTER_VF = 1 << 0;
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;

// if_tunnel.h: enum IFLA_IPTUN_*
export const IFLA_IPTUN_LINK = 1;
export const IFLA_IPTUN_LOCAL = 2;
export const IFLA_IPTUN_REMOTE = 3;
export const IFLA_IPTUN_TTL = 4;
export const IFLA_IPTUN_TOS = 5;
export const IFLA_IPTUN_PROTO = 9;
export const IFLA_IPTUN_PMTUDISC = 10;
export const IFLA_IPTUN_ENCAP_TYPE = 15;
export const IFLA_IPTUN_ENCAP_FLAGS = 16;
export const IFLA_IPTUN_ENCAP_SPORT = 17;
export const IFLA_IPTUN_ENCAP_DPORT = 18;
export const IFLA_IPTUN_FWMARK = 20;

// if.h: net_device_flags, IF_OPER_*
export const IFF_UP = 1 << 0;
export const IFF_LOOPBACK = 1 << 3;
export const IFF_RUNNING = 1 << 6;
export const IFF_LOWER_UP = 1 << 16;
export const OPER_STATES = ["unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"] as const;

// if_addr.h: enum IFA_*
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_CACHEINFO = 6;
export const IFA_FLAGS = 8;
export const IFA_PROTO = 11; // u8, since Linux 5.18

// if_addr.h: IFA_F_*
export const IFA_F_SECONDARY = 0x01;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_PERMANENT = 0x80;
export const IFA_F_NOPREFIXROUTE = 0x200;

// if_addr.h: IFAPROT_* (kernel-defined address protocols; userspace may use other values)
export const IFAPROT_UNSPEC = 0;
export const IFAPROT_KERNEL_LO = 1;
export const IFAPROT_KERNEL_RA = 2;
export const IFAPROT_KERNEL_LL = 3;

// rtnetlink.h: enum rtattr_type_t
export const RTA_DST = 1;
export const RTA_SRC = 2;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;

// rtnetlink.h: rtm_type, rtm_protocol, rtm_scope, tables
export const RTN_UNSPEC = 0;
export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RTPROT_STATIC = 4;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
export const RT_SCOPE_NOWHERE = 255;
export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;

/**
 * lvsfleet's ownership marker, used both as IFA_PROTO on addresses and as rtm_protocol on routes.
 * 76 = 'L'; unassigned in rtnetlink.h's RTPROT_* list (which runs 0–18, 42, 99, 186–192) and far
 * from the kernel's IFAPROT_* (0–3). Visible as `proto 76` in `ip route`, and as `proto 76` in
 * `ip addr` with iproute2 >= 6.3.
 */
export const LVSFLEET_PROTO = 76;

/** IFA_LABEL suffix on IPv4 VIPs: "lo:lvsf" (human-visible in `ip addr`; the IFA_PROTO is the marker). */
export const LVSFLEET_LABEL_SUFFIX = ":lvsf";

/** IFNAMSIZ incl. the terminating NUL: labels and interface names are at most 15 bytes. */
export const IFNAMSIZ = 16;
