// LinuxBackend with GUE receive ports (fou), over the fakes: the real-server side of a TUN service
// whose tunnel type is GUE. The same path on a real kernel, with traffic: test/kernel/agent-fou-gue.test.ts.
import { create } from "@bufbuild/protobuf";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "./fake-ipvs.js";
import { createFakeKernel, FakeFouManager } from "./fakes.js";
import { LinuxBackend } from "./linux-backend.js";

/** A GUE TUN real server: VIPs on tunl0, rp_filter loose, fou ports (IPv4 outer unless "6:<port>"). */
function gueRs(ports: (number | string)[], vips = ["192.0.2.50"]): HostDesiredState {
  return create(HostDesiredStateSchema, {
    site: "s1",
    host: "rs1",
    revision: 1n,
    realServer: {
      addresses: vips.map((address) => ({ interface: "tunl0", address, prefixLength: 32 })),
      tunnels: ports.length ? [{ name: "tunl0", type: TunnelType.GUE }] : [],
      fouPorts: ports.map((p) =>
        typeof p === "number" ? { port: p, addressFamily: AddressFamily.IPV4 } : { port: Number(p.split(":")[1]), addressFamily: AddressFamily.IPV6 },
      ),
    },
    sysctls: [
      { key: "net.ipv4.conf.all.rp_filter", value: "2" },
      { key: "net.ipv4.conf.tunl0.rp_filter", value: "2" },
    ],
  });
}
const nothing = () => create(HostDesiredStateSchema, { site: "s1", host: "rs1", revision: 2n });

let dir: string;
let fk: ReturnType<typeof createFakeKernel>;
let opened: number;
const backends: LinuxBackend[] = [];

function backend(): LinuxBackend {
  const open = FakeFouManager.opener(fk.kernel);
  const b = new LinuxBackend({
    site: "s1",
    host: "rs1",
    stateDir: dir,
    openIpvs: async () => new FakeIpvs(),
    ipvsLoaded: () => false,
    links: fk.links,
    addresses: fk.addresses,
    fwmarks: fk.fwmarks,
    sysctls: fk.sysctls,
    openFou: () => (opened++, open()),
  });
  backends.push(b);
  return b;
}
const ports = () => [...fk.kernel.fou.values()].map((p) => `${p.family} ${p.port} ${p.encap}`).sort();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-fou-"));
  fk = createFakeKernel();
  opened = 0;
});
afterEach(async () => {
  for (const b of backends.splice(0)) await b.close();
  await rm(dir, { recursive: true, force: true });
});

describe("LinuxBackend: GUE receive ports (fakes)", () => {
  it("adds the port after the tunnel device and before the VIP; a second apply writes nothing; the owned file names it", async () => {
    const b = backend();
    expect((await b.apply(gueRs([6080, "6:6080"]))).errors).toEqual([]);
    expect(ports()).toEqual(["4 6080 gue", "6 6080 gue"]);
    const calls = fk.kernel.calls;
    const at = (c: string) => calls.findIndex((x) => x.startsWith(c));
    expect(at("fou add port 6080 gue")).toBeGreaterThan(at("link set tunl0 up"));
    expect(at("fou add port 6080 gue")).toBeLessThan(at("addr add 192.0.2.50/32 dev tunl0"));
    expect(calls).toContain("fou add port 6080 gue -6");
    const file = JSON.parse(await readFile(join(dir, "agent-s1.rs1.owned.json"), "utf8")) as { fouPorts: string[] };
    expect(file.fouPorts.sort()).toEqual(["ipv4 6080", "ipv6 6080"]);

    const n = calls.length;
    expect((await b.apply(gueRs([6080, "6:6080"]))).errors).toEqual([]);
    expect(b.lastCycle!.writes).toBe(0);
    expect(calls.slice(n)).toEqual([]);
  });

  it("a restarted agent adopts its ports: zero writes, no drift, nothing foreign", async () => {
    await backend().apply(gueRs([6080]));
    const n = fk.kernel.calls.length;
    const again = backend();
    expect((await again.apply(gueRs([6080]))).errors).toEqual([]);
    expect(again.lastCycle).toMatchObject({ writes: 0, drift: [], foreign: [] });
    expect(fk.kernel.calls.slice(n)).toEqual([]);
  });

  it("resync repairs a port deleted behind its back (also after a restart) and reports the drift once", async () => {
    await backend().apply(gueRs([6080]));
    fk.kernel.fou.clear(); // ip fou del port 6080
    const restarted = backend();
    const r = (await restarted.resync())!;
    expect(r.drift.map((d) => `${d.object}: ${d.found}`)).toEqual(["fou ipv4 port 6080: missing"]);
    expect(r.writes).toBe(1);
    expect(ports()).toEqual(["4 6080 gue"]);
    expect(restarted.takeDrift().map((d) => d.object)).toEqual(["fou ipv4 port 6080"]);
    expect((await restarted.resync())!.writes).toBe(0);
  });

  it("removal: the last GUE service gone → VIP, then the port, then the device down; someone else's ports stay", async () => {
    fk.kernel.fou.set("4 5555", { port: 5555, family: 4, encap: "direct", ipproto: 4 });
    const b = backend();
    await b.apply(gueRs([6080]));
    expect(b.lastCycle!.foreign.map((f) => f.object)).toEqual(["fou ipv4 port 5555"]);
    const n = fk.kernel.calls.length;
    expect((await b.apply(nothing())).errors).toEqual([]);
    const after = fk.kernel.calls.slice(n);
    expect(after.indexOf("fou del port 6080")).toBeGreaterThan(after.findIndex((c) => c.startsWith("addr del 192.0.2.50/32")));
    expect(after.indexOf("fou del port 6080")).toBeLessThan(after.indexOf("link set tunl0 down"));
    expect(ports()).toEqual(["4 5555 direct"]);
    // Nothing desired or owned any more: fou is not even read.
    const before = opened;
    await b.apply(nothing());
    expect(b.lastCycle!.foreign).toEqual([]);
    expect(opened).toBe(before);
  });

  it("a GUE port already made by hand is used, reported as foreign, and never removed", async () => {
    fk.kernel.fou.set("4 6080", { port: 6080, family: 4, encap: "gue" });
    const b = backend();
    expect((await b.apply(gueRs([6080]))).errors).toEqual([]);
    expect(b.lastCycle!.foreign).toEqual([{ object: "fou ipv4 port 6080", note: "desired, but not created by lvsfleet: kept as it is and never removed" }]);
    expect(fk.kernel.calls.some((c) => c.startsWith("fou"))).toBe(false);
    await b.apply(nothing());
    expect(ports()).toEqual(["4 6080 gue"]);
  });

  it("per-object errors: a UDP port held by another socket, or a kernel without fou; the rest is applied", async () => {
    fk.kernel.udpHeld.add("4 6080");
    const b = backend();
    const r = await b.apply(gueRs([6080, 7000]));
    expect(r.errors).toEqual([expect.objectContaining({ object: "fou ipv4 port 6080", operation: "fou-add", message: expect.stringMatching(/EADDRINUSE/) })]);
    expect(ports()).toEqual(["4 7000 gue"]);
    expect((await fk.addresses.list({ ownedOnly: true })).map((a) => a.address)).toEqual(["192.0.2.50"]);
    // Not owned: once the port is free it is added, not reported as drift.
    fk.kernel.udpHeld.clear();
    const again = (await b.resync())!;
    expect(again.errors).toEqual([]);
    expect(again.drift).toEqual([]);
    expect(ports()).toEqual(["4 6080 gue", "4 7000 gue"]);

    const bare = createFakeKernel();
    bare.kernel.fouSupported = false;
    fk = bare;
    const nofou = backend();
    const r2 = await nofou.apply(gueRs([6080]));
    expect(r2.errors).toEqual([expect.objectContaining({ object: "fou", operation: "read", message: expect.stringMatching(/no fou/) })]);
    expect((await bare.addresses.list({ ownedOnly: true })).map((a) => a.address)).toEqual(["192.0.2.50"]);
  });

  it("a host with no GUE port never opens fou", async () => {
    const ds = gueRs([]);
    ds.realServer!.addresses = [{ $typeName: "lvsfleet.v1.VipAddress", interface: "lo", address: "192.0.2.20", prefixLength: 32 }];
    ds.sysctls = [];
    expect((await backend().apply(ds)).errors).toEqual([]);
    expect(opened).toBe(0);
  });
});
