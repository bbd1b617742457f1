// LinuxBackend over the in-memory fakes (FakeIpvs + kernel/fakes.ts): the cycle, write counts, the
// owned-set file, restart adoption, resync drift, per-object errors. The same scenarios run on the
// real kernel in test/kernel/agent-reconcile.test.ts.
import { create } from "@bufbuild/protobuf";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "./fake-ipvs.js";
import { createFakeKernel } from "./fakes.js";
import { LinuxBackend, type CycleResult } from "./linux-backend.js";

function desired(opts: { weight?: number; scheduler?: string; director?: boolean; rs?: boolean } = {}): HostDesiredState {
  const ds = create(HostDesiredStateSchema, { site: "s1", host: "h1", revision: 1n });
  if (opts.director !== false) {
    ds.director = {
      $typeName: "lvsfleet.v1.DirectorState",
      services: [
        {
          $typeName: "lvsfleet.v1.IpvsService",
          virtualService: "nat",
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "192.0.2.10",
          port: 80,
          fwmark: 0,
          scheduler: opts.scheduler ?? "wlc",
          schedulerFlags: [],
          persistenceTimeout: 0,
          persistencePrefixLength: 32,
          onePacket: false,
          persistenceEngine: "",
          destinations: ["198.51.100.11", "198.51.100.12"].map((address, i) => ({
            $typeName: "lvsfleet.v1.IpvsDestination" as const,
            realServer: `rs${i}`,
            addressFamily: AddressFamily.IPV4,
            address,
            port: 80,
            forwardMethod: ForwardMethod.NAT,
            weight: i === 0 ? (opts.weight ?? 1) : 1,
            upperThreshold: 0,
            lowerThreshold: 0,
          })),
          failureAction: 0,
        },
      ],
      addresses: [{ $typeName: "lvsfleet.v1.VipAddress", interface: "lo", address: "192.0.2.10", prefixLength: 32 }],
      fwmarkRules: [],
    };
    ds.sysctls = [{ $typeName: "lvsfleet.v1.Sysctl", key: "net.ipv4.ip_forward", value: "1" }];
  }
  if (opts.rs) {
    ds.realServer = { $typeName: "lvsfleet.v1.RealServerState", addresses: [{ $typeName: "lvsfleet.v1.VipAddress", interface: "lo", address: "192.0.2.20", prefixLength: 32 }], tunnels: [], natReturnPaths: [], fouPorts: [] };
    ds.sysctls = [...ds.sysctls, { $typeName: "lvsfleet.v1.Sysctl", key: "net.ipv4.conf.all.arp_ignore", value: "1" }];
  }
  return ds;
}

let dir: string;
let ipvs: FakeIpvs;
let fk: ReturnType<typeof createFakeKernel>;
const backends: LinuxBackend[] = [];

function backend(): LinuxBackend {
  const b = new LinuxBackend({ site: "s1", host: "h1", stateDir: dir, openIpvs: async () => ipvs, ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls });
  backends.push(b);
  return b;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-lb-"));
  ipvs = new FakeIpvs();
  fk = createFakeKernel();
  fk.kernel.ipvsLoaded = true;
});
afterEach(async () => {
  for (const b of backends.splice(0)) await b.close();
  await rm(dir, { recursive: true, force: true });
});

describe("LinuxBackend (fakes)", () => {
  it("applies, then a second apply writes nothing; a weight change is one IPVS write", async () => {
    const b = backend();
    expect((await b.apply(desired())).errors).toEqual([]);
    expect(b.lastCycle!.writes).toBe(1 /* ip_forward */ + 1 /* service */ + 2 /* dests */ + 1 /* VIP */);
    expect([...ipvs.table.keys()]).toEqual(["tcp 192.0.2.10 80"]);
    expect(fk.kernel.addresses.some((a) => a.address === "192.0.2.10" && a.owned)).toBe(true);
    expect(fk.kernel.sysctls.get("net.ipv4.ip_forward")).toBe("1");

    const w0 = ipvs.writes;
    await b.apply(desired());
    expect(b.lastCycle!.writes).toBe(0);
    expect(ipvs.writes).toBe(w0);

    await b.apply(desired({ weight: 7 }));
    expect(b.lastCycle!.writes).toBe(1);
    expect(ipvs.writes - w0).toBe(1);
    expect(ipvs.table.get("tcp 192.0.2.10 80")!.dests.get("198.51.100.11 80")!.weight).toBe(7);
  });

  it("a scheduler change edits the service and keeps the destinations (their counters too)", async () => {
    const b = backend();
    await b.apply(desired());
    const d = ipvs.table.get("tcp 192.0.2.10 80")!.dests.get("198.51.100.11 80")!;
    d.activeConns = 42;
    await b.apply(desired({ scheduler: "rr" }));
    expect(b.lastCycle!.writes).toBe(1);
    expect(ipvs.table.get("tcp 192.0.2.10 80")!.service.scheduler).toBe("rr");
    expect(ipvs.table.get("tcp 192.0.2.10 80")!.dests.get("198.51.100.11 80")!.activeConns).toBe(42);
  });

  it("persists the owned set; a restarted backend adopts with zero writes", async () => {
    await backend().apply(desired());
    const file = JSON.parse(await readFile(join(dir, "agent-s1.h1.owned.json"), "utf8"));
    expect(file.services.map((s: unknown[]) => s[0])).toEqual(["tcp 192.0.2.10:80"]);
    const again = backend();
    const w0 = ipvs.writes;
    expect((await again.apply(desired())).errors).toEqual([]);
    expect(again.lastCycle!.writes).toBe(0);
    expect(ipvs.writes).toBe(w0);
    expect(again.lastCycle!.drift).toEqual([]);
  });

  it("after a restart the periodic resync works without a new apply (the sync loop does not re-apply a revision)", async () => {
    await backend().apply(desired());
    ipvs.table.get("tcp 192.0.2.10 80")!.service.scheduler = "lc";
    const restarted = backend();
    const r = (await restarted.resync())!;
    expect(r).toBeDefined();
    expect(r.drift.map((d) => `${d.object}: ${d.found}`)).toEqual(["ipvs-service tcp 192.0.2.10:80: scheduler lc (want wlc)"]);
    expect(r.writes).toBe(1);
    expect((await restarted.resync())!.writes).toBe(0);
  });

  it("resync repairs changes made behind its back and hands the drift to the report once", async () => {
    const b = backend();
    await b.apply(desired());
    ipvs.table.get("tcp 192.0.2.10 80")!.dests.get("198.51.100.12 80")!.weight = 9;
    const r = (await b.resync()) as CycleResult;
    expect(r.drift.map((d) => `${d.object}: ${d.found}`)).toEqual(["ipvs-destination tcp 192.0.2.10:80 -> 198.51.100.12:80: weight 9 (want 1)"]);
    expect(r.writes).toBe(1);
    expect(ipvs.table.get("tcp 192.0.2.10 80")!.dests.get("198.51.100.12 80")!.weight).toBe(1);
    expect(b.takeDrift().map((d) => d.found)).toEqual(["weight 9 (want 1)"]);
    expect(b.takeDrift()).toEqual([]);
    expect((await b.resync())!.writes).toBe(0);
  });

  it("foreign services are reported, not deleted; role change removes only what lvsfleet made", async () => {
    const b = backend();
    await b.apply(desired());
    ipvs.exec({ op: "newService", service: { family: "ipv4", protocol: "udp", address: "203.0.113.5", port: 53, scheduler: "rr", flags: 0, timeout: 0, netmask: 0xffffffff } });
    const r = await b.apply(desired({ director: false, rs: true }));
    expect(r.errors).toEqual([]);
    expect(b.lastCycle!.foreign.map((f) => f.object)).toEqual(["ipvs-service udp 203.0.113.5:53"]);
    expect([...ipvs.table.keys()]).toEqual(["udp 203.0.113.5 53"]);
    expect(fk.kernel.addresses.filter((a) => a.owned).map((a) => a.address)).toEqual(["192.0.2.20"]);
    expect(fk.kernel.sysctls.get("net.ipv4.ip_forward")).toBe("0"); // put back
    expect(fk.kernel.calls.indexOf("sysctl net.ipv4.conf.all.arp_ignore=1")).toBeLessThan(fk.kernel.calls.indexOf("addr add 192.0.2.20/32 dev lo"));
  });

  it("per-object errors do not abort the rest", async () => {
    const b = backend();
    const ds = desired();
    ds.director!.addresses.push({ $typeName: "lvsfleet.v1.VipAddress", interface: "nosuch0", address: "192.0.2.99", prefixLength: 32 });
    const r = await b.apply(ds);
    expect(r.errors).toEqual([expect.objectContaining({ object: "address nosuch0 192.0.2.99/32", operation: "address-add" })]);
    expect([...ipvs.table.keys()]).toEqual(["tcp 192.0.2.10 80"]);
    expect(fk.kernel.addresses.some((a) => a.address === "192.0.2.10")).toBe(true);
  });

  it("the periodic resync repairs drift on its own and backs off while it keeps finding some", async () => {
    const b = backend();
    await b.apply(desired());
    b.startResync(30);
    const dst = () => ipvs.table.get("tcp 192.0.2.10 80")!.dests.get("198.51.100.11 80")!;
    dst().weight = 4;
    const deadline = Date.now() + 10_000;
    while (dst().weight !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(dst().weight).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(b.takeDrift().map((d) => d.found)).toEqual(["weight 4 (want 1)"]);
  });

  it("a host with no IPVS role never opens IPVS", async () => {
    let opened = 0;
    const b = new LinuxBackend({ site: "s1", host: "h1", stateDir: dir, openIpvs: async () => (opened++, ipvs), ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls });
    backends.push(b);
    expect((await b.apply(desired({ director: false, rs: true }))).errors).toEqual([]);
    expect(opened).toBe(0);
  });

  it("a TUN real server gets the tunnel kind's fallback device (IPv6 outer → ip6tnl0, GRE → gre0) up, with the VIP on it", async () => {
    const ds = desired({ director: false });
    const vip = (iface: string, address: string, prefixLength: number) => ({ $typeName: "lvsfleet.v1.VipAddress" as const, interface: iface, address, prefixLength });
    const tunnel = (name: string, type: TunnelType) => ({ $typeName: "lvsfleet.v1.TunnelInterface" as const, name, type });
    ds.realServer = {
      $typeName: "lvsfleet.v1.RealServerState",
      addresses: [vip("ip6tnl0", "2001:db8::10", 128), vip("gre0", "192.0.2.30", 32)],
      tunnels: [tunnel("ip6tnl0", TunnelType.IPIP), tunnel("gre0", TunnelType.GRE)],
      natReturnPaths: [],
      fouPorts: [],
    };
    const b = backend();
    expect((await b.apply(ds)).errors).toEqual([]);
    for (const [name, kind] of [["ip6tnl0", "ip6tnl"], ["gre0", "gre"]] as const) {
      const l = await fk.links.get(name);
      expect(l, name).toMatchObject({ name, kind, up: true });
      expect(fk.kernel.calls).toContain(`link add ${kind} ${name}`);
    }
    const held = (await fk.addresses.list()).map((a) => `${a.ifname} ${a.address}/${a.prefixLen}`);
    expect(held).toEqual(expect.arrayContaining(["ip6tnl0 2001:db8::10/128", "gre0 192.0.2.30/32"]));
    // Adopted, not re-created, on the next apply.
    const before = fk.kernel.calls.length;
    expect((await b.apply(ds)).errors).toEqual([]);
    expect(fk.kernel.calls.slice(before)).toEqual([]);
  });

  it("a kernel without the tunnel type: a per-object error naming the device, the rest applied", async () => {
    fk.kernel.tunnelKindsSupported.delete("ip6tnl");
    const ds = desired({ director: false });
    ds.realServer = {
      $typeName: "lvsfleet.v1.RealServerState",
      addresses: [{ $typeName: "lvsfleet.v1.VipAddress", interface: "lo", address: "192.0.2.20", prefixLength: 32 }],
      tunnels: [{ $typeName: "lvsfleet.v1.TunnelInterface", name: "ip6tnl0", type: TunnelType.IPIP }],
      natReturnPaths: [],
      fouPorts: [],
    };
    const r = await backend().apply(ds);
    expect(r.errors.map((e) => e.object).join(" ")).toMatch(/ip6tnl0/);
    expect((await fk.addresses.list()).map((a) => a.address)).toContain("192.0.2.20");
  });
});
