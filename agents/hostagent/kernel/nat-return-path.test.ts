import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { NatReturnPathSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { checkNatReturnPaths } from "./nat-return-path.js";
import type { RouteInfo } from "./types.js";

const route = (o: Partial<RouteInfo>): RouteInfo => ({ family: 4, destination: "0.0.0.0/0", table: 254, protocol: 3, scope: 0, type: 1, owned: false, ...o });
const reader = (routes: RouteInfo[]) => ({ calls: 0, async list(f?: { family?: 4 | 6 }) { this.calls++; return routes.filter((r) => !f?.family || r.family === f.family); } });
const path = (vs: string, ...directorAddresses: string[]) => create(NatReturnPathSchema, { virtualService: vs, directorAddresses });

describe("NAT return-path check", () => {
  it("passes when the default route goes via a Director; one route read per family", async () => {
    const r = reader([route({ gateway: "198.51.100.1" }), route({ destination: "198.51.100.0/24", scope: 253 })]);
    expect(await checkNatReturnPaths([path("a", "198.51.100.1", "203.0.113.1"), path("b", "198.51.100.1")], r)).toEqual([]);
    expect(r.calls).toBe(1);
  });

  it("names the service, the gateway found and the Directors wanted", async () => {
    const errs = await checkNatReturnPaths([path("web", "198.51.100.1")], reader([route({ gateway: "198.51.100.254" })]));
    expect(errs).toEqual([
      { object: "nat-return-path web", operation: "check", message: "default route via 198.51.100.254 does not go through a Director: NAT replies must go back through a Director (want the default route via 198.51.100.1)" },
    ]);
  });

  it("uses the lowest-metric default route of the main table, and the family of the Directors' addresses", async () => {
    const routes = [
      route({ gateway: "198.51.100.254", metric: 200 }),
      route({ gateway: "198.51.100.1", metric: 100 }),
      route({ gateway: "192.0.2.9", table: 100 }),
      route({ family: 6, destination: "::/0", gateway: "2001:db8::1" }),
    ];
    expect(await checkNatReturnPaths([path("v4", "198.51.100.1"), path("v6", "2001:DB8::1")], reader(routes))).toEqual([]);
    const errs = await checkNatReturnPaths([path("v6", "2001:db8::2")], reader(routes));
    expect(errs.map((e) => e.message)).toEqual([expect.stringContaining("default route via 2001:db8::1 does not go through a Director")]);
  });

  it("reports a missing default route and a gateway-less (multipath / on-link) one", async () => {
    expect((await checkNatReturnPaths([path("x", "198.51.100.1")], reader([])))[0]!.message).toMatch(/^no IPv4 default route: /);
    const errs = await checkNatReturnPaths([path("x", "198.51.100.1")], reader([route({ ifname: "eth0" })]));
    expect(errs[0]!.message).toMatch(/^default route without a gateway \(dev eth0\)/);
  });

  it("nothing to check without NAT services; a clear error without Director addresses", async () => {
    expect(await checkNatReturnPaths([], undefined)).toEqual([]);
    expect((await checkNatReturnPaths([path("x")], reader([route({ gateway: "198.51.100.1" })])))[0]!.message).toMatch(/no Director address known/);
  });
});
