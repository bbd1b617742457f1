// LinuxBackend.applyServices (the health checker's fast path) and the NAT return-path check on
// resync, over the in-memory fakes: only the given services are reconciled and written; it declines
// when that is not safe; a kernel changed behind the agent's back falls back to the full cycle; the
// patch file follows its base desired.pb (a patch of another base is ignored after a restart).
import { create } from "@bufbuild/protobuf";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, IpvsServiceSchema, type HostDesiredState, type IpvsService } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "./fake-ipvs.js";
import { createFakeKernel } from "./fakes.js";
import { LinuxBackend } from "./linux-backend.js";

const svc = (i: number, weights: number[]): IpvsService =>
  create(IpvsServiceSchema, {
    virtualService: `vs${i}`,
    addressFamily: AddressFamily.IPV4,
    protocol: Protocol.TCP,
    address: `192.0.2.${10 + i}`,
    port: 80,
    scheduler: "wlc",
    persistencePrefixLength: 32,
    destinations: weights.map((weight, j) => ({ realServer: `r${j}`, addressFamily: AddressFamily.IPV4, address: `198.51.100.${11 + j}`, port: 80, forwardMethod: ForwardMethod.NAT, weight })),
  });

const state = (services: IpvsService[], hash = "h1", extra: Partial<HostDesiredState> = {}): HostDesiredState =>
  Object.assign(create(HostDesiredStateSchema, { site: "s1", host: "h1", revision: 1n, hash, director: { services } }), extra);

let dir: string;
let ipvs: FakeIpvs;
let fk: ReturnType<typeof createFakeKernel>;
const open: LinuxBackend[] = [];

function backend(): LinuxBackend {
  const b = new LinuxBackend({ site: "s1", host: "h1", stateDir: dir, openIpvs: async () => ipvs, ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls, routes: fk.routes });
  open.push(b);
  return b;
}
const weight = (i: number, j: number) => ipvs.table.get(`tcp 192.0.2.${10 + i} 80`)?.dests.get(`198.51.100.${11 + j} 80`)?.weight;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-lbs-"));
  ipvs = new FakeIpvs();
  fk = createFakeKernel();
});
afterEach(async () => {
  for (const b of open.splice(0)) await b.close();
  await rm(dir, { recursive: true, force: true });
});

describe("LinuxBackend.applyServices", () => {
  it("writes only the changed destinations of the given services; the next resync and a restart agree", async () => {
    const b = backend();
    const services = Array.from({ length: 50 }, (_, i) => svc(i, [3, 4]));
    expect((await b.apply(state(services))).errors).toEqual([]);
    const r0 = ipvs.requests;
    expect(await b.applyServices([svc(7, [0, 4]), svc(9, [3, 4])])).toEqual({ errors: [] });
    expect(ipvs.requests - r0).toBe(1); // one SET_DEST; service 9 unchanged: nothing
    expect([weight(7, 0), weight(7, 1), weight(9, 0)]).toEqual([0, 4, 3]);
    expect(b.ownedSet().services.get("tcp 192.0.2.17:80")!.state.destinations[0]!.weight).toBe(0);
    expect((await b.resync())!).toMatchObject({ writes: 0, drift: [] });

    // Restart: desired.pb + the patch give the resync weight 0 (someone's edit meanwhile is drift).
    ipvs.table.get("tcp 192.0.2.17 80")!.dests.get("198.51.100.11 80")!.weight = 3;
    const again = backend();
    const r = (await again.resync())!;
    expect(r.drift.map((d) => d.found)).toEqual(["weight 3 (want 0)"]);
    expect(weight(7, 0)).toBe(0);
    // And the fast path works on the restarted backend too.
    const r1 = ipvs.requests;
    expect(await again.applyServices([svc(7, [3, 4])])).toEqual({ errors: [] });
    expect(ipvs.requests - r1).toBe(1);
    expect(weight(7, 0)).toBe(3);
  });

  it("declines (undefined, nothing written) before any apply, for an unknown service, and for a service whose last apply failed", async () => {
    const b = backend();
    expect(await b.applyServices([svc(1, [0, 1])])).toBeUndefined();
    await b.apply(state([svc(1, [1, 1])]));
    const w0 = ipvs.writes;
    expect(await b.applyServices([svc(2, [0, 1])])).toBeUndefined();
    // A service whose destination could not be added is unclean: no fast path for it.
    const bad = svc(3, [1, 1]);
    const batch = ipvs.batch.bind(ipvs);
    ipvs.batch = async (ops) => {
      const out: Awaited<ReturnType<FakeIpvs["batch"]>> = [];
      for (const o of ops) out.push(o.op === "newDestination" && o.destination.address === "198.51.100.12" && o.service.address === "192.0.2.13" ? (new Error("EINVAL") as never) : (await batch([o]))[0]);
      return out;
    };
    expect((await b.apply(state([svc(1, [1, 1]), bad], "h2"))).errors.length).toBe(1);
    const w1 = ipvs.writes;
    expect(await b.applyServices([svc(3, [0, 1])])).toBeUndefined();
    expect(ipvs.writes).toBe(w1);
    expect(w1 - w0).toBe(2); // the service and its first destination, from the apply
  });

  it("a destination removed behind the agent's back: the edit fails, the full cycle puts it back with the new weight", async () => {
    const b = backend();
    await b.apply(state([svc(1, [2, 2]), svc(2, [2, 2])]));
    ipvs.table.get("tcp 192.0.2.11 80")!.dests.delete("198.51.100.11 80");
    const r = await b.applyServices([svc(1, [0, 2])]);
    expect(r!.errors).toEqual([]);
    expect([weight(1, 0), weight(1, 1)]).toEqual([0, 2]);
    expect((await b.resync())!.writes).toBe(0);
    // The full cycle wrote the whole state: a restart needs no patch.
    const again = backend();
    expect((await again.resync())!).toMatchObject({ writes: 0, drift: [] });
  });

  it("a later apply replaces base and patch; a patch of another base (a crash between the two writes) is ignored", async () => {
    const b = backend();
    await b.apply(state([svc(1, [2, 2])], "h1"));
    await b.applyServices([svc(1, [0, 2])]);
    const patch = await readFile(b.patchPath, "utf8");
    expect(JSON.parse(patch).base).toBe("h1");
    await b.apply(state([svc(1, [5, 2])], "h2"));
    await expect(readFile(b.patchPath, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
    // Put the old patch back, as if the crash came right after desired.pb (h2) was renamed.
    await writeFile(b.patchPath, patch);
    const again = backend();
    expect((await again.resync())!).toMatchObject({ writes: 0, drift: [] });
    expect(weight(1, 0)).toBe(5);
    // The same base content again (hash h2 = what desired.pb holds): the patch goes, no rewrite needed.
    await again.applyServices([svc(1, [0, 2])]);
    await again.apply(state([svc(1, [5, 2])], "h2"));
    expect(weight(1, 0)).toBe(5);
    const third = backend();
    expect((await third.resync())!).toMatchObject({ writes: 0, drift: [] });
    expect(weight(1, 0)).toBe(5);
  });
});

describe("NAT return path on resync", () => {
  it("a default route changed behind the agent's back is an object error on the next resync, standing until fixed", async () => {
    fk.kernel.routes.push({ family: 4, destination: "0.0.0.0/0", table: 254, protocol: 3, scope: 0, type: 1, owned: false, gateway: "198.51.100.1" });
    const rs = state([], "rs1", {
      director: undefined,
      realServer: {
        $typeName: "lvsfleet.v1.RealServerState",
        addresses: [{ $typeName: "lvsfleet.v1.VipAddress", interface: "lo", address: "192.0.2.20", prefixLength: 32 }],
        tunnels: [],
        natReturnPaths: [{ $typeName: "lvsfleet.v1.NatReturnPath", virtualService: "web", directorAddresses: ["198.51.100.1"] }],
        fouPorts: [],
      },
    });
    const b = backend();
    expect((await b.apply(rs)).errors).toEqual([]);
    expect(b.standingErrors()).toEqual([]);
    expect((await b.resync())!.errors).toEqual([]);

    fk.kernel.routes[0]!.gateway = "198.51.100.254"; // someone's `ip route replace default via …`
    const r = (await b.resync())!;
    const want = { object: "nat-return-path web", operation: "check", message: expect.stringContaining("default route via 198.51.100.254 does not go through a Director") };
    expect(r.errors).toEqual([want]);
    expect(b.standingErrors()).toEqual([want]);
    expect(r.writes).toBe(0); // reported, not repaired: the real server's routing is not lvsfleet's

    fk.kernel.routes[0]!.gateway = "198.51.100.1";
    expect((await b.resync())!.errors).toEqual([]);
    expect(b.standingErrors()).toEqual([]);
  });
});
