// ProcSysctlManager against the real kernel, inside a network namespace made here.
// Oracle: `cat /proc/sys/...` run inside the namespace by `ip netns exec` (not the adapter's code).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { NetnsPool, type Netns, type NetnsWorker, type Remote } from "../harness/netns.js";
import { IPV4_FORWARD_KEY, ipv4ConfKey, ipv6ForwardingKey, ipvsKey } from "../../agents/hostagent/kernel/sysctl.js";
import { SysctlError, SysctlNotFoundError } from "../../agents/hostagent/kernel/errors.js";
import type { SysctlManager } from "../../agents/hostagent/kernel/types.js";

const pool = new NetnsPool();
let ns: Netns;
let peer: Netns;
let worker: NetnsWorker;
let sysctl: Remote<SysctlManager>;
const hostIpForward = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();

beforeAll(async () => {
  ns = await pool.create();
  peer = await pool.create();
  // "lvsf.100": a dotted name, like a VLAN sub-interface eth0.100.
  await pool.veth(ns, "lvsf.100", peer, "peer0");
  await pool.veth(ns, "vip0", peer, "peer1");
  worker = await pool.worker(ns);
  sysctl = worker.adapter<SysctlManager>("sysctl");
});

afterAll(async () => {
  await pool.cleanup();
});

describe("per-interface ARP and reverse-path sysctls", () => {
  it("writes arp_ignore=1, arp_announce=2, rp_filter=2 on one interface and reads them back", async () => {
    const before = await ns.procSys("net/ipv4/conf/peer1/arp_ignore").catch(() => "absent");
    expect(before).toBe("absent"); // peer1 lives in the other namespace
    await sysctl.write(ipv4ConfKey("vip0", "arp_ignore"), 1);
    await sysctl.write(ipv4ConfKey("vip0", "arp_announce"), 2);
    await sysctl.write(ipv4ConfKey("vip0", "rp_filter"), 2);
    expect(await ns.procSys("net/ipv4/conf/vip0/arp_ignore")).toBe("1");
    expect(await ns.procSys("net/ipv4/conf/vip0/arp_announce")).toBe("2");
    expect(await ns.procSys("net/ipv4/conf/vip0/rp_filter")).toBe("2");
    expect(await sysctl.read(ipv4ConfKey("vip0", "arp_ignore"))).toBe("1");
    // Other interfaces untouched.
    expect(await ns.procSys("net/ipv4/conf/lvsf.100/arp_ignore")).toBe("0");
    // And back to 0: reads follow writes, not a cache.
    await sysctl.write(ipv4ConfKey("vip0", "arp_ignore"), 0);
    expect(await ns.procSys("net/ipv4/conf/vip0/arp_ignore")).toBe("0");
  });

  it("sets conf/all too (the kernel uses max(all, interface))", async () => {
    await sysctl.write(ipv4ConfKey("all", "arp_ignore"), 1);
    await sysctl.write(ipv4ConfKey("all", "arp_announce"), 2);
    expect(await ns.procSys("net/ipv4/conf/all/arp_ignore")).toBe("1");
    expect(await ns.procSys("net/ipv4/conf/all/arp_announce")).toBe("2");
  });

  it("maps an interface name with a dot to its /proc/sys directory (dot kept), sysctl(8) key uses '/'", async () => {
    const key = ipv4ConfKey("lvsf.100", "arp_ignore");
    expect(key).toEqual(["net", "ipv4", "conf", "lvsf.100", "arp_ignore"]);
    await sysctl.write(key, 1);
    expect(await ns.procSys("net/ipv4/conf/lvsf.100/arp_ignore")).toBe("1");
    expect(await sysctl.read(key)).toBe("1");
  });

  it("rejects out-of-range values before writing (the kernel would accept arp_ignore=9)", async () => {
    await sysctl.write(ipv4ConfKey("vip0", "arp_announce"), 1);
    await expect(sysctl.write(ipv4ConfKey("vip0", "arp_announce"), 3)).rejects.toMatchObject({ name: "SysctlError", reason: "invalid-value" });
    expect(await ns.procSys("net/ipv4/conf/vip0/arp_announce")).toBe("1");
  });

  it("surfaces the kernel's EINVAL as a typed invalid-value error", async () => {
    const err = await sysctl.write(["net", "ipv4", "conf", "vip0", "accept_local"], "not-a-number").catch((e) => e);
    expect(err).toBeInstanceOf(SysctlError);
    expect(err).toMatchObject({ reason: "invalid-value", code: "EINVAL" });
  });

  it("reports a missing interface as SysctlNotFoundError", async () => {
    const err = await sysctl.read(ipv4ConfKey("nosuchif0", "rp_filter")).catch((e) => e);
    expect(err).toBeInstanceOf(SysctlNotFoundError);
    expect(err).toMatchObject({ reason: "not-found", code: "ENOENT", key: "net.ipv4.conf.nosuchif0.rp_filter" });
  });
});

describe("forwarding", () => {
  it("turns on net.ipv4.ip_forward in the namespace only", async () => {
    await sysctl.write(IPV4_FORWARD_KEY, 1);
    expect(await ns.procSys("net/ipv4/ip_forward")).toBe("1");
    expect(await peer.procSys("net/ipv4/ip_forward")).toBe("0");
    expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()).toBe(hostIpForward);
    await sysctl.write(IPV4_FORWARD_KEY, 0);
    expect(await ns.procSys("net/ipv4/ip_forward")).toBe("0");
  });

  it("turns on net.ipv6.conf.all.forwarding (propagates to interfaces) and per interface", async () => {
    await sysctl.write(ipv6ForwardingKey("all"), 1);
    expect(await ns.procSys("net/ipv6/conf/all/forwarding")).toBe("1");
    expect(await ns.procSys("net/ipv6/conf/vip0/forwarding")).toBe("1");
    await sysctl.write(ipv6ForwardingKey("vip0"), 0);
    expect(await ns.procSys("net/ipv6/conf/vip0/forwarding")).toBe("0");
    expect(await sysctl.read(ipv6ForwardingKey("vip0"))).toBe("0");
  });
});

describe("net.ipv4.vs.*", () => {
  it("exist only with ip_vs: written and read back when present, SysctlNotFoundError otherwise", async () => {
    const present = (await ns.exec("test", ["-d", "/proc/sys/net/ipv4/vs"], { allowFail: true })).code === 0;
    if (present) {
      await sysctl.write(ipvsKey("conntrack"), 1);
      expect(await ns.procSys("net/ipv4/vs/conntrack")).toBe("1");
      await sysctl.write(ipvsKey("sync_threshold"), "3 50"); // a two-value sysctl, read back tab-separated
      expect(await sysctl.read(ipvsKey("sync_threshold"))).toMatch(/^3\s+50$/);
    } else {
      const err = await sysctl.write(ipvsKey("conntrack"), 1).catch((e) => e);
      expect(err).toBeInstanceOf(SysctlNotFoundError);
      expect(err.message).toMatch(/ip_vs is not loaded/);
      await expect(sysctl.read(ipvsKey("expire_nodest_conn"))).rejects.toBeInstanceOf(SysctlNotFoundError);
    }
  });
});
