// The operations whose ipvsadm wire bytes are checked in under testdata/ (captured in the kernel
// target with strace by test/kernel/ipvs-golden.test.ts) and which codec.ts must reproduce byte for
// byte (golden.test.ts). `encode` is what lvsfleet sends for the same operation.
import {
  encodeDelDest,
  encodeDelService,
  encodeFlush,
  encodeNewDest,
  encodeNewService,
  encodeSetConfig,
  encodeSetDest,
  encodeSetService,
  encodeZero,
  type IpvsDestination,
  type IpvsService,
} from "./codec.js";
import * as C from "./constants.js";

export interface GoldenCase {
  /** testdata/<name>.json */
  name: string;
  /** ipvsadm arguments; earlier `setup` commands create what the operation needs. */
  setup: string[];
  args: string;
  /** IPVS command of the captured message. */
  cmd: number;
  /** What lvsfleet's client sends for the same operation (the request builder). */
  encode: () => Buffer;
  /**
   * Attributes ipvsadm sends on top of lvsfleet's message, which the kernel ignores for this
   * command: in destination and delete commands ipvsadm fills the service nest with the options it
   * did not parse (sched_name "", flags 0, timeout 0, netmask), and IPVS_CMD_DEL_DEST with default
   * destination options. ip_vs_genl_parse_service/_dest read only the key unless the command is
   * NEW/SET_SERVICE resp. NEW/SET_DEST. The golden test drops exactly these from the capture (raw
   * bytes) before comparing with lvsfleet's encoding, and separately checks that the generic
   * encoder reproduces ipvsadm's full message byte for byte.
   */
  ipvsadmExtras?: { service?: number[]; dest?: number[] };
}

const SVC_OPTIONS = [C.IPVS_SVC_ATTR_SCHED_NAME, C.IPVS_SVC_ATTR_FLAGS, C.IPVS_SVC_ATTR_TIMEOUT, C.IPVS_SVC_ATTR_NETMASK];
const DEST_OPTIONS = [
  C.IPVS_DEST_ATTR_FWD_METHOD, C.IPVS_DEST_ATTR_WEIGHT, C.IPVS_DEST_ATTR_TUN_TYPE, C.IPVS_DEST_ATTR_TUN_PORT,
  C.IPVS_DEST_ATTR_TUN_FLAGS, C.IPVS_DEST_ATTR_U_THRESH, C.IPVS_DEST_ATTR_L_THRESH,
];

const web: IpvsService = { family: "ipv4", protocol: "tcp", address: "192.0.2.1", port: 80, scheduler: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff };
const dr: IpvsDestination = { family: "ipv4", address: "198.51.100.1", port: 80, forward: "route", weight: 3, upperThreshold: 100, lowerThreshold: 10 };
const nat: IpvsDestination = { family: "ipv4", address: "198.51.100.2", port: 8080, forward: "masq", weight: 2, upperThreshold: 0, lowerThreshold: 0 };
const tun: IpvsDestination = { family: "ipv4", address: "198.51.100.3", port: 80, forward: "tunnel", weight: 1, upperThreshold: 0, lowerThreshold: 0 };
const WEB = "-t 192.0.2.1:80";

export const GOLDEN_CASES: GoldenCase[] = [
  { name: "add-service-tcp-wlc", setup: [], args: `-A ${WEB} -s wlc`, cmd: C.IPVS_CMD_NEW_SERVICE, encode: () => encodeNewService(web) },
  {
    name: "add-service-persistent",
    setup: [],
    args: "-A -t 192.0.2.2:443 -s rr -p 300 -M 255.255.255.0",
    cmd: C.IPVS_CMD_NEW_SERVICE,
    encode: () => encodeNewService({ family: "ipv4", protocol: "tcp", address: "192.0.2.2", port: 443, scheduler: "rr", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 300, netmask: 0xffffff00 }),
  },
  {
    name: "add-service-fwmark",
    setup: [],
    args: "-A -f 10 -s wrr",
    cmd: C.IPVS_CMD_NEW_SERVICE,
    encode: () => encodeNewService({ family: "ipv4", fwmark: 10, scheduler: "wrr", flags: 0, timeout: 0, netmask: 0xffffffff }),
  },
  {
    name: "add-service-ipv6-sh-flags",
    setup: [],
    args: "-A -t [2001:db8::1]:80 -s sh -b sh-fallback,sh-port",
    cmd: C.IPVS_CMD_NEW_SERVICE,
    encode: () =>
      encodeNewService({
        family: "ipv6", protocol: "tcp", address: "2001:db8::1", port: 80, scheduler: "sh",
        flags: C.IP_VS_SVC_F_SCHED_SH_FALLBACK | C.IP_VS_SVC_F_SCHED_SH_PORT, timeout: 0, netmask: 128,
      }),
  },
  {
    name: "add-service-udp-ops",
    setup: [],
    args: "-A -u 192.0.2.3:53 -s rr -o",
    cmd: C.IPVS_CMD_NEW_SERVICE,
    encode: () => encodeNewService({ family: "ipv4", protocol: "udp", address: "192.0.2.3", port: 53, scheduler: "rr", flags: C.IP_VS_SVC_F_ONEPACKET, timeout: 0, netmask: 0xffffffff }),
  },
  {
    name: "edit-service",
    setup: [`-A ${WEB} -s wlc`],
    args: `-E ${WEB} -s rr -p 60`,
    cmd: C.IPVS_CMD_SET_SERVICE,
    encode: () => encodeSetService({ ...web, scheduler: "rr", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 60 }),
  },
  {
    name: "add-dest-route-thresholds",
    setup: [`-A ${WEB} -s wlc`],
    args: `-a ${WEB} -r 198.51.100.1:80 -g -w 3 -x 100 -y 10`,
    cmd: C.IPVS_CMD_NEW_DEST,
    ipvsadmExtras: { service: SVC_OPTIONS },
    encode: () => encodeNewDest(web, dr),
  },
  {
    name: "add-dest-masq",
    setup: [`-A ${WEB} -s wlc`],
    args: `-a ${WEB} -r 198.51.100.2:8080 -m -w 2`,
    cmd: C.IPVS_CMD_NEW_DEST,
    ipvsadmExtras: { service: SVC_OPTIONS },
    encode: () => encodeNewDest(web, nat),
  },
  {
    name: "add-dest-tunnel",
    setup: [`-A ${WEB} -s wlc`],
    args: `-a ${WEB} -r 198.51.100.3:80 -i -w 1`,
    cmd: C.IPVS_CMD_NEW_DEST,
    ipvsadmExtras: { service: SVC_OPTIONS },
    encode: () => encodeNewDest(web, tun),
  },
  {
    name: "edit-dest-weight",
    setup: [`-A ${WEB} -s wlc`, `-a ${WEB} -r 198.51.100.2:8080 -m -w 2`],
    args: `-e ${WEB} -r 198.51.100.2:8080 -m -w 5`,
    cmd: C.IPVS_CMD_SET_DEST,
    ipvsadmExtras: { service: SVC_OPTIONS },
    encode: () => encodeSetDest(web, { ...nat, weight: 5 }),
  },
  {
    name: "delete-dest",
    setup: [`-A ${WEB} -s wlc`, `-a ${WEB} -r 198.51.100.1:80 -g -w 3`],
    args: `-d ${WEB} -r 198.51.100.1:80`,
    cmd: C.IPVS_CMD_DEL_DEST,
    ipvsadmExtras: { service: SVC_OPTIONS, dest: DEST_OPTIONS },
    encode: () => encodeDelDest(web, dr),
  },
  {
    name: "delete-service",
    setup: [`-A ${WEB} -s wlc`],
    args: `-D ${WEB}`,
    cmd: C.IPVS_CMD_DEL_SERVICE,
    ipvsadmExtras: { service: SVC_OPTIONS },
    encode: () => encodeDelService(web),
  },
  { name: "set-timeouts", setup: [], args: "--set 900 120 300", cmd: C.IPVS_CMD_SET_CONFIG, encode: () => encodeSetConfig({ tcp: 900, tcpFin: 120, udp: 300 }) },
  { name: "zero-all", setup: [], args: "-Z", cmd: C.IPVS_CMD_ZERO, encode: () => encodeZero() },
  { name: "flush", setup: [], args: "-C", cmd: C.IPVS_CMD_FLUSH, encode: () => encodeFlush() },
];

export interface GoldenFixture {
  command: string;
  ipvsadm: string;
  kernelRelease: string;
  familyId: number;
  /** Every IPVS-family message ipvsadm sent, in order, as hex of the whole nlmsg. */
  messages: string[];
}

/**
 * Hex of one framed message with nlmsg_seq and nlmsg_pid (bytes 8..15) zeroed — they differ per
 * run — and, with `ignoreType`, nlmsg_type too (the IPVS family id is assigned when ip_vs loads).
 */
export function normalise(msg: Uint8Array, ignoreType = false): string {
  const b = Buffer.from(msg);
  b.fill(0, 8, 16);
  if (ignoreType) b.fill(0, 4, 6);
  return b.toString("hex");
}
