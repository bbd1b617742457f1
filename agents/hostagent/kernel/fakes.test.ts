// The fakes must fail the way the real adapters do (test/kernel/*), or reconciler tests lie.
import { describe, expect, it } from "vitest";
import { createFakeKernel } from "./fakes.js";
import { NetlinkError, NetlinkEncodeError } from "../netlink/errors.js";
import { FwmarkInputError, SysctlNotFoundError } from "./errors.js";
import { ipv4ConfKey, ipvsKey, IPV4_FORWARD_KEY } from "./sysctl.js";

describe("fake links and addresses", () => {
  it("adds VIPs marked as ours, rejects duplicates and unknown links like the kernel", async () => {
    const { kernel, links, addresses } = createFakeKernel();
    await addresses.add({ ifname: "lo", address: "198.51.100.10" });
    await addresses.add({ ifname: "lo", address: "2001:DB8::10" });
    expect((await addresses.list({ ownedOnly: true })).map((a) => `${a.address}/${a.prefixLen} ${a.label ?? "-"}`)).toEqual(["198.51.100.10/32 lo:lvsf", "2001:db8::10/128 -"]);
    expect((await addresses.list()).filter((a) => !a.owned).map((a) => a.address)).toEqual(["127.0.0.1", "::1"]);
    await expect(addresses.add({ ifname: "lo", address: "198.51.100.10" })).rejects.toMatchObject({ code: "EEXIST" });
    await expect(addresses.add({ ifname: "tun0", address: "198.51.100.10" })).rejects.toMatchObject({ code: "ENODEV" });
    await expect(addresses.remove({ ifname: "lo", address: "198.51.100.11" })).rejects.toMatchObject({ code: "EADDRNOTAVAIL" });

    const t = await links.createIpip({ name: "tun0", remote: "203.0.113.9" });
    expect(t).toMatchObject({ kind: "ipip", up: false, tunnel: { local: "0.0.0.0", remote: "203.0.113.9" } });
    await expect(links.createIpip({ name: "tun0" })).rejects.toMatchObject({ code: "EEXIST" });
    await expect(links.createIpip({ name: "tun/0" })).rejects.toBeInstanceOf(NetlinkEncodeError);
    await links.setUp("tun0", true);
    await addresses.add({ ifname: "tun0", address: "198.51.100.10" });
    await links.delete("tun0");
    expect((await addresses.list({ ifname: "tun0" })).length).toBe(0);
    expect(kernel.calls).toContain("link set tun0 up");
    kernel.ipipSupported = false;
    const err = await links.createIpip({ name: "tun1" }).catch((e) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err.errno).toBe(95);
  });
});

describe("fake routes", () => {
  it("never removes a route lvsfleet did not add", async () => {
    const { kernel, routes } = createFakeKernel();
    kernel.routes.push({ family: 4, destination: "198.18.0.0/15", gateway: "192.0.2.2", table: 254, protocol: 3, scope: 0, type: 1, owned: false });
    await expect(routes.remove({ destination: "198.18.0.0/15", gateway: "192.0.2.2" })).rejects.toMatchObject({ code: "ESRCH" });
    await routes.add({ destination: "198.51.100.0/24", gateway: "192.0.2.2" });
    await expect(routes.add({ destination: "198.51.100.0/24", gateway: "192.0.2.2" })).rejects.toMatchObject({ code: "EEXIST" });
    expect((await routes.list({ ownedOnly: true })).map((r) => r.destination)).toEqual(["198.51.100.0/24"]);
    await routes.remove({ destination: "198.51.100.0/24", gateway: "192.0.2.2" });
    expect(await routes.list({ ownedOnly: true })).toEqual([]);
  });
});

describe("fake fwmarks and sysctls", () => {
  it("validates and reads back canonical rules", async () => {
    const { fwmarks } = createFakeKernel();
    expect(await fwmarks.read()).toBeUndefined();
    await fwmarks.apply([{ mark: 1, matches: [{ destinations: ["198.51.100.0/25", "198.51.100.128/25"], protocol: "tcp", ports: [{ start: 443, end: 443 }, { start: 80, end: 80 }] }] }]);
    expect(await fwmarks.read()).toEqual({
      rules: [{ mark: 1, matches: [{ destinations: ["198.51.100.0/24"], protocol: "tcp", ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] }],
      problems: [],
    });
    await expect(fwmarks.apply([{ mark: 0, matches: [] }])).rejects.toBeInstanceOf(FwmarkInputError);
    await fwmarks.clear();
    expect(await fwmarks.read()).toBeUndefined();
  });

  it("has per-link conf sysctls that vanish with the link, and net.ipv4.vs.* only with ip_vs", async () => {
    const { kernel, links, sysctls } = createFakeKernel();
    await links.createIpip({ name: "tun0" });
    await sysctls.write(ipv4ConfKey("tun0", "rp_filter"), 0);
    await sysctls.write(IPV4_FORWARD_KEY, 1);
    expect(await sysctls.read(IPV4_FORWARD_KEY)).toBe("1");
    await links.delete("tun0");
    await expect(sysctls.read(ipv4ConfKey("tun0", "rp_filter"))).rejects.toBeInstanceOf(SysctlNotFoundError);
    await expect(sysctls.write(ipvsKey("conntrack"), 1)).rejects.toBeInstanceOf(SysctlNotFoundError);
    kernel.ipvsLoaded = true;
    await sysctls.write(ipvsKey("conntrack"), 1);
    expect(await sysctls.read(ipvsKey("conntrack"))).toBe("1");
    await expect(sysctls.write(ipv4ConfKey("lo", "arp_announce"), 3)).rejects.toMatchObject({ reason: "invalid-value" });
  });
});

describe("fake ipip keying", () => {
  it("like the kernel, refuses a second any/any tunnel once tunl0 exists; ensureIpipFallback is idempotent", async () => {
    const { links } = createFakeKernel();
    const t = await links.ensureIpipFallback();
    expect(t).toMatchObject({ name: "tunl0", kind: "ipip", tunnel: { local: "0.0.0.0", remote: "0.0.0.0" } });
    expect((await links.ensureIpipFallback()).index).toBe(t.index);
    await expect(links.createIpip({ name: "tun-any" })).rejects.toMatchObject({ code: "EEXIST" });
    await links.createIpip({ name: "tun-l", local: "192.0.2.1" });
  });
});
