// fou (GUE receive ports) in the reconciler: a TUN real server whose Directors encapsulate with GUE
// holds `ip fou add port <p> gue` next to its tunnel device. Ownership like the rest: only ports
// lvsfleet created are removed or repaired; anyone else's are reported, never touched.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { desiredFromProto, DesiredStateError, emptyDesired, emptyOwned, nextOwned, parseOwned, reconcile, serializeOwned } from "./index.js";
import { KernelModel, orderingViolations } from "./testing.js";
import type { DesiredHost, FouPortSpec, Op, OwnedSet } from "./types.js";

const G6080: FouPortSpec = { port: 6080, family: "ipv4" };
const G7000: FouPortSpec = { port: 7000, family: "ipv4" };
const G6080v6: FouPortSpec = { port: 6080, family: "ipv6" };

/** A GUE TUN real server: VIPs on tunl0, rp_filter loose, the fou ports. */
function gueRealServer(ports: FouPortSpec[], vips = ["192.0.2.50"]): DesiredHost {
  return {
    ...emptyDesired(),
    addresses: vips.map((address) => ({ ifname: "tunl0", address, prefixLen: 32 })),
    sysctls: [
      { key: "net.ipv4.conf.all.rp_filter", value: "2" },
      { key: "net.ipv4.conf.tunl0.rp_filter", value: "2" },
    ],
    tunnels: [{ name: "tunl0", type: "gue" }],
    fouPorts: ports,
  };
}

function newModel(): KernelModel {
  const k = new KernelModel();
  for (const key of ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.tunl0.rp_filter"]) k.sysctls.set(key, "1");
  return k;
}

function step(k: KernelModel, d: DesiredHost, owned: OwnedSet) {
  const plan = reconcile(d, k.observe(), owned);
  expect(orderingViolations(plan.ops)).toEqual([]);
  const r = k.run(plan.ops);
  return { plan, errors: r.errors.map((e) => e.message), owned: nextOwned(owned, d, plan, r.failed).owned };
}

const kinds = (ops: Op[]) => ops.map((o) => `${o.kind} ${o.object}`);
const portsOf = (k: KernelModel) => [...k.fou.values()].map((p) => `${p.family} ${p.port} ${p.encap}`).sort();

describe("reconcile: fou (GUE receive ports)", () => {
  it("a GUE real server from scratch: device up, fou port, sysctls, then the VIP; applied again: nothing", () => {
    const k = newModel();
    const d = gueRealServer([G6080]);
    const s1 = step(k, d, emptyOwned());
    expect(s1.errors).toEqual([]);
    expect(kinds(s1.plan.ops)).toEqual([
      "link-up link tunl0",
      "fou-add fou ipv4 port 6080",
      "sysctl-set sysctl net.ipv4.conf.all.rp_filter",
      "sysctl-set sysctl net.ipv4.conf.tunl0.rp_filter",
      "address-add address tunl0 192.0.2.50/32",
    ]);
    expect(portsOf(k)).toEqual(["ipv4 6080 gue"]);
    expect([...s1.owned.fouPorts!]).toEqual(["ipv4 6080"]);
    const s2 = step(k, d, s1.owned);
    expect(s2.plan).toEqual({ ops: [], drift: [], foreign: [], adopted: [] });
  });

  it("adoption on restart: the owned set read back from its file, the port found: zero writes, no drift, not foreign", () => {
    const k = newModel();
    const d = gueRealServer([G6080, G6080v6]);
    const first = step(k, d, emptyOwned()).owned;
    const restarted = parseOwned(serializeOwned(first));
    expect([...restarted.fouPorts!].sort()).toEqual(["ipv4 6080", "ipv6 6080"]);
    const plan = reconcile(d, k.observe(), restarted);
    expect(plan).toEqual({ ops: [], drift: [], foreign: [], adopted: [] });
    // An owned-set file written before fou was managed still parses (no ports owned).
    const old = JSON.parse(serializeOwned(first)) as Record<string, unknown>;
    delete old.fouPorts;
    expect(parseOwned(JSON.stringify(old)).fouPorts!.size).toBe(0);
  });

  it("a second port is added alone; the last GUE service going removes the VIP, then the port, then takes the device down", () => {
    const k = newModel();
    let owned = step(k, gueRealServer([G6080]), emptyOwned()).owned;
    const two = step(k, gueRealServer([G6080, G7000], ["192.0.2.50", "192.0.2.51"]), owned);
    expect(kinds(two.plan.ops)).toEqual(["fou-add fou ipv4 port 7000", "address-add address tunl0 192.0.2.51/32"]);
    owned = two.owned;
    const one = step(k, gueRealServer([G7000], ["192.0.2.51"]), owned);
    expect(kinds(one.plan.ops)).toEqual(["address-del address tunl0 192.0.2.50/32", "fou-del fou ipv4 port 6080"]);
    owned = one.owned;
    expect([...owned.fouPorts!]).toEqual(["ipv4 7000"]);
    const none = step(k, emptyDesired(), owned);
    expect(none.errors).toEqual([]);
    expect(kinds(none.plan.ops)).toEqual([
      "address-del address tunl0 192.0.2.51/32",
      "sysctl-set sysctl net.ipv4.conf.all.rp_filter",
      "sysctl-set sysctl net.ipv4.conf.tunl0.rp_filter",
      "fou-del fou ipv4 port 7000",
      "link-down link tunl0",
    ]);
    expect(portsOf(k)).toEqual([]);
    expect(none.owned.fouPorts!.size).toBe(0);
  });

  it("foreign ports: a hand-made desired GUE port is kept and reported, never owned, never removed; others are reported, never deleted", () => {
    const k = newModel();
    k.fou.set("ipv4 6080", { ...G6080, encap: "gue" }); // someone's `ip fou add port 6080 gue`
    k.fou.set("ipv4 5555", { port: 5555, family: "ipv4", encap: "direct", ipproto: 4 });
    const s1 = step(k, gueRealServer([G6080]), emptyOwned());
    expect(s1.errors).toEqual([]);
    expect(kinds(s1.plan.ops).filter((o) => o.startsWith("fou"))).toEqual([]);
    expect(s1.plan.foreign).toEqual([
      { object: "fou ipv4 port 6080", note: "desired, but not created by lvsfleet: kept as it is and never removed" },
      { object: "fou ipv4 port 5555", note: "not created by lvsfleet (direct ipproto 4); left alone" },
    ]);
    expect(s1.owned.fouPorts!.size).toBe(0);
    const s2 = step(k, emptyDesired(), s1.owned);
    expect(kinds(s2.plan.ops).filter((o) => o.startsWith("fou"))).toEqual([]);
    expect(portsOf(k)).toEqual(["ipv4 5555 direct", "ipv4 6080 gue"]);
    expect(s2.plan.foreign.map((f) => f.object)).toEqual(["fou ipv4 port 6080", "fou ipv4 port 5555"]);
  });

  it("a desired port someone holds as a direct port is reported and left alone (not ours to replace)", () => {
    const k = newModel();
    k.fou.set("ipv4 6080", { ...G6080, encap: "direct", ipproto: 47 });
    const s = step(k, gueRealServer([G6080]), emptyOwned());
    expect(kinds(s.plan.ops).filter((o) => o.startsWith("fou"))).toEqual([]);
    expect(s.plan.foreign).toEqual([{ object: "fou ipv4 port 6080", note: "not created by lvsfleet: a direct port (ipproto 47), wanted gue; left alone" }]);
    expect(portsOf(k)).toEqual(["ipv4 6080 direct"]);
  });

  it("drift: an owned port deleted behind the agent's back is re-added; one turned into a direct port is replaced; both reported", () => {
    const k = newModel();
    const d = gueRealServer([G6080, G7000]);
    const owned = step(k, d, emptyOwned()).owned;
    k.fou.delete("ipv4 6080"); // ip fou del port 6080
    k.fou.set("ipv4 7000", { ...G7000, encap: "direct", ipproto: 4 }); // ip fou del …; ip fou add port 7000 ipproto 4
    const s = step(k, d, owned);
    expect(s.errors).toEqual([]);
    expect(kinds(s.plan.ops)).toEqual(["fou-add fou ipv4 port 6080", "fou-del fou ipv4 port 7000", "fou-add fou ipv4 port 7000"]);
    expect(s.plan.drift).toEqual([
      { object: "fou ipv4 port 6080", found: "missing" },
      { object: "fou ipv4 port 7000", found: "direct ipproto 4 (want gue)" },
    ]);
    expect(portsOf(k)).toEqual(["ipv4 6080 gue", "ipv4 7000 gue"]);
    expect([...s.owned.fouPorts!].sort()).toEqual(["ipv4 6080", "ipv4 7000"]);
    expect(reconcile(d, k.observe(), s.owned)).toEqual({ ops: [], drift: [], foreign: [], adopted: [] });
  });

  it("failed ops: a failed add is not owned (retried, no drift); a failed delete stays owned (retried)", () => {
    const k = newModel();
    const d = gueRealServer([G6080]);
    const plan = reconcile(d, k.observe(), emptyOwned());
    const add = plan.ops.find((o) => o.kind === "fou-add")!;
    const ok = plan.ops.filter((o) => o !== add);
    k.run(ok);
    let owned = nextOwned(emptyOwned(), d, plan, new Set([add])).owned;
    expect(owned.fouPorts!.size).toBe(0);
    const retry = reconcile(d, k.observe(), owned);
    expect(kinds(retry.ops)).toEqual(["fou-add fou ipv4 port 6080"]);
    expect(retry.drift).toEqual([]);
    owned = nextOwned(owned, d, retry, k.run(retry.ops).failed).owned;
    expect([...owned.fouPorts!]).toEqual(["ipv4 6080"]);

    const gone = reconcile(emptyDesired(), k.observe(), owned);
    const del = gone.ops.find((o) => o.kind === "fou-del")!;
    const after = nextOwned(owned, emptyDesired(), gone, new Set([del])).owned;
    expect([...after.fouPorts!]).toEqual(["ipv4 6080"]);
    expect(kinds(reconcile(emptyDesired(), k.observe(), after).ops)).toContain("fou-del fou ipv4 port 6080");
  });

  it("an owned port someone turned into a direct port after lvsfleet stopped needing it is theirs: forgotten, left alone", () => {
    const k = newModel();
    const owned = step(k, gueRealServer([G6080]), emptyOwned()).owned;
    k.fou.set("ipv4 6080", { ...G6080, encap: "direct", ipproto: 4 });
    const s = step(k, emptyDesired(), owned);
    expect(kinds(s.plan.ops).filter((o) => o.startsWith("fou"))).toEqual([]);
    expect(s.plan.foreign).toEqual([{ object: "fou ipv4 port 6080", note: "created by lvsfleet, changed since to a direct port (ipproto 4); left alone" }]);
    expect(s.owned.fouPorts!.size).toBe(0);
    expect(portsOf(k)).toEqual(["ipv4 6080 direct"]);
  });

  it("an owned port that vanished and is no longer desired is forgotten without an op", () => {
    const k = newModel();
    const owned = step(k, gueRealServer([G6080]), emptyOwned()).owned;
    k.fou.clear();
    const s = step(k, emptyDesired(), owned);
    expect(kinds(s.plan.ops).filter((o) => o.startsWith("fou"))).toEqual([]);
    expect(s.owned.fouPorts!.size).toBe(0);
  });

  it("fou not read (no fou in the kernel, or the read failed): no fou ops, ownership kept as it was", () => {
    const k = newModel();
    const owned = step(k, gueRealServer([G6080]), emptyOwned()).owned;
    const observed = k.observe();
    delete observed.fouPorts;
    const plan = reconcile(emptyDesired(), observed, owned);
    expect(plan.ops.filter((o) => o.kind === "fou-add" || o.kind === "fou-del")).toEqual([]);
    expect(plan.unread).toEqual(["fou"]);
    expect([...nextOwned(owned, emptyDesired(), plan).owned.fouPorts!]).toEqual(["ipv4 6080"]);
    // Nothing desired or owned: not reading fou is not worth mentioning.
    expect(reconcile(emptyDesired(), observed, emptyOwned()).unread).toBeUndefined();
  });
});

describe("desiredFromProto: fou ports", () => {
  const ds = (ports: { port: number; addressFamily: AddressFamily }[]) =>
    create(HostDesiredStateSchema, {
      site: "s",
      host: "h",
      realServer: { addresses: [{ interface: "tunl0", address: "192.0.2.50", prefixLength: 32 }], tunnels: [{ name: "tunl0", type: TunnelType.GUE }], fouPorts: ports },
    });

  it("maps port and outer family (unspecified = IPv4), de-duplicated; none → no fouPorts at all", () => {
    const d = desiredFromProto(
      ds([
        { port: 6080, addressFamily: AddressFamily.IPV4 },
        { port: 6080, addressFamily: AddressFamily.IPV6 },
        { port: 6080, addressFamily: AddressFamily.UNSPECIFIED },
        { port: 7000, addressFamily: AddressFamily.IPV4 },
      ]),
    );
    expect(d.fouPorts).toEqual([G6080, G6080v6, G7000]);
    expect(d.tunnels).toEqual([{ name: "tunl0", type: "gue" }]);
    expect(desiredFromProto(ds([])).fouPorts).toBeUndefined();
  });

  it("rejects a port outside 1..65535 instead of programming something else", () => {
    expect(() => desiredFromProto(ds([{ port: 0, addressFamily: AddressFamily.IPV4 }]))).toThrow(DesiredStateError);
    expect(() => desiredFromProto(ds([{ port: 70000, addressFamily: AddressFamily.IPV4 }]))).toThrow(/fou port 70000/);
  });
});
