import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { canonicalIp, desiredFromProto, emptyDesired, emptyOwned, nextOwned, parseOwned, reconcile, serializeOwned, serviceKey } from "./index.js";
import { KernelModel, orderingViolations } from "./testing.js";
import type { DesiredHost, DestinationSpec, ObservedHost, Op, OwnedSet, ServiceSpec, ServiceState } from "./types.js";

const svc = (address: string, port = 80, extra: Partial<ServiceSpec> = {}): ServiceSpec => ({
  family: address.includes(":") ? "ipv6" : "ipv4",
  protocol: "tcp",
  address,
  port,
  scheduler: "wlc",
  flags: 0,
  timeout: 0,
  netmask: address.includes(":") ? 128 : 0xffffffff,
  ...extra,
});
const dst = (address: string, extra: Partial<DestinationSpec> = {}): DestinationSpec => ({
  address,
  port: 80,
  family: address.includes(":") ? "ipv6" : "ipv4",
  forward: "masq",
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
  tunnelType: "ipip",
  tunnelPort: 0,
  tunnelFlags: 0,
  ...extra,
});
const NAT: ServiceState = { service: svc("192.0.2.10"), destinations: [dst("198.51.100.11"), dst("198.51.100.12")] };
const DR: ServiceState = { service: svc("192.0.2.20"), destinations: [dst("198.51.100.11", { forward: "route" })] };
const FWM: ServiceState = { service: { family: "ipv4", fwmark: 7, scheduler: "rr", flags: 0, timeout: 0, netmask: 0xffffffff }, destinations: [dst("198.51.100.13", { port: 0, forward: "route" })] };

function director(services: ServiceState[], extra: Partial<DesiredHost> = {}): DesiredHost {
  return {
    ...emptyDesired(),
    services,
    addresses: services.filter((s) => s.service.address).map((s) => ({ ifname: "lo", address: s.service.address!, prefixLen: 32 })),
    sysctls: [{ key: "net.ipv4.ip_forward", value: "1" }],
    ...extra,
  };
}

/** Applies `desired` to `model` from scratch and returns the owned set, asserting no errors. */
function converge(model: KernelModel, desired: DesiredHost, owned: OwnedSet = emptyOwned()): OwnedSet {
  const plan = reconcile(desired, model.observe(), owned);
  const { failed, errors } = model.run(plan.ops);
  expect(errors).toEqual([]);
  return nextOwned(owned, desired, plan, failed).owned;
}

const kinds = (ops: Op[]) => ops.map((o) => `${o.kind} ${o.object}`);

describe("reconcile: table", () => {
  it("nothing desired, nothing there: no ops", () => {
    const plan = reconcile(emptyDesired(), new KernelModel().observe(), emptyOwned());
    expect(plan).toEqual({ ops: [], drift: [], foreign: [], adopted: [] });
  });

  it("a new NAT service: sysctl, service, destinations, then the VIP", () => {
    const plan = reconcile(director([NAT]), new KernelModel().observe(), emptyOwned());
    expect(kinds(plan.ops)).toEqual([
      "sysctl-set sysctl net.ipv4.ip_forward",
      "service-add ipvs-service tcp 192.0.2.10:80",
      "dest-add ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.11:80",
      "dest-add ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.12:80",
      "address-add address lo 192.0.2.10/32",
    ]);
    expect(orderingViolations(plan.ops)).toEqual([]);
  });

  it("applied once, the second reconcile is empty", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT, DR, FWM], { fwmarkRules: [{ mark: 7, matches: [{ destinations: ["192.0.2.30/32"], protocol: "tcp", ports: [{ start: 80, end: 80 }] }] }] }));
    const again = reconcile(director([NAT, DR, FWM], { fwmarkRules: [{ mark: 7, matches: [{ destinations: ["192.0.2.30/32"], protocol: "tcp", ports: [{ start: 80, end: 80 }] }] }] }), m.observe(), owned);
    expect(again.ops).toEqual([]);
    expect(again.drift).toEqual([]);
  });

  it("a changed weight is exactly one dest-edit", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    const next: ServiceState = { ...NAT, destinations: [dst("198.51.100.11", { weight: 5 }), NAT.destinations[1]!] };
    const plan = reconcile(director([next]), m.observe(), owned);
    expect(kinds(plan.ops)).toEqual(["dest-edit ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.11:80"]);
    expect(plan.drift).toEqual([]); // a desired change, not drift
  });

  it("a scheduler change is one service-edit and never touches destinations", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    const plan = reconcile(director([{ ...NAT, service: { ...NAT.service, scheduler: "rr" } }]), m.observe(), owned);
    expect(kinds(plan.ops)).toEqual(["service-edit ipvs-service tcp 192.0.2.10:80"]);
  });

  it("persistence on: one edit with flags, timeout and netmask", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    const p = { ...NAT, service: { ...NAT.service, flags: 1, timeout: 300, netmask: 0xffffff00 } };
    const plan = reconcile(director([p]), m.observe(), owned);
    expect(plan.ops.map((o) => o.kind)).toEqual(["service-edit"]);
  });

  it("adopts a service that is already exactly as desired: no ops, reported as adopted", () => {
    const m = new KernelModel();
    m.addService(NAT);
    m.sysctls.set("net.ipv4.ip_forward", "1");
    m.addresses.set("lo 192.0.2.10", { ifname: "lo", address: "192.0.2.10", prefixLen: 32, owned: true });
    const plan = reconcile(director([NAT]), m.observe(), emptyOwned());
    expect(plan.ops).toEqual([]);
    expect(plan.adopted).toEqual(["tcp 192.0.2.10:80"]);
    const owned = nextOwned(emptyOwned(), director([NAT]), plan).owned;
    expect([...owned.services.keys()]).toEqual(["tcp 192.0.2.10:80"]);
  });

  it("takes over a desired key that exists differently, editing in place (no delete/re-add)", () => {
    const m = new KernelModel();
    m.addService({ service: { ...NAT.service, scheduler: "rr" }, destinations: [dst("198.51.100.11", { weight: 3 }), dst("198.51.100.99")] });
    const plan = reconcile(director([NAT]), m.observe(), emptyOwned());
    expect(plan.ops.filter((o) => o.kind.startsWith("service") || o.kind.startsWith("dest")).map((o) => `${o.kind} ${o.object}`)).toEqual([
      "service-edit ipvs-service tcp 192.0.2.10:80",
      "dest-edit ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.11:80",
      "dest-add ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.12:80",
      "dest-del ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.99:80",
    ]);
    expect(plan.drift).toEqual([]); // never applied by us: not drift
  });

  it("foreign services and unmarked addresses are reported and never touched", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    const foreign: ServiceState = { service: svc("203.0.113.50", 8080, { scheduler: "rr" }), destinations: [dst("198.51.100.77")] };
    m.addService(foreign);
    m.addresses.set("lo 203.0.113.50", { ifname: "lo", address: "203.0.113.50", prefixLen: 32, owned: false });
    const plan = reconcile(emptyDesired(), m.observe(), owned);
    expect(plan.foreign).toEqual([{ object: "ipvs-service tcp 203.0.113.50:8080", note: expect.stringContaining("not created by lvsfleet") }]);
    expect(plan.ops.some((o) => o.object.includes("203.0.113.50"))).toBe(false);
    const { errors } = m.run(plan.ops);
    expect(errors).toEqual([]);
    expect([...m.services.keys()]).toEqual(["tcp 203.0.113.50:8080"]);
    expect([...m.addresses.keys()]).toEqual(["lo 203.0.113.50"]);
  });

  it("drift: a weight, a scheduler and a missing destination changed behind the agent's back", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT, DR]));
    m.services.get("tcp 192.0.2.10:80")!.destinations.get("198.51.100.11:80")!.weight = 5;
    m.services.get("tcp 192.0.2.20:80")!.service.scheduler = "rr";
    m.services.get("tcp 192.0.2.10:80")!.destinations.delete("198.51.100.12:80");
    m.sysctls.set("net.ipv4.ip_forward", "0");
    const plan = reconcile(director([NAT, DR]), m.observe(), owned);
    expect(plan.drift).toEqual(
      expect.arrayContaining([
        { object: "ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.11:80", found: "weight 5 (want 1)" },
        { object: "ipvs-service tcp 192.0.2.20:80", found: "scheduler rr (want wlc)" },
        { object: "ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.12:80", found: "missing" },
        { object: "sysctl net.ipv4.ip_forward", found: "0 (want 1)" },
      ]),
    );
    expect(plan.drift).toHaveLength(4);
    expect(plan.ops).toHaveLength(4);
    m.run(plan.ops);
    expect(reconcile(director([NAT, DR]), m.observe(), nextOwned(owned, director([NAT, DR]), plan).owned).ops).toEqual([]);
  });

  it("drift: a whole service deleted with ipvsadm -D is re-created and reported missing", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    m.services.clear();
    const plan = reconcile(director([NAT]), m.observe(), owned);
    expect(plan.drift).toEqual([{ object: "ipvs-service tcp 192.0.2.10:80", found: "missing" }]);
    expect(plan.ops.map((o) => o.kind)).toEqual(["service-add", "dest-add", "dest-add"]);
  });

  it("drift: a destination added by hand to a managed service is removed and reported", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    m.services.get("tcp 192.0.2.10:80")!.destinations.set("198.51.100.99:80", dst("198.51.100.99", { weight: 2 }));
    const plan = reconcile(director([NAT]), m.observe(), owned);
    expect(plan.drift).toEqual([{ object: "ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.99:80", found: "not desired (weight 2)" }]);
    expect(plan.ops.map((o) => o.kind)).toEqual(["dest-del"]);
  });

  it("replacing every real server: new destinations in before the old ones go", () => {
    const m = new KernelModel();
    const owned = converge(m, director([NAT]));
    const next = { ...NAT, destinations: [dst("198.51.100.21"), dst("198.51.100.22")] };
    const plan = reconcile(director([next]), m.observe(), owned);
    expect(plan.ops.map((o) => o.kind)).toEqual(["dest-add", "dest-add", "dest-del", "dest-del"]);
    expect(orderingViolations(plan.ops)).toEqual([]);
  });

  it("removing a service: destinations, then the service, then its VIP; ip_forward restored last", () => {
    const m = new KernelModel();
    m.sysctls.set("net.ipv4.ip_forward", "0");
    const owned = converge(m, director([NAT]));
    expect(owned.sysctls.get("net.ipv4.ip_forward")).toEqual({ value: "1", was: "0" });
    const plan = reconcile(emptyDesired(), m.observe(), owned);
    expect(kinds(plan.ops)).toEqual([
      "dest-del ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.11:80",
      "dest-del ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.12:80",
      "service-del ipvs-service tcp 192.0.2.10:80",
      "address-del address lo 192.0.2.10/32",
      "sysctl-set sysctl net.ipv4.ip_forward",
    ]);
    m.run(plan.ops);
    expect(m.sysctls.get("net.ipv4.ip_forward")).toBe("0");
    const after = nextOwned(owned, emptyDesired(), plan).owned;
    expect(after.services.size).toBe(0);
    expect(after.sysctls.size).toBe(0);
  });

  it("a sysctl someone changed after lvsfleet set it is not restored (it is theirs now)", () => {
    const m = new KernelModel();
    m.sysctls.set("net.ipv4.ip_forward", "0");
    const owned = converge(m, director([NAT]));
    m.sysctls.set("net.ipv4.ip_forward", "1 ");
    m.sysctls.set("net.ipv4.ip_forward", "1");
    const mine = reconcile(emptyDesired(), m.observe(), { ...owned, sysctls: new Map([["net.ipv4.ip_forward", { value: "1", was: "0" }]]) });
    expect(mine.ops.some((o) => o.kind === "sysctl-set")).toBe(true);
    const theirs = reconcile(emptyDesired(), m.observe(), { ...owned, sysctls: new Map([["net.ipv4.ip_forward", { value: "0", was: "1" }]]) });
    expect(theirs.ops.some((o) => o.kind === "sysctl-set")).toBe(false);
  });

  it("role change Director → real server: old role cleaned up, DR VIP on lo after the ARP sysctls", () => {
    const m = new KernelModel();
    for (const k of ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.eth0.arp_announce"]) m.sysctls.set(k, "0");
    const owned = converge(m, director([NAT]));
    const rs: DesiredHost = {
      ...emptyDesired(),
      addresses: [{ ifname: "lo", address: "192.0.2.20", prefixLen: 32 }],
      sysctls: [
        { key: "net.ipv4.conf.eth0.arp_announce", value: "2" },
        { key: "net.ipv4.conf.eth0.arp_ignore", value: "1" },
      ],
    };
    const plan = reconcile(rs, m.observe(), owned);
    expect(kinds(plan.ops)).toEqual([
      "sysctl-set sysctl net.ipv4.conf.eth0.arp_announce",
      "sysctl-set sysctl net.ipv4.conf.eth0.arp_ignore",
      "address-add address lo 192.0.2.20/32",
      "dest-del ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.11:80",
      "dest-del ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.12:80",
      "service-del ipvs-service tcp 192.0.2.10:80",
      "address-del address lo 192.0.2.10/32",
      "sysctl-set sysctl net.ipv4.ip_forward",
    ]);
    expect(orderingViolations(plan.ops)).toEqual([]);
    const owned2 = nextOwned(owned, rs, plan, m.run(plan.ops).failed).owned;
    expect(reconcile(rs, m.observe(), owned2).ops).toEqual([]);
    expect(m.services.size).toBe(0);
  });

  it("TUN real server: tunnel device up before its rp_filter and its VIP", () => {
    const rs: DesiredHost = {
      ...emptyDesired(),
      tunnels: [{ name: "tunl0", type: "ipip" }],
      addresses: [{ ifname: "tunl0", address: "192.0.2.40", prefixLen: 32 }],
      sysctls: [
        { key: "net.ipv4.conf.all.rp_filter", value: "2" },
        { key: "net.ipv4.conf.tunl0.rp_filter", value: "2" },
      ],
    };
    const m = new KernelModel();
    const plan = reconcile(rs, m.observe(), emptyOwned());
    expect(plan.ops.map((o) => o.kind)).toEqual(["link-up", "sysctl-set", "sysctl-set", "address-add"]);
    const owned = nextOwned(emptyOwned(), rs, plan, m.run(plan.ops).failed).owned;
    expect([...owned.links]).toEqual(["tunl0"]);
    // Role gone: VIP off, sysctls (new keys had no previous value: left), then the device down.
    const gone = reconcile(emptyDesired(), m.observe(), owned);
    expect(gone.ops.map((o) => o.kind)).toEqual(["address-del", "link-down"]);
    expect(orderingViolations(gone.ops)).toEqual([]);
  });

  it("fwmark: the table before the fwmark service; on removal the service before the table", () => {
    const rules = [{ mark: 7, matches: [{ destinations: ["192.0.2.30/32"], protocol: "tcp" as const, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] }];
    const m = new KernelModel();
    const d = director([FWM], { fwmarkRules: rules, sysctls: [] });
    const plan = reconcile(d, m.observe(), emptyOwned());
    expect(plan.ops.map((o) => o.kind)).toEqual(["fwmark-apply", "service-add", "dest-add"]);
    const owned = nextOwned(emptyOwned(), d, plan, m.run(plan.ops).failed).owned;
    const gone = reconcile(emptyDesired(), m.observe(), owned);
    expect(gone.ops.map((o) => o.kind)).toEqual(["dest-del", "service-del", "fwmark-clear"]);
    expect(orderingViolations(gone.ops)).toEqual([]);
  });

  it("fwmark: a mark swapped for another keeps the old mark until its service is gone (interim union)", () => {
    const r7 = { mark: 7, matches: [{ destinations: ["192.0.2.30/32"], protocol: "tcp" as const, ports: [{ start: 80, end: 80 }] }] };
    const r8 = { mark: 8, matches: [{ destinations: ["192.0.2.31/32"], protocol: "tcp" as const, ports: [{ start: 80, end: 80 }] }] };
    const m = new KernelModel();
    const owned = converge(m, director([FWM], { fwmarkRules: [r7], sysctls: [] }));
    const fw8: ServiceState = { ...FWM, service: { ...FWM.service, fwmark: 8 } };
    const plan = reconcile(director([fw8], { fwmarkRules: [r8], sysctls: [] }), m.observe(), owned);
    expect(plan.ops.map((o) => (o.kind === "fwmark-apply" ? `fwmark ${o.rules.map((r) => r.mark).join("+")}` : o.kind))).toEqual([
      "fwmark 8+7",
      "service-add",
      "dest-add",
      "dest-del",
      "service-del",
      "fwmark 8",
    ]);
    expect(orderingViolations(plan.ops)).toEqual([]);
  });

  it("fwmark drift: a hand-edited table is re-applied and reported", () => {
    const rules = [{ mark: 7, matches: [{ destinations: ["192.0.2.30/32"], protocol: "tcp" as const, ports: [{ start: 80, end: 80 }] }] }];
    const m = new KernelModel();
    const d = director([FWM], { fwmarkRules: rules, sysctls: [] });
    const owned = converge(m, d);
    m.fwmark = { rules, problems: ["extra rule: ip daddr 203.0.113.9 meta mark set 0x7"] };
    const plan = reconcile(d, m.observe(), owned);
    expect(plan.ops.map((o) => o.kind)).toEqual(["fwmark-apply"]);
    expect(plan.drift).toEqual([{ object: "nftables table lvsfleet", found: "extra rule: ip daddr 203.0.113.9 meta mark set 0x7" }]);
  });

  it("a VIP whose prefix changed is replaced; an unmarked desired VIP is left as it is", () => {
    const m = new KernelModel();
    m.addresses.set("lo 192.0.2.10", { ifname: "lo", address: "192.0.2.10", prefixLen: 24, owned: true });
    m.addresses.set("lo 192.0.2.20", { ifname: "lo", address: "192.0.2.20", prefixLen: 32, owned: false });
    const d = { ...emptyDesired(), addresses: [{ ifname: "lo", address: "192.0.2.10", prefixLen: 32 }, { ifname: "lo", address: "192.0.2.20", prefixLen: 32 }] };
    const plan = reconcile(d, m.observe(), emptyOwned());
    expect(kinds(plan.ops)).toEqual(["address-del address lo 192.0.2.10/24", "address-add address lo 192.0.2.10/32"]);
    expect(plan.foreign).toEqual([{ object: "address lo 192.0.2.20/32", note: expect.stringContaining("never removed") }]);
    expect(m.run(plan.ops).errors).toEqual([]);
    // No longer desired: the marked one goes, the unmarked one stays.
    const gone = reconcile(emptyDesired(), m.observe(), emptyOwned());
    expect(kinds(gone.ops)).toEqual(["address-del address lo 192.0.2.10/32"]);
  });

  it("IPVS timeouts: only non-zero fields, once", () => {
    const m = new KernelModel();
    const d = { ...emptyDesired(), timeouts: { tcp: 7200, tcpFin: 0, udp: 0 } };
    const plan = reconcile(d, m.observe(), emptyOwned());
    expect(plan.ops.map((o) => o.kind)).toEqual(["ipvs-timeouts"]);
    const owned = nextOwned(emptyOwned(), d, plan, m.run(plan.ops).failed).owned;
    expect(m.timeouts).toEqual({ tcp: 7200, tcpFin: 120, udp: 300 });
    expect(reconcile(d, m.observe(), owned).ops).toEqual([]);
  });

  it("the kernel's LOCALNODE rewrite of a local destination is not a difference", () => {
    const m = new KernelModel();
    m.addService({ service: NAT.service, destinations: [dst("198.51.100.11", { forward: "local" }), NAT.destinations[1]!] });
    m.sysctls.set("net.ipv4.ip_forward", "1");
    m.addresses.set("lo 192.0.2.10", { ifname: "lo", address: "192.0.2.10", prefixLen: 32, owned: true });
    expect(reconcile(director([NAT]), m.observe(), emptyOwned()).ops).toEqual([]);
  });

  it("a failed op leaves the service unclean (no false drift) and a failed delete owned (retried)", () => {
    const m = new KernelModel();
    const d = director([NAT]);
    const plan = reconcile(d, m.observe(), emptyOwned());
    const destOp = plan.ops.find((o) => o.kind === "dest-add")!;
    const owned = nextOwned(emptyOwned(), d, plan, new Set([destOp])).owned;
    expect(owned.services.get("tcp 192.0.2.10:80")?.clean).toBe(false);
    const m2 = new KernelModel();
    m2.addService(NAT);
    const delPlan = reconcile(emptyDesired(), m2.observe(), owned);
    const del = delPlan.ops.find((o) => o.kind === "service-del")!;
    expect(nextOwned(owned, emptyDesired(), delPlan, new Set([del])).owned.services.has("tcp 192.0.2.10:80")).toBe(true);
    expect(nextOwned(owned, emptyDesired(), delPlan).owned.services.has("tcp 192.0.2.10:80")).toBe(false);
  });

  it("the owned set survives its file form", () => {
    const m = new KernelModel();
    m.sysctls.set("net.ipv4.ip_forward", "0");
    const owned = converge(m, director([NAT, FWM], { fwmarkRules: [{ mark: 7, matches: [{ destinations: ["192.0.2.30/32"], ports: [] }] }], timeouts: { tcp: 1, tcpFin: 2, udp: 3 } }));
    const back = parseOwned(serializeOwned(owned));
    expect(back).toEqual(owned);
    expect(() => parseOwned("{")).toThrow(/not JSON/);
    expect(() => parseOwned('{"version":2}')).toThrow(/unknown format/);
  });

  it("never re-creates: an IPv6 service written in another text form is the same object", () => {
    const m = new KernelModel();
    m.addService({ service: svc("2001:db8::10"), destinations: [dst("2001:db8::11")] });
    const d = { ...emptyDesired(), services: [{ service: svc(canonicalIp("2001:DB8:0:0::10")), destinations: [dst(canonicalIp("2001:0db8::0011"))] }] };
    expect(reconcile(d, m.observe(), emptyOwned()).ops).toEqual([]);
  });
});

describe("canonicalIp", () => {
  it.each([
    ["192.0.2.1", "192.0.2.1"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
    ["not-an-ip", "not-an-ip"],
  ])("%s → %s", (a, want) => expect(canonicalIp(a)).toBe(want));
});

describe("desiredFromProto", () => {
  it("maps services, destinations, VIPs, fwmark rules, tunnels, timeouts and sysctls to kernel terms", () => {
    const ds = create(HostDesiredStateSchema, {
      site: "s",
      host: "h",
      director: {
        services: [
          {
            virtualService: "a",
            addressFamily: AddressFamily.IPV4,
            protocol: Protocol.TCP,
            address: "192.0.2.10",
            port: 80,
            scheduler: "sh",
            schedulerFlags: ["sh-fallback", "sh-port"],
            persistenceTimeout: 300,
            persistencePrefixLength: 24,
            onePacket: false,
            destinations: [
              { addressFamily: AddressFamily.IPV4, address: "198.51.100.11", port: 8080, forwardMethod: ForwardMethod.NAT, weight: 3, upperThreshold: 10 },
              { addressFamily: AddressFamily.IPV4, address: "198.51.100.12", port: 80, forwardMethod: ForwardMethod.TUN, weight: 1, tunnel: { type: TunnelType.GUE, port: 5555, checksum: true } },
            ],
          },
          { virtualService: "b", addressFamily: AddressFamily.IPV6, fwmark: 9, scheduler: "", persistencePrefixLength: 128, destinations: [] },
        ],
        timeouts: { tcpSeconds: 0, tcpFinSeconds: 0, udpSeconds: 0 },
        addresses: [{ interface: "lo", address: "2001:DB8::10", prefixLength: 128 }],
        fwmarkRules: [{ mark: 9, matches: [{ destinations: ["2001:db8::10"], protocol: Protocol.UNSPECIFIED, ports: [] }] }],
      },
      realServer: { tunnels: [{ name: "tunl0", type: TunnelType.IPIP }] },
      sysctls: [{ key: "net.ipv4.ip_forward", value: "1" }],
    });
    const d = desiredFromProto(ds);
    expect(d.services[0]!.service).toEqual({ family: "ipv4", protocol: "tcp", address: "192.0.2.10", port: 80, scheduler: "sh", flags: 0x1 | 0x8 | 0x10, timeout: 300, netmask: 0xffffff00 });
    expect(d.services[0]!.destinations).toEqual([
      { address: "198.51.100.11", port: 8080, family: "ipv4", forward: "masq", weight: 3, upperThreshold: 10, lowerThreshold: 0, tunnelType: "ipip", tunnelPort: 0, tunnelFlags: 0 },
      { address: "198.51.100.12", port: 80, family: "ipv4", forward: "tunnel", weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnelType: "gue", tunnelPort: 5555, tunnelFlags: 1 },
    ]);
    expect(d.services[1]!.service).toEqual({ family: "ipv6", fwmark: 9, scheduler: "wlc", flags: 0, timeout: 0, netmask: 128 });
    expect(serviceKey(d.services[1]!.service)).toBe("fwmark ipv6 9");
    expect(d.addresses).toEqual([{ ifname: "lo", address: "2001:db8::10", prefixLen: 128 }]);
    expect(d.fwmarkRules).toEqual([{ mark: 9, matches: [{ destinations: ["2001:db8::10"], ports: [] }] }]);
    expect(d.tunnels).toEqual([{ name: "tunl0", type: "ipip" }]);
    expect(d.timeouts).toBeUndefined();
    expect(d.sysctls).toEqual([{ key: "net.ipv4.ip_forward", value: "1" }]);
  });

  it("non-persistent services keep a full netmask whatever the prefix says", () => {
    const ds = create(HostDesiredStateSchema, { director: { services: [{ addressFamily: AddressFamily.IPV4, protocol: Protocol.UDP, address: "192.0.2.1", port: 53, persistencePrefixLength: 24 }] } });
    expect(desiredFromProto(ds).services[0]!.service.netmask).toBe(0xffffffff);
  });

  it("rejects an unknown scheduler flag instead of programming something else", () => {
    const ds = create(HostDesiredStateSchema, { director: { services: [{ virtualService: "x", addressFamily: AddressFamily.IPV4, protocol: Protocol.TCP, address: "192.0.2.1", port: 1, schedulerFlags: ["flag-9"] }] } });
    expect(() => desiredFromProto(ds)).toThrow(/flag-9/);
  });
});

export type { ObservedHost };
