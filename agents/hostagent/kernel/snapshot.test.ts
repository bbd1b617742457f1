import { describe, expect, it } from "vitest";
import { createFakeKernel } from "./fakes.js";
import { readNetKernelState } from "./snapshot.js";
import { IPV4_FORWARD_KEY, ipv4ConfKey, ipvsKey } from "./sysctl.js";

describe("readNetKernelState", () => {
  it("returns only what lvsfleet owns, sysctls by key (null when absent), in one pass", async () => {
    const f = createFakeKernel();
    f.kernel.routes.push({ family: 4, destination: "198.18.0.0/15", gateway: "192.0.2.2", table: 254, protocol: 3, scope: 0, type: 1, owned: false });
    await f.addresses.add({ ifname: "lo", address: "198.51.100.10" });
    await f.routes.add({ destination: "203.0.113.0/24", gateway: "192.0.2.2" });
    await f.fwmarks.apply([{ mark: 3, matches: [{ destinations: ["198.51.100.10"], protocol: "tcp", ports: [{ start: 80, end: 80 }] }] }]);
    await f.sysctls.write(ipv4ConfKey("lo", "arp_ignore"), 1);
    const st = await readNetKernelState(f, [ipv4ConfKey("lo", "arp_ignore"), IPV4_FORWARD_KEY, ipvsKey("conntrack"), ipv4ConfKey("gone0", "rp_filter")]);
    expect(st.vips.map((a) => a.address)).toEqual(["198.51.100.10"]);
    expect(st.routes.map((r) => r.destination)).toEqual(["203.0.113.0/24"]);
    expect(st.fwmarks?.rules.map((r) => r.mark)).toEqual([3]);
    expect(st.links.map((l) => l.name)).toEqual(["lo"]);
    expect(st.sysctls).toEqual({ "net.ipv4.conf.lo.arp_ignore": "1", "net.ipv4.ip_forward": "0", "net.ipv4.vs.conntrack": null, "net.ipv4.conf.gone0.rp_filter": null });
  });
});
