// rtnetlink adapters (links, addresses, routes) against the real kernel, in namespaces made here.
// Oracle: iproute2 (`ip -n <ns> -j link|addr|route`), run by the test process — not the adapters.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetnsPool, type Netns, type NetnsWorker, type Remote } from "../harness/netns.js";
import { NetlinkError, NetlinkEncodeError } from "../../agents/hostagent/netlink/errors.js";
import type { AddressManager, LinkManager, RouteManager } from "../../agents/hostagent/kernel/types.js";
import type { NetKernelState } from "../../agents/hostagent/kernel/snapshot.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import { bundleForGuest, mustExec } from "../harness/kernel-target.js";

const pool = new NetnsPool();
let ns: Netns;
let peer: Netns;
let worker: NetnsWorker;
let links: Remote<LinkManager>;
let addrs: Remote<AddressManager>;
let routes: Remote<RouteManager>;

beforeAll(async () => {
  ns = await pool.create();
  peer = await pool.create();
  await pool.veth(ns, "d0", peer, "p0", { a: "192.0.2.1/24", b: "192.0.2.2/24" });
  await pool.veth(ns, "vip-long-name0", peer, "p1");
  await ns.exec("ip", ["addr", "add", "2001:db8:1::1/64", "dev", "d0", "nodad"]);
  await peer.exec("ip", ["addr", "add", "2001:db8:1::2/64", "dev", "p0", "nodad"]);
  worker = await pool.worker(ns);
  links = worker.adapter<LinkManager>("links");
  addrs = worker.adapter<AddressManager>("addresses");
  routes = worker.adapter<RouteManager>("routes");
});

afterAll(async () => {
  await pool.cleanup();
});

const byName = (arr: any[], name: string) => arr.find((l) => l.ifname === name);

describe("links", () => {
  it("lists the namespace's links as ip -j link does", async () => {
    const mine = await links.list();
    const oracle: any[] = await ns.ip("link");
    expect(mine.map((l) => [l.index, l.name, l.mtu, l.up]).sort()).toEqual(oracle.map((l) => [l.ifindex, l.ifname, l.mtu, l.flags.includes("UP")]).sort());
    expect(mine.find((l) => l.name === "d0")?.kind).toBe("veth");
    expect(mine.find((l) => l.name === "lo")?.kind).toBeUndefined();
    expect(await links.get("nosuch0")).toBeUndefined();
  });

  it("sets a link down and up", async () => {
    await links.setUp("vip-long-name0", false);
    expect(byName(await ns.ip("link"), "vip-long-name0").flags).not.toContain("UP");
    expect((await links.get("vip-long-name0"))?.up).toBe(false);
    await links.setUp("vip-long-name0", true);
    expect(byName(await ns.ip("link"), "vip-long-name0").flags).toContain("UP");
    expect((await links.get("vip-long-name0"))?.up).toBe(true);
  });

  it("creates an ipip tunnel with local/remote when the kernel has ipip, else fails with EOPNOTSUPP like iproute2", async () => {
    // Ask the oracle whether this kernel can make ipip links at all (this host's 6.18 cannot).
    const probe = await ns.exec("ip", ["link", "add", "probe0", "type", "ipip"], { allowFail: true });
    if (probe.code === 0) {
      await ns.exec("ip", ["link", "del", "probe0"]);
      const created = await links.createIpip({ name: "tunl-vip", local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 });
      expect(created).toMatchObject({ name: "tunl-vip", kind: "ipip", up: false, tunnel: { local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 } });
      const o = byName(await ns.ip("-d", "link", "show", "tunl-vip"), "tunl-vip");
      expect(o.linkinfo).toMatchObject({ info_kind: "ipip", info_data: { local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 } });
      await links.setUp("tunl-vip", true);
      expect(byName(await ns.ip("link"), "tunl-vip").flags).toContain("UP");
      await addrs.add({ ifname: "tunl-vip", address: "198.51.100.50" });
      expect(byName(await ns.ip("addr", "show", "dev", "tunl-vip"), "tunl-vip").addr_info).toContainEqual(
        expect.objectContaining({ local: "198.51.100.50", prefixlen: 32, label: "tunl-vip:lvsf" }),
      );
      await expect(links.createIpip({ name: "tunl-vip" })).rejects.toMatchObject({ name: "NetlinkError", code: "EEXIST" });
      await links.delete("tunl-vip");
      expect(byName(await ns.ip("link"), "tunl-vip")).toBeUndefined();
    } else {
      expect(probe.stderr).toMatch(/Unknown device type/);
      const err = await links.createIpip({ name: "tunl-vip", local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 }).catch((e) => e);
      expect(err).toBeInstanceOf(NetlinkError);
      expect(err.errno).toBe(95); // EOPNOTSUPP (Node names errno 95 "ENOTSUP", the same number on Linux)
      expect(err.op).toBe("RTM_NEWLINK ipip tunl-vip");
      expect(byName(await ns.ip("link"), "tunl-vip")).toBeUndefined();
      await expect(links.ensureIpipFallback()).rejects.toMatchObject({ name: "NetlinkError", errno: 95 });
    }
    await expect(links.createIpip({ name: "bad/name" })).rejects.toBeInstanceOf(NetlinkEncodeError);
    await expect(links.createIpip({ name: "t6", remote: "2001:db8::1" })).rejects.toBeInstanceOf(NetlinkEncodeError);
  });

  it("deletes a link (the veth peer in the other namespace goes with it)", async () => {
    await pool.veth(ns, "gone0", peer, "gone1");
    expect(byName(await peer.ip("link"), "gone1")).toBeDefined();
    await links.delete("gone0");
    expect(byName(await ns.ip("link"), "gone0")).toBeUndefined();
    expect(byName(await peer.ip("link"), "gone1")).toBeUndefined();
    await expect(links.delete("gone0")).rejects.toMatchObject({ name: "NetlinkError", code: "ENODEV" });
  });
});

describe("addresses (VIPs)", () => {
  it("adds IPv4 /32 with label lo:lvsf and IPv6 /128 on lo, marked as ours", async () => {
    await addrs.add({ ifname: "lo", address: "198.51.100.10" });
    await addrs.add({ ifname: "lo", address: "2001:db8::10" });
    const lo = byName(await ns.ip("addr", "show", "dev", "lo"), "lo");
    expect(lo.addr_info).toContainEqual(expect.objectContaining({ family: "inet", local: "198.51.100.10", prefixlen: 32, label: "lo:lvsf", scope: "global" }));
    expect(lo.addr_info).toContainEqual(expect.objectContaining({ family: "inet6", local: "2001:db8::10", prefixlen: 128, nodad: true }));
    const owned = await addrs.list({ ownedOnly: true });
    expect(owned.map((a) => `${a.ifname} ${a.address}/${a.prefixLen} ${a.label ?? "-"}`).sort()).toEqual(["lo 198.51.100.10/32 lo:lvsf", "lo 2001:db8::10/128 -"]);
    expect(owned.every((a) => a.proto === 76)).toBe(true);
  });

  it("tells ours from addresses someone else added (IPv6 by IFA_PROTO alone, no label exists)", async () => {
    await ns.exec("ip", ["addr", "add", "198.51.100.99/32", "dev", "lo"]);
    await ns.exec("ip", ["-6", "addr", "add", "2001:db8::99/128", "dev", "lo"]);
    const all = await addrs.list({ ifname: "lo" });
    const oracle = byName(await ns.ip("addr", "show", "dev", "lo"), "lo").addr_info.map((a: any) => `${a.local}/${a.prefixlen}`).sort();
    expect(all.map((a) => `${a.address}/${a.prefixLen}`).sort()).toEqual(oracle);
    const owner = Object.fromEntries(all.map((a) => [a.address, a.owned]));
    expect(owner).toEqual({ "127.0.0.1": false, "::1": false, "198.51.100.99": false, "2001:db8::99": false, "198.51.100.10": true, "2001:db8::10": true });
  });

  it("marks a VIP on an interface whose name leaves no room for a label by IFA_PROTO only", async () => {
    await addrs.add({ ifname: "vip-long-name0", address: "198.51.100.11" });
    const o = byName(await ns.ip("addr", "show", "dev", "vip-long-name0"), "vip-long-name0");
    expect(o.addr_info).toContainEqual(expect.objectContaining({ local: "198.51.100.11", prefixlen: 32, label: "vip-long-name0" }));
    const mine = await addrs.list({ ifname: "vip-long-name0", ownedOnly: true });
    expect(mine.map((a) => a.address)).toEqual(["198.51.100.11"]);
  });

  it("rejects duplicates (EEXIST), unknown interfaces (ENODEV) and removes exactly one address", async () => {
    await expect(addrs.add({ ifname: "lo", address: "198.51.100.10" })).rejects.toMatchObject({ name: "NetlinkError", code: "EEXIST" });
    await expect(addrs.add({ ifname: "nosuch0", address: "198.51.100.12" })).rejects.toMatchObject({ name: "NetlinkError", code: "ENODEV" });
    await addrs.remove({ ifname: "lo", address: "198.51.100.10" });
    await addrs.remove({ ifname: "lo", address: "2001:db8::10" });
    const left = byName(await ns.ip("addr", "show", "dev", "lo"), "lo").addr_info.map((a: any) => a.local).sort();
    expect(left).toEqual(["127.0.0.1", "198.51.100.99", "2001:db8::99", "::1"]);
    await expect(addrs.remove({ ifname: "lo", address: "198.51.100.10" })).rejects.toMatchObject({ name: "NetlinkError", code: "EADDRNOTAVAIL" });
  });

  it("lists hundreds of VIPs from one multipart dump", async () => {
    const want: string[] = [];
    for (let i = 0; i < 300; i++) want.push(`198.18.${i >> 8}.${i & 0xff}`);
    for (const a of want) await addrs.add({ ifname: "lo", address: a });
    const mine = (await addrs.list({ ifname: "lo", family: 4, ownedOnly: true })).map((a) => a.address);
    const oracle = byName(await ns.ip("-4", "addr", "show", "dev", "lo"), "lo").addr_info.filter((a: any) => a.label === "lo:lvsf").map((a: any) => a.local);
    expect(mine.sort()).toEqual(want.sort());
    expect(oracle.sort()).toEqual(want.sort());
  });
});

describe("routes", () => {
  it("adds routes via a gateway and via a device, IPv4 and IPv6, marked proto 76", async () => {
    await routes.add({ destination: "198.51.100.0/24", gateway: "192.0.2.2" });
    await routes.add({ destination: "203.0.113.0/24", ifname: "d0", metric: 50 });
    await routes.add({ destination: "2001:db8:ff::/64", gateway: "2001:db8:1::2", ifname: "d0" });
    const v4: any[] = await ns.ip("route", "show", "proto", "76");
    expect(v4.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev, metric: r.metric }))).toEqual([
      { dst: "198.51.100.0/24", gateway: "192.0.2.2", dev: "d0", metric: undefined },
      { dst: "203.0.113.0/24", gateway: undefined, dev: "d0", metric: 50 },
    ]);
    const v6: any[] = await ns.ip("-6", "route", "show", "proto", "76");
    expect(v6.map((r) => ({ dst: r.dst, gateway: r.gateway, dev: r.dev }))).toEqual([{ dst: "2001:db8:ff::/64", gateway: "2001:db8:1::2", dev: "d0" }]);
    // The kernel uses them: route lookups resolve through our routes.
    expect((await ns.ip("route", "get", "198.51.100.7"))[0]).toMatchObject({ gateway: "192.0.2.2", dev: "d0" });
    expect((await ns.ip("-6", "route", "get", "2001:db8:ff::7"))[0]).toMatchObject({ gateway: "2001:db8:1::2", dev: "d0" });
  });

  it("lists routes like ip route, and tells ours from the rest", async () => {
    await ns.exec("ip", ["route", "add", "198.18.0.0/15", "via", "192.0.2.2"]);
    const mine = await routes.list({ family: 4, table: 254 });
    const oracle: any[] = await ns.ip("route", "show", "table", "main");
    expect(mine.map((r) => r.destination.replace(/\/32$/, "")).sort()).toEqual(oracle.map((r) => (r.dst === "default" ? "0.0.0.0/0" : r.dst)).sort());
    const owned = await routes.list({ ownedOnly: true });
    expect(owned.map((r) => r.destination).sort()).toEqual(["198.51.100.0/24", "2001:db8:ff::/64", "203.0.113.0/24"]);
    expect(mine.find((r) => r.destination === "198.18.0.0/15")).toMatchObject({ owned: false, gateway: "192.0.2.2", ifname: "d0", protocol: 3 });
  });

  it("removes only its own routes: a route someone else installed is left alone (ESRCH)", async () => {
    await expect(routes.remove({ destination: "198.18.0.0/15", gateway: "192.0.2.2" })).rejects.toMatchObject({ name: "NetlinkError", code: "ESRCH" });
    expect((await ns.ip("route", "show", "198.18.0.0/15")).length).toBe(1);
    await routes.remove({ destination: "198.51.100.0/24", gateway: "192.0.2.2" });
    await routes.remove({ destination: "203.0.113.0/24", ifname: "d0", metric: 50 });
    await routes.remove({ destination: "2001:db8:ff::/64", gateway: "2001:db8:1::2", ifname: "d0" });
    expect(await ns.ip("route", "show", "proto", "76")).toEqual([]);
    expect(await ns.ip("-6", "route", "show", "proto", "76")).toEqual([]);
    await expect(routes.add({ destination: "198.51.100.0/24" })).rejects.toBeInstanceOf(NetlinkEncodeError);
  });
});

describe("snapshot of everything lvsfleet owns outside IPVS", () => {
  it("reads VIPs, routes, the fwmark table and sysctls in one pass, ignoring what is not ours", async () => {
    await addrs.add({ ifname: "lo", address: "203.0.113.10" });
    await routes.add({ destination: "198.51.100.128/25", gateway: "192.0.2.2" });
    await worker.adapter<{ apply(r: unknown): Promise<void> }>("fwmark").apply([{ mark: 9, matches: [{ destinations: ["203.0.113.10"], protocol: "tcp", ports: [{ start: 80, end: 80 }] }] }]);
    await ns.exec("sh", ["-c", "echo 1 > /proc/sys/net/ipv4/conf/lo/arp_ignore"]);
    const snap = await worker.adapter<{ read(k: string[][]): Promise<NetKernelState> }>("snapshot").read([
      ["net", "ipv4", "conf", "lo", "arp_ignore"],
      ["net", "ipv4", "vs", "conntrack"],
    ]);
    const ours = byName(await ns.ip("addr", "show", "dev", "lo"), "lo").addr_info.filter((a: any) => a.label === "lo:lvsf").map((a: any) => a.local);
    expect(snap.vips.filter((a) => a.family === 4 && a.ifname === "lo").map((a) => a.address).sort()).toEqual(ours.sort());
    expect(snap.vips.filter((a) => a.ifname !== "lo").map((a) => a.address)).toEqual(["198.51.100.11"]);
    expect(snap.vips.map((a) => a.address)).not.toContain("198.51.100.99"); // added by iproute2 above
    expect(snap.routes.map((r) => r.destination)).toEqual((await ns.ip("route", "show", "proto", "76")).map((r: any) => r.dst));
    expect(snap.fwmarks?.rules).toEqual([{ mark: 9, matches: [{ destinations: ["203.0.113.10/32"], protocol: "tcp", ports: [{ start: 80, end: 80 }] }] }]);
    expect(snap.links.map((l) => l.name).sort()).toEqual((await ns.ip("link")).map((l: any) => l.ifname).sort());
    const ipvs = (await ns.exec("test", ["-e", "/proc/sys/net/ipv4/vs/conntrack"], { allowFail: true })).code === 0;
    expect(snap.sysctls).toEqual({
      "net.ipv4.conf.lo.arp_ignore": "1",
      "net.ipv4.vs.conntrack": ipvs ? await ns.procSys("net/ipv4/vs/conntrack") : null,
    });
  });
});

// This host's kernel has no ipip; the IPVS kernel target (Debian 6.1 in the VM the kernel project
// boots anyway, or the host itself when it has IPVS) does. The adapters run there from an esbuild
// bundle in a namespace the script makes and removes; iproute2 in the same namespace is the oracle.
describe("ipip tunnel on the IPVS kernel target", () => {
  it("creates an ipip tunnel with local/remote, brings it up, holds VIPs, deletes it; tunl0 for TUN real servers", async () => {
    const target = await kernelTarget();
    const bundle = await bundleForGuest("test/kernel/rtnetlink-guest.ts");
    const ns = `lvsft-ipip-${process.pid}`;
    const script = [
      "set -e",
      `ip netns add ${ns}`,
      `trap 'ip netns del ${ns}' EXIT`,
      `ip -n ${ns} link set lo up`,
      `ip netns exec ${ns} node ${bundle}`,
    ].join("\n");
    const { out: created, oracle } = JSON.parse(await mustExec(target, script, { timeoutMs: 120_000 }));
    const { link, addr, tunl0, linksAfter } = oracle;
    expect(created.error).toBeUndefined();
    expect(created.created).toMatchObject({ name: "tunl-vip", kind: "ipip", up: false, tunnel: { local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 } });
    expect(created.after).toMatchObject({ name: "tunl-vip", up: true });
    expect(created.duplicate).toMatchObject({ name: "NetlinkError", code: "EEXIST" });
    // Oracle: iproute2 in the same namespace.
    expect(link[0].linkinfo).toMatchObject({ info_kind: "ipip", info_data: { local: "192.0.2.1", remote: "203.0.113.9", ttl: 64 } });
    expect(link[0].flags).toContain("UP");
    expect(addr[0].addr_info.map((a: any) => [a.local, a.prefixlen, a.label])).toEqual(
      expect.arrayContaining([
        ["198.51.100.50", 32, "tunl-vip:lvsf"],
        ["2001:db8::50", 128, undefined],
      ]),
    );
    expect(created.owned.map((a: any) => a.address).sort()).toEqual(["198.51.100.50", "2001:db8::50"]);
    // TUN real servers: the any/any fallback device tunl0 (an any/any named tunnel collides with it).
    expect(created.anyAny).toMatchObject({ name: "NetlinkError", code: "EEXIST" });
    expect(created.fallback).toMatchObject({ name: "tunl0", kind: "ipip", tunnel: { local: "0.0.0.0", remote: "0.0.0.0" } });
    expect(created.fallbackAgain.index).toBe(created.fallback.index);
    expect(tunl0[0].flags).toContain("UP");
    expect(tunl0[0].addr_info.map((a: any) => [a.local, a.prefixlen, a.label])).toEqual([["198.51.100.51", 32, "tunl0:lvsf"]]);
    expect(created.deleted).toBeNull();
    expect(linksAfter.map((l: any) => l.ifname)).not.toContain("tunl-vip");
  });
});

describe("tunnel devices for TUN real servers on the IPVS kernel target", () => {
  it("creates the IPv6 TUN / sit / GRE fallback devices and GUE (fou) receive ports, idempotently, as iproute2 sees them", async () => {
    const target = await kernelTarget();
    const bundle = await bundleForGuest("test/kernel/rtnetlink-tunnels-guest.ts");
    const ns = `lvsft-tun-${process.pid}`;
    const script = ["set -e", `ip netns add ${ns}`, `trap 'ip netns del ${ns}' EXIT`, `ip -n ${ns} link set lo up`, `ip netns exec ${ns} node ${bundle}`].join("\n");
    const { out, oracle } = JSON.parse(await mustExec(target, script, { timeoutMs: 180_000 }));
    expect(out.error).toBeUndefined();
    const names = { ip6tnl: "ip6tnl0", sit: "sit0", gre: "gre0", ip6gre: "ip6gre0" } as const;
    const vips = { ip6tnl: ["2001:db8:6::50", 128], sit: ["2001:db8:5::50", 128], gre: ["198.51.100.60", 32], ip6gre: ["2001:db8:7::50", 128] } as const;
    for (const [kind, name] of Object.entries(names) as [keyof typeof names, string][]) {
      const r = out[kind];
      expect(r.error, kind).toBeUndefined();
      expect(oracle.before, kind).not.toContain(name); // made by this run, not there from the start
      expect(r.first, kind).toMatchObject({ name, kind, up: false });
      expect(r.again.index, kind).toBe(r.first.index);
      // Oracle: iproute2 shows the device up, of that kind, holding the VIP.
      const [dev] = oracle[kind];
      expect(dev.ifname).toBe(name);
      expect(dev.linkinfo.info_kind).toBe(kind);
      expect(dev.flags).toContain("UP");
      expect(dev.addr_info.map((a: any) => [a.local, a.prefixlen])).toContainEqual([...vips[kind]]);
      expect(r.owned.map((a: any) => a.address)).toEqual([vips[kind][0]]);
    }
    // GUE: port 6080 as gue (twice is fine), not silently turned into a direct port; a direct IPIP port.
    expect(out.fouConflict).toMatchObject({ name: "NetlinkError", code: "EEXIST" });
    expect(out.fouConflict.message).toMatch(/exists as gue/);
    expect(out.fouList).toEqual(expect.arrayContaining([
      { port: 6080, encap: "gue", family: 4 },
      { port: 5555, encap: "direct", family: 4, ipproto: 4 },
    ]));
    expect(out.fouList).toHaveLength(2);
    expect(oracle.fou).toMatch(/port 6080 gue/);
    expect(oracle.fou).toMatch(/port 5555 ipproto 4/);
    expect(out.fouAfterDelete).toEqual([{ port: 6080, encap: "gue", family: 4 }]);
    expect(out.fouDeleteAgain).toMatchObject({ name: "NetlinkError" });
  });
});
