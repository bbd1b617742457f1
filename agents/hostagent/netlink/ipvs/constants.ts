// IPVS kernel constants, 1:1 from include/uapi/linux/ip_vs.h (Linux 6.x; same names, same values).
// ipvs/constants.test.ts parses /usr/include/linux/ip_vs.h and checks every #define and enum member
// here, so a wrong or missing constant fails the unit tests.
//
// Kept as plain `export const NAME = value` so that grep for a kernel name finds its use here.

export const IP_VS_VERSION_CODE = 0x010201;
// Virtual Service Flags
export const IP_VS_SVC_F_PERSISTENT = 0x0001; // persistent port
export const IP_VS_SVC_F_HASHED = 0x0002; // hashed entry
export const IP_VS_SVC_F_ONEPACKET = 0x0004; // one-packet scheduling
export const IP_VS_SVC_F_SCHED1 = 0x0008; // scheduler flag 1
export const IP_VS_SVC_F_SCHED2 = 0x0010; // scheduler flag 2
export const IP_VS_SVC_F_SCHED3 = 0x0020; // scheduler flag 3
export const IP_VS_SVC_F_SCHED_SH_FALLBACK = IP_VS_SVC_F_SCHED1; // SH fallback
export const IP_VS_SVC_F_SCHED_SH_PORT = IP_VS_SVC_F_SCHED2; // SH use port
// IPVS sync daemon states
export const IP_VS_STATE_NONE = 0x0000; // daemon is stopped
export const IP_VS_STATE_MASTER = 0x0001; // started as master
export const IP_VS_STATE_BACKUP = 0x0002; // started as backup
// IPVS socket options
export const IP_VS_BASE_CTL = (64+1024+64); // base
export const IP_VS_SO_SET_NONE = IP_VS_BASE_CTL; // just peek
export const IP_VS_SO_SET_INSERT = (IP_VS_BASE_CTL+1);
export const IP_VS_SO_SET_ADD = (IP_VS_BASE_CTL+2);
export const IP_VS_SO_SET_EDIT = (IP_VS_BASE_CTL+3);
export const IP_VS_SO_SET_DEL = (IP_VS_BASE_CTL+4);
export const IP_VS_SO_SET_FLUSH = (IP_VS_BASE_CTL+5);
export const IP_VS_SO_SET_LIST = (IP_VS_BASE_CTL+6);
export const IP_VS_SO_SET_ADDDEST = (IP_VS_BASE_CTL+7);
export const IP_VS_SO_SET_DELDEST = (IP_VS_BASE_CTL+8);
export const IP_VS_SO_SET_EDITDEST = (IP_VS_BASE_CTL+9);
export const IP_VS_SO_SET_TIMEOUT = (IP_VS_BASE_CTL+10);
export const IP_VS_SO_SET_STARTDAEMON = (IP_VS_BASE_CTL+11);
export const IP_VS_SO_SET_STOPDAEMON = (IP_VS_BASE_CTL+12);
export const IP_VS_SO_SET_RESTORE = (IP_VS_BASE_CTL+13);
export const IP_VS_SO_SET_SAVE = (IP_VS_BASE_CTL+14);
export const IP_VS_SO_SET_ZERO = (IP_VS_BASE_CTL+15);
export const IP_VS_SO_SET_MAX = IP_VS_SO_SET_ZERO;
export const IP_VS_SO_GET_VERSION = IP_VS_BASE_CTL;
export const IP_VS_SO_GET_INFO = (IP_VS_BASE_CTL+1);
export const IP_VS_SO_GET_SERVICES = (IP_VS_BASE_CTL+2);
export const IP_VS_SO_GET_SERVICE = (IP_VS_BASE_CTL+3);
export const IP_VS_SO_GET_DESTS = (IP_VS_BASE_CTL+4);
export const IP_VS_SO_GET_DEST = (IP_VS_BASE_CTL+5); // not used now
export const IP_VS_SO_GET_TIMEOUT = (IP_VS_BASE_CTL+6);
export const IP_VS_SO_GET_DAEMON = (IP_VS_BASE_CTL+7);
export const IP_VS_SO_GET_MAX = IP_VS_SO_GET_DAEMON;
// IPVS Connection Flags
// Only flags 0..15 are sent to backup server
export const IP_VS_CONN_F_FWD_MASK = 0x0007; // mask for the fwd methods
export const IP_VS_CONN_F_MASQ = 0x0000; // masquerading/NAT
export const IP_VS_CONN_F_LOCALNODE = 0x0001; // local node
export const IP_VS_CONN_F_TUNNEL = 0x0002; // tunneling
export const IP_VS_CONN_F_DROUTE = 0x0003; // direct routing
export const IP_VS_CONN_F_BYPASS = 0x0004; // cache bypass
export const IP_VS_CONN_F_SYNC = 0x0020; // entry created by sync
export const IP_VS_CONN_F_HASHED = 0x0040; // hashed entry
export const IP_VS_CONN_F_NOOUTPUT = 0x0080; // no output packets
export const IP_VS_CONN_F_INACTIVE = 0x0100; // not established
export const IP_VS_CONN_F_OUT_SEQ = 0x0200; // must do output seq adjust
export const IP_VS_CONN_F_IN_SEQ = 0x0400; // must do input seq adjust
export const IP_VS_CONN_F_SEQ_MASK = 0x0600; // in/out sequence mask
export const IP_VS_CONN_F_NO_CPORT = 0x0800; // no client port set yet
export const IP_VS_CONN_F_TEMPLATE = 0x1000; // template, not connection
export const IP_VS_CONN_F_ONE_PACKET = 0x2000; // forward only one packet
// Initial bits allowed in backup server
export const IP_VS_CONN_F_BACKUP_MASK = (IP_VS_CONN_F_FWD_MASK | IP_VS_CONN_F_NOOUTPUT | IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_SEQ_MASK | IP_VS_CONN_F_NO_CPORT | IP_VS_CONN_F_TEMPLATE );
// Bits allowed to update in backup server
export const IP_VS_CONN_F_BACKUP_UPD_MASK = (IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_SEQ_MASK);
// Flags that are not sent to backup server start from bit 16
export const IP_VS_CONN_F_NFCT = (1 << 16); // use netfilter conntrack
// Connection flags from destination that can be changed by user space
export const IP_VS_CONN_F_DEST_MASK = (IP_VS_CONN_F_FWD_MASK | IP_VS_CONN_F_ONE_PACKET | IP_VS_CONN_F_NFCT | 0);
export const IP_VS_SCHEDNAME_MAXLEN = 16;
export const IP_VS_PENAME_MAXLEN = 16;
export const IP_VS_IFNAME_MAXLEN = 16;
export const IP_VS_PEDATA_MAXLEN = 255;
// Tunnel types
export const IP_VS_CONN_F_TUNNEL_TYPE_IPIP = 0; // IPIP
export const IP_VS_CONN_F_TUNNEL_TYPE_GUE = 1; // GUE
export const IP_VS_CONN_F_TUNNEL_TYPE_GRE = 2; // GRE
export const IP_VS_CONN_F_TUNNEL_TYPE_MAX = 3;

// Tunnel encapsulation flags
export const IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM = (0);
export const IP_VS_TUNNEL_ENCAP_FLAG_CSUM = (1 << 0);
export const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM = (1 << 1);

// ---- IPVS Generic Netlink interface definitions ----
// Generic Netlink family info
export const IPVS_GENL_NAME = "IPVS";
export const IPVS_GENL_VERSION = 0x1;
// Generic Netlink command attributes
export const IPVS_CMD_UNSPEC = 0;
export const IPVS_CMD_NEW_SERVICE = 1; // add service
export const IPVS_CMD_SET_SERVICE = 2; // modify service
export const IPVS_CMD_DEL_SERVICE = 3; // delete service
export const IPVS_CMD_GET_SERVICE = 4; // get service info
export const IPVS_CMD_NEW_DEST = 5; // add destination
export const IPVS_CMD_SET_DEST = 6; // modify destination
export const IPVS_CMD_DEL_DEST = 7; // delete destination
export const IPVS_CMD_GET_DEST = 8; // get destination info
export const IPVS_CMD_NEW_DAEMON = 9; // start sync daemon
export const IPVS_CMD_DEL_DAEMON = 10; // stop sync daemon
export const IPVS_CMD_GET_DAEMON = 11; // get sync daemon status
export const IPVS_CMD_SET_CONFIG = 12; // set config settings
export const IPVS_CMD_GET_CONFIG = 13; // get config settings
export const IPVS_CMD_SET_INFO = 14; // only used in GET_INFO reply
export const IPVS_CMD_GET_INFO = 15; // get general IPVS info
export const IPVS_CMD_ZERO = 16; // zero all counters and stats
export const IPVS_CMD_FLUSH = 17; // flush services and dests
export const __IPVS_CMD_MAX = 18;

export const IPVS_CMD_MAX = (__IPVS_CMD_MAX - 1);
// Attributes used in the first level of commands
export const IPVS_CMD_ATTR_UNSPEC = 0;
export const IPVS_CMD_ATTR_SERVICE = 1; // nested service attribute
export const IPVS_CMD_ATTR_DEST = 2; // nested destination attribute
export const IPVS_CMD_ATTR_DAEMON = 3; // nested sync daemon attribute
export const IPVS_CMD_ATTR_TIMEOUT_TCP = 4; // TCP connection timeout
export const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN = 5; // TCP FIN wait timeout
export const IPVS_CMD_ATTR_TIMEOUT_UDP = 6; // UDP timeout
export const __IPVS_CMD_ATTR_MAX = 7;

export const IPVS_CMD_ATTR_MAX = (__IPVS_CMD_ATTR_MAX - 1);
// Attributes used to describe a service
// Used inside nested attribute IPVS_CMD_ATTR_SERVICE
export const IPVS_SVC_ATTR_UNSPEC = 0;
export const IPVS_SVC_ATTR_AF = 1; // address family
export const IPVS_SVC_ATTR_PROTOCOL = 2; // virtual service protocol
export const IPVS_SVC_ATTR_ADDR = 3; // virtual service address
export const IPVS_SVC_ATTR_PORT = 4; // virtual service port
export const IPVS_SVC_ATTR_FWMARK = 5; // firewall mark of service
export const IPVS_SVC_ATTR_SCHED_NAME = 6; // name of scheduler
export const IPVS_SVC_ATTR_FLAGS = 7; // virtual service flags
export const IPVS_SVC_ATTR_TIMEOUT = 8; // persistent timeout
export const IPVS_SVC_ATTR_NETMASK = 9; // persistent netmask
export const IPVS_SVC_ATTR_STATS = 10; // nested attribute for service stats
export const IPVS_SVC_ATTR_PE_NAME = 11; // name of ct retriever
export const IPVS_SVC_ATTR_STATS64 = 12; // nested attribute for service stats
export const __IPVS_SVC_ATTR_MAX = 13;

export const IPVS_SVC_ATTR_MAX = (__IPVS_SVC_ATTR_MAX - 1);
// Attributes used to describe a destination (real server)
// Used inside nested attribute IPVS_CMD_ATTR_DEST
export const IPVS_DEST_ATTR_UNSPEC = 0;
export const IPVS_DEST_ATTR_ADDR = 1; // real server address
export const IPVS_DEST_ATTR_PORT = 2; // real server port
export const IPVS_DEST_ATTR_FWD_METHOD = 3; // forwarding method
export const IPVS_DEST_ATTR_WEIGHT = 4; // destination weight
export const IPVS_DEST_ATTR_U_THRESH = 5; // upper threshold
export const IPVS_DEST_ATTR_L_THRESH = 6; // lower threshold
export const IPVS_DEST_ATTR_ACTIVE_CONNS = 7; // active connections
export const IPVS_DEST_ATTR_INACT_CONNS = 8; // inactive connections
export const IPVS_DEST_ATTR_PERSIST_CONNS = 9; // persistent connections
export const IPVS_DEST_ATTR_STATS = 10; // nested attribute for dest stats
export const IPVS_DEST_ATTR_ADDR_FAMILY = 11; // Address family of address
export const IPVS_DEST_ATTR_STATS64 = 12; // nested attribute for dest stats
export const IPVS_DEST_ATTR_TUN_TYPE = 13; // tunnel type
export const IPVS_DEST_ATTR_TUN_PORT = 14; // tunnel port
export const IPVS_DEST_ATTR_TUN_FLAGS = 15; // tunnel flags
export const __IPVS_DEST_ATTR_MAX = 16;

export const IPVS_DEST_ATTR_MAX = (__IPVS_DEST_ATTR_MAX - 1);
// Attributes describing a sync daemon
// Used inside nested attribute IPVS_CMD_ATTR_DAEMON
export const IPVS_DAEMON_ATTR_UNSPEC = 0;
export const IPVS_DAEMON_ATTR_STATE = 1; // sync daemon state (master/backup)
export const IPVS_DAEMON_ATTR_MCAST_IFN = 2; // multicast interface name
export const IPVS_DAEMON_ATTR_SYNC_ID = 3; // SyncID we belong to
export const IPVS_DAEMON_ATTR_SYNC_MAXLEN = 4; // UDP Payload Size
export const IPVS_DAEMON_ATTR_MCAST_GROUP = 5; // IPv4 Multicast Address
export const IPVS_DAEMON_ATTR_MCAST_GROUP6 = 6; // IPv6 Multicast Address
export const IPVS_DAEMON_ATTR_MCAST_PORT = 7; // Multicast Port (base)
export const IPVS_DAEMON_ATTR_MCAST_TTL = 8; // Multicast TTL
export const __IPVS_DAEMON_ATTR_MAX = 9;

export const IPVS_DAEMON_ATTR_MAX = (__IPVS_DAEMON_ATTR_MAX - 1);
// Attributes used to describe service or destination entry statistics
// Used inside nested attributes IPVS_SVC_ATTR_STATS, IPVS_DEST_ATTR_STATS,
// IPVS_SVC_ATTR_STATS64 and IPVS_DEST_ATTR_STATS64.
export const IPVS_STATS_ATTR_UNSPEC = 0;
export const IPVS_STATS_ATTR_CONNS = 1; // connections scheduled
export const IPVS_STATS_ATTR_INPKTS = 2; // incoming packets
export const IPVS_STATS_ATTR_OUTPKTS = 3; // outgoing packets
export const IPVS_STATS_ATTR_INBYTES = 4; // incoming bytes
export const IPVS_STATS_ATTR_OUTBYTES = 5; // outgoing bytes
export const IPVS_STATS_ATTR_CPS = 6; // current connection rate
export const IPVS_STATS_ATTR_INPPS = 7; // current in packet rate
export const IPVS_STATS_ATTR_OUTPPS = 8; // current out packet rate
export const IPVS_STATS_ATTR_INBPS = 9; // current in byte rate
export const IPVS_STATS_ATTR_OUTBPS = 10; // current out byte rate
export const IPVS_STATS_ATTR_PAD = 11;
export const __IPVS_STATS_ATTR_MAX = 12;

export const IPVS_STATS_ATTR_MAX = (__IPVS_STATS_ATTR_MAX - 1);
// Attributes used in response to IPVS_CMD_GET_INFO command
export const IPVS_INFO_ATTR_UNSPEC = 0;
export const IPVS_INFO_ATTR_VERSION = 1; // IPVS version number
export const IPVS_INFO_ATTR_CONN_TAB_SIZE = 2; // size of connection hash table
export const __IPVS_INFO_ATTR_MAX = 3;

export const IPVS_INFO_ATTR_MAX = (__IPVS_INFO_ATTR_MAX - 1);

// ---- Not in the uapi header ----
// The MH scheduler reuses the scheduler flag bits; the kernel defines these names privately in
// net/netfilter/ipvs/ip_vs_mh.c and ipvsadm in libipvs/ip_vs.h (`-b mh-fallback,mh-port`).
export const IP_VS_SVC_F_SCHED_MH_FALLBACK = IP_VS_SVC_F_SCHED1; // MH fallback
export const IP_VS_SVC_F_SCHED_MH_PORT = IP_VS_SVC_F_SCHED2; // MH use port

// Address families and protocols carried in IPVS_SVC_ATTR_AF / _PROTOCOL (linux/socket.h, netinet/in.h).
export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

/** sizeof(union nf_inet_addr): IPVS_SVC_ATTR_ADDR / IPVS_DEST_ATTR_ADDR are sent as 16 bytes for v4 too. */
export const NF_INET_ADDR_LEN = 16;
/** sizeof(struct ip_vs_flags) { __u32 flags; __u32 mask; } */
export const IP_VS_FLAGS_LEN = 8;
