// The IPVS table both oracle directions use: each service as a domain object for lvsfleet's client
// and as the ipvsadm arguments that mean the same thing. Only documentation addresses.
import type { IpvsDestination, IpvsService } from "../../agents/hostagent/netlink/ipvs/codec.js";
import * as C from "../../agents/hostagent/netlink/ipvs/constants.js";

export interface DestCase {
  dest: IpvsDestination;
  /** ipvsadm destination options, e.g. "-r 198.51.100.1:80 -m -w 1 -x 100 -y 10". */
  args: string;
  /** The same as `ipvsadm -S` prints it (no thresholds; "--tun-type ipip" on tunnel destinations). */
  save: string;
}

export interface ServiceCase {
  svc: IpvsService;
  /** ipvsadm service selector, e.g. "-t 192.0.2.1:80", "-f 100", "-f 101 -6". */
  sel: string;
  /** ipvsadm service options in `ipvsadm -S` order, e.g. "-s rr -p 300". */
  opts: string;
  dests: DestCase[];
}

export const SCHEDULERS = ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf"] as const;

const v4 = (address: string, port: number, protocol: "tcp" | "udp" | "sctp" = "tcp") => ({ family: "ipv4" as const, protocol, address, port });
const v6 = (address: string, port: number, protocol: "tcp" | "udp" | "sctp" = "tcp") => ({ family: "ipv6" as const, protocol, address, port });
const base = { flags: 0, timeout: 0 };

function dest(address: string, port: number, forward: IpvsDestination["forward"], weight: number, extra: Partial<IpvsDestination> = {}): IpvsDestination {
  return { family: address.includes(":") ? "ipv6" : "ipv4", address, port, forward, weight, upperThreshold: 0, lowerThreshold: 0, ...extra };
}
const hp = (a: string, p: number) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`);
const sw = { masq: "-m", route: "-g", tunnel: "-i", local: "-g", bypass: "-g" } as const;
function d(address: string, port: number, forward: IpvsDestination["forward"], weight: number, extra: Partial<IpvsDestination> = {}, tail = ""): DestCase {
  const dd = dest(address, port, forward, weight, extra);
  const args = `-r ${hp(address, port)} ${sw[forward]} -w ${weight}`;
  // ipvsadm -S leaves thresholds out (they show in -L --thresholds) and names the tunnel type.
  const thresholds = dd.upperThreshold || dd.lowerThreshold ? ` -x ${dd.upperThreshold} -y ${dd.lowerThreshold}` : "";
  const tunType = forward === "tunnel" && !tail.includes("--tun-type") ? " --tun-type ipip" : "";
  return { dest: dd, args: `${args}${thresholds}${tail}`, save: `${args}${tail}${tunType}` };
}

export function cases(): ServiceCase[] {
  const out: ServiceCase[] = SCHEDULERS.map((s, i) => ({
    svc: { ...v4(`192.0.2.${10 + i}`, 80), ...base, scheduler: s, netmask: 0xffffffff },
    sel: `-t 192.0.2.${10 + i}:80`,
    opts: `-s ${s}`,
    dests: [d(`198.51.100.${10 + i}`, 8080, "masq", 1), d(`203.0.113.${10 + i}`, 80, "route", 2)],
  }));
  out.push(
    {
      svc: { ...v4("192.0.2.40", 443), scheduler: "rr", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 300, netmask: 0xffffff00 },
      sel: "-t 192.0.2.40:443",
      opts: "-s rr -p 300 -M 255.255.255.0",
      dests: [d("198.51.100.40", 443, "route", 1)],
    },
    {
      // Port 0: all ports of the VIP (needs persistence).
      svc: { ...v4("192.0.2.41", 0), scheduler: "wlc", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 600, netmask: 0xffffffff },
      sel: "-t 192.0.2.41:0",
      opts: "-s wlc -p 600",
      dests: [d("198.51.100.41", 0, "route", 1)],
    },
    {
      svc: { ...v4("192.0.2.42", 80), scheduler: "sh", flags: C.IP_VS_SVC_F_SCHED_SH_FALLBACK | C.IP_VS_SVC_F_SCHED_SH_PORT, timeout: 0, netmask: 0xffffffff },
      sel: "-t 192.0.2.42:80",
      opts: "-s sh -b sh-fallback,sh-port",
      dests: [d("198.51.100.42", 80, "masq", 1)],
    },
    {
      svc: { ...v4("192.0.2.43", 80), scheduler: "mh", flags: C.IP_VS_SVC_F_SCHED_MH_FALLBACK | C.IP_VS_SVC_F_SCHED_MH_PORT, timeout: 0, netmask: 0xffffffff },
      sel: "-t 192.0.2.43:80",
      opts: "-s mh -b mh-fallback,mh-port",
      dests: [d("198.51.100.43", 80, "masq", 1)],
    },
    {
      svc: { ...v4("192.0.2.44", 53, "udp"), scheduler: "rr", flags: C.IP_VS_SVC_F_ONEPACKET, timeout: 0, netmask: 0xffffffff },
      sel: "-u 192.0.2.44:53",
      opts: "-s rr -o",
      dests: [d("198.51.100.44", 53, "masq", 1)],
    },
    {
      svc: { ...v4("192.0.2.45", 5060, "udp"), scheduler: "rr", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 60, netmask: 0xffffffff, peName: "sip" },
      sel: "-u 192.0.2.45:5060",
      opts: "-s rr -p 60 --pe sip",
      dests: [d("198.51.100.45", 5060, "masq", 1)],
    },
    {
      svc: { ...v4("192.0.2.46", 9000, "sctp"), ...base, scheduler: "rr", netmask: 0xffffffff },
      sel: "--sctp-service 192.0.2.46:9000",
      opts: "-s rr",
      dests: [d("198.51.100.46", 9000, "masq", 1)],
    },
    {
      svc: { ...v4("192.0.2.47", 80), ...base, scheduler: "wrr", netmask: 0xffffffff },
      sel: "-t 192.0.2.47:80",
      opts: "-s wrr",
      dests: [
        d("198.51.100.47", 80, "tunnel", 1),
        d("198.51.100.48", 80, "tunnel", 1, { tunnelType: "gue", tunnelPort: 6080, tunnelFlags: C.IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM }, " --tun-type gue --tun-port 6080 --tun-nocsum"),
        d("198.51.100.49", 80, "tunnel", 1, { tunnelType: "gre", tunnelFlags: C.IP_VS_TUNNEL_ENCAP_FLAG_CSUM }, " --tun-type gre --tun-csum"),
        d("198.51.100.50", 80, "route", 5, { upperThreshold: 1000, lowerThreshold: 100 }),
        d("198.51.100.51", 80, "route", 0),
      ],
    },
    {
      svc: { family: "ipv4", fwmark: 100, ...base, scheduler: "wlc", netmask: 0xffffffff },
      sel: "-f 100",
      opts: "-s wlc",
      dests: [d("198.51.100.100", 0, "route", 1), d("198.51.100.101", 0, "route", 1)],
    },
    {
      svc: { family: "ipv6", fwmark: 101, ...base, scheduler: "rr", netmask: 128 },
      sel: "-f 101 -6",
      opts: "-s rr",
      dests: [d("2001:db8:1::101", 0, "route", 1)],
    },
    {
      svc: { ...v6("2001:db8::10", 80), ...base, scheduler: "wrr", netmask: 128 },
      sel: "-t [2001:db8::10]:80",
      opts: "-s wrr",
      dests: [d("2001:db8:1::10", 8080, "masq", 4), d("2001:db8:2::10", 80, "route", 1)],
    },
    {
      svc: { ...v6("2001:db8::11", 443), scheduler: "lc", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 120, netmask: 64 },
      sel: "-t [2001:db8::11]:443",
      opts: "-s lc -p 120 -M 64",
      dests: [d("2001:db8:1::11", 443, "route", 1)],
    },
  );
  return out;
}

/** The `ipvsadm -S -n` lines the table should produce, sorted. */
export function saveLines(cs: ServiceCase[]): string[] {
  return cs.flatMap((c) => [`-A ${c.sel} ${c.opts}`, ...c.dests.map((x) => `-a ${c.sel} ${x.save}`)]).sort();
}

/** ipvsadm -R input creating the table (services first). */
export function restoreLines(cs: ServiceCase[]): string[] {
  return [...cs.map((c) => `-A ${c.sel} ${c.opts}`), ...cs.flatMap((c) => c.dests.map((x) => `-a ${c.sel} ${x.args}`))];
}

export function serviceKeyString(s: { family: string; fwmark?: number; protocol?: string; address?: string; port?: number }): string {
  return s.fwmark !== undefined ? `${s.family} fwmark ${s.fwmark}` : `${s.family} ${s.protocol} ${s.address} ${s.port}`;
}
