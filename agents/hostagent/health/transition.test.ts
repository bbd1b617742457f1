// A health transition costs O(services using that check): on a big state (thousands of services
// without that check), one real server going down is exactly the IPVS requests of the services that
// use its check — no dump of the table, no diff of the rest — and a full resync afterwards finds
// nothing to do; the persisted state (base + patch) gives a restarted agent the same weights.
// HealthCheckedBackend over LinuxBackend on the in-memory kernel fakes; real servers on 127.0.0.1.
import { create } from "@bufbuild/protobuf";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IpvsServiceSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, FailureAction, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "../kernel/fake-ipvs.js";
import { createFakeKernel } from "../kernel/fakes.js";
import { LinuxBackend } from "../kernel/linux-backend.js";
import { HealthCheckedBackend } from "./backend.js";
import { dest, host, service, tcpCheck } from "./fixtures.js";
import { tcpServer, type TestServer } from "./testing.js";

const INTERVAL = 50;
const SLACK = 2_000;
const lo = "127.0.0.1";
const BIG = 2_000; // services without the check, × 10 real servers each

let dir: string;
let ipvs: FakeIpvs;
let fk: ReturnType<typeof createFakeKernel>;
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-transition-"));
  ipvs = new FakeIpvs();
  fk = createFakeKernel();
  fk.kernel.ipvsLoaded = true;
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

function backends(): { linux: LinuxBackend; health: HealthCheckedBackend } {
  const linux = new LinuxBackend({ site: "s1", host: "d1", stateDir: dir, openIpvs: async () => ipvs, ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls });
  const health = new HealthCheckedBackend(linux, { stateDir: dir, site: "s1", host: "d1" });
  closers.push(() => health.close());
  return { linux, health };
}

async function server(): Promise<TestServer> {
  const s = await tcpServer();
  closers.push(() => s.stop());
  return s;
}

/** `BIG` services × 10 real servers without health checks, then the checked ones. */
function bigState(a: TestServer, b: TestServer): HostDesiredState {
  const check = tcpCheck({ intervalMs: INTERVAL, timeoutMs: 40, rise: 2, fall: 2 });
  const filler = Array.from({ length: BIG }, (_, i) =>
    create(IpvsServiceSchema, {
      virtualService: `vs-${i}`,
      addressFamily: AddressFamily.IPV4,
      protocol: Protocol.TCP,
      address: `198.18.${i >> 8}.${i & 255}`,
      port: 80,
      scheduler: "wlc",
      persistencePrefixLength: 32,
      destinations: Array.from({ length: 10 }, (_, j) => dest(`198.19.${(i * 10 + j) >> 8}.${(i * 10 + j) & 255}`, 8080, 1 + (j % 3))),
    }),
  );
  return host([
    ...filler.slice(0, BIG / 2),
    // Quiesce (default): A → weight 0, B stays.
    service("quiesce", 80, [dest(lo, a.port, 5), dest(lo, b.port, 3)], { check }),
    ...filler.slice(BIG / 2),
    // Remove + sorry server: A is the only real server → A out, the sorry server in.
    service("remove", 81, [dest(lo, a.port, 2)], { check, action: FailureAction.REMOVE, sorry: dest("203.0.113.99", 8080, 0, "sorry") }),
  ]);
}

const kQ = (p: number) => `tcp 192.0.2.10 80 -> ${lo} ${p}`;
const kR = (p: number) => `tcp 192.0.2.10 81 -> ${lo} ${p}`;
const kSorry = "tcp 192.0.2.10 81 -> 203.0.113.99 8080";

/** The destinations of the two checked services in the fake kernel. */
function checkedWeights(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const sk of ["tcp 192.0.2.10 80", "tcp 192.0.2.10 81"]) for (const [dk, d] of ipvs.table.get(sk)?.dests ?? []) out[`${sk} -> ${dk}`] = d.weight;
  return out;
}

async function until(pred: () => boolean, what: string, timeoutMs = 3 * INTERVAL + SLACK): Promise<void> {
  const started = Date.now();
  while (!pred()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(checkedWeights())}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("health transitions apply only the services using the check", () => {
  it(`on ${BIG} services × 10: down is 3 IPVS requests (quiesce + sorry in, real server out), up is 3 more; a full resync then writes nothing`, async () => {
    const a = await server();
    const b = await server();
    const { linux, health } = backends();
    expect((await health.apply(bigState(a, b))).errors).toEqual([]);
    expect(checkedWeights()).toEqual({ [kQ(a.port)]: 5, [kQ(b.port)]: 3, [kR(a.port)]: 2 });

    const r0 = ipvs.requests;
    await a.stop();
    await until(() => checkedWeights()[kSorry] === 1 && checkedWeights()[kQ(a.port)] === 0, "A down");
    // Give a (wrong) second write a chance to show up before counting.
    await new Promise((r) => setTimeout(r, 3 * INTERVAL));
    expect(checkedWeights()).toEqual({ [kQ(a.port)]: 0, [kQ(b.port)]: 3, [kSorry]: 1 });
    // Requests, not only writes: a snapshot of the table would add 1 + the number of services.
    expect(ipvs.requests - r0).toBe(3);
    expect(health.stats).toEqual({ fast: 1, full: 0 });
    expect(linux.lastCycle).toMatchObject({ ops: 3, writes: 3, ipvsRequests: 3 });

    const resync = (await linux.resync())!;
    expect(resync).toMatchObject({ writes: 0, ops: 0, drift: [], errors: [] });
    expect(resync.ipvsRequests).toBe(1 + BIG + 2); // the resync does dump everything

    const r1 = ipvs.requests;
    await a.start();
    await until(() => checkedWeights()[kQ(a.port)] === 5 && checkedWeights()[kR(a.port)] === 2 && !(kSorry in checkedWeights()), "A back");
    await new Promise((r) => setTimeout(r, 3 * INTERVAL));
    expect(checkedWeights()).toEqual({ [kQ(a.port)]: 5, [kQ(b.port)]: 3, [kR(a.port)]: 2 });
    expect(ipvs.requests - r1).toBe(3);
    expect(health.stats).toEqual({ fast: 2, full: 0 });
    expect((await linux.resync())!).toMatchObject({ writes: 0, ops: 0, drift: [] });
  });

  it("a restart after a transition keeps the health-adjusted weights (base + patch), repairs what changed meanwhile, and recovers", async () => {
    const a = await server();
    const b = await server();
    const first = backends();
    const ds = bigState(a, b);
    await first.health.apply(ds);
    await a.stop();
    await until(() => checkedWeights()[kSorry] === 1 && checkedWeights()[kQ(a.port)] === 0 && first.health.stats.fast === 1, "A down");
    await first.health.close();
    // The transition was persisted as a patch over desired.pb (not a rewrite of the whole state).
    const patch = JSON.parse(await readFile(first.linux.patchPath, "utf8"));
    expect(patch.base).toBe(ds.hash); // all up at the full apply: the configured state itself
    expect(patch.services.map((s: [string, string]) => s[0])).toEqual(["tcp 192.0.2.10:80", "tcp 192.0.2.10:81"]);

    // While the agent is down someone puts A's weight back by hand.
    ipvs.table.get("tcp 192.0.2.10 80")!.dests.get(`${lo} ${a.port}`)!.weight = 5;

    // Restart: the sync loop does not re-apply the applied revision; load() and the periodic resync run.
    const again = backends();
    await again.health.load();
    const r = (await again.linux.resync())!;
    expect(r.errors).toEqual([]);
    expect(r.drift.map((d) => `${d.object}: ${d.found}`)).toEqual([`ipvs-destination tcp 192.0.2.10:80 -> ${lo}:${a.port}: weight 5 (want 0)`]);
    expect(r.writes).toBe(1);
    expect(checkedWeights()).toEqual({ [kQ(a.port)]: 0, [kQ(b.port)]: 3, [kSorry]: 1 });
    expect((await again.linux.resync())!.writes).toBe(0);
    expect((await again.health.health()).filter((h) => h.port === a.port).map((h) => [h.virtualService, h.healthy, h.weight])).toEqual([
      ["quiesce", false, 0],
      ["remove", false, 0],
    ]);

    // Recovery after the restart: the first transition re-applies in full (puts checker and backend in
    // step), the next one takes the fast path again.
    await a.start();
    await until(() => checkedWeights()[kQ(a.port)] === 5 && checkedWeights()[kR(a.port)] === 2 && !(kSorry in checkedWeights()) && again.health.stats.full === 1, "A back");
    expect(again.health.stats).toEqual({ fast: 0, full: 1 });
    expect(await readdir(dir)).not.toContain("agent-s1.d1.desired.patch.json"); // the full apply rewrote the base
    await a.stop();
    await until(() => checkedWeights()[kQ(a.port)] === 0 && again.health.stats.fast === 1, "A down again");
    expect(again.health.stats).toEqual({ fast: 1, full: 1 });
    await again.health.close();

    // And once more from the files alone: a third start holds the kernel to weight 0 with no writes.
    const third = backends();
    await third.health.load();
    const r3 = (await third.linux.resync())!;
    expect(r3).toMatchObject({ writes: 0, drift: [], errors: [] });
    expect(checkedWeights()).toEqual({ [kQ(a.port)]: 0, [kQ(b.port)]: 3, [kSorry]: 1 });
  });
});
