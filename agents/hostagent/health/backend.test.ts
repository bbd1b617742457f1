// HealthCheckedBackend over LinuxBackend on the in-memory kernel fakes, with real servers on
// 127.0.0.1: a failing real server becomes one weight edit, recovery another; health is reported;
// checks and down states survive an agent restart.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FailureAction } from "../../../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "../kernel/fake-ipvs.js";
import { createFakeKernel } from "../kernel/fakes.js";
import { LinuxBackend } from "../kernel/linux-backend.js";
import { HealthCheckedBackend } from "./backend.js";
import { dest, host, service, tcpCheck } from "./fixtures.js";
import type { Transition } from "./scheduler.js";
import { tcpServer, type TestServer } from "./testing.js";

const INTERVAL = 50;
const SLACK = 500;
const lo = "127.0.0.1";

let dir: string;
let ipvs: FakeIpvs;
let fk: ReturnType<typeof createFakeKernel>;
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-health-"));
  ipvs = new FakeIpvs();
  fk = createFakeKernel();
  fk.kernel.ipvsLoaded = true;
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

function wrapped(): HealthCheckedBackend {
  const linux = new LinuxBackend({ site: "s1", host: "d1", stateDir: dir, openIpvs: async () => ipvs, ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls });
  const b = new HealthCheckedBackend(linux, { stateDir: dir, site: "s1", host: "d1" });
  closers.push(() => b.close());
  return b;
}

async function server(): Promise<TestServer> {
  const s = await tcpServer();
  closers.push(() => s.stop());
  return s;
}

function kernelWeights(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [sk, s] of ipvs.table) for (const [dk, d] of s.dests) out[`${sk} -> ${dk}`] = d.weight;
  return out;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!pred()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(kernelWeights())}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("HealthCheckedBackend", () => {
  it("quiesces a failed real server with one IPVS write and restores its weight on recovery", async () => {
    const a = await server();
    const b = await server();
    const be = wrapped();
    const transitions: Transition[] = [];
    be.onHealthChange((t) => transitions.push(t));
    const check = tcpCheck({ intervalMs: INTERVAL, timeoutMs: 40, rise: 2, fall: 3 });
    const ds = host([service("web", 80, [dest(lo, a.port, 5), dest(lo, b.port, 3)], { check })]);
    expect((await be.apply(ds)).errors).toEqual([]);
    const kA = `tcp 192.0.2.10 80 -> ${lo} ${a.port}`;
    const kB = `tcp 192.0.2.10 80 -> ${lo} ${b.port}`;
    expect(kernelWeights()).toEqual({ [kA]: 5, [kB]: 3 });

    const w0 = ipvs.writes;
    await a.stop();
    await until(() => kernelWeights()[kA] === 0, 3 * INTERVAL + SLACK, "weight 0");
    expect(kernelWeights()).toEqual({ [kA]: 0, [kB]: 3 });
    expect(ipvs.writes - w0).toBe(1); // one weight edit, not a resync
    expect(transitions.map((t) => t.up)).toEqual([false]);
    const hs = await be.health();
    expect(hs.find((h) => h.port === a.port)).toMatchObject({ virtualService: "web", healthy: false, weight: 0, lastResult: "connect ECONNREFUSED" });
    expect(hs.find((h) => h.port === b.port)).toMatchObject({ healthy: true, weight: 3 });

    await a.start();
    await until(() => kernelWeights()[kA] === 5, 2 * INTERVAL + SLACK, "weight restored");
    expect(ipvs.writes - w0).toBe(2);
    expect(transitions.map((t) => t.up)).toEqual([false, true]);
  });

  it("remove + sorry server: all real servers down → only the sorry server; back → real servers", async () => {
    const a = await server();
    const be = wrapped();
    const check = tcpCheck({ intervalMs: INTERVAL, timeoutMs: 40, rise: 1, fall: 1 });
    const ds = host([service("web", 80, [dest(lo, a.port, 2)], { check, action: FailureAction.REMOVE, sorry: dest("203.0.113.99", 8080, 0, "") })]);
    await be.apply(ds);
    const kA = `tcp 192.0.2.10 80 -> ${lo} ${a.port}`;
    const kSorry = "tcp 192.0.2.10 80 -> 203.0.113.99 8080";
    expect(kernelWeights()).toEqual({ [kA]: 2 });
    await a.stop();
    await until(() => kernelWeights()[kSorry] === 1, INTERVAL + SLACK, "sorry server");
    expect(kernelWeights()).toEqual({ [kSorry]: 1 });
    await a.start();
    await until(() => kernelWeights()[kA] === 2, INTERVAL + SLACK, "real server back");
    expect(kernelWeights()).toEqual({ [kA]: 2 });
  });

  it("after a restart, checks resume from the state file and a down real server stays down until `rise`", async () => {
    const a = await server();
    const be = wrapped();
    const check = tcpCheck({ intervalMs: INTERVAL, timeoutMs: 40, rise: 3, fall: 1 });
    await be.apply(host([service("web", 80, [dest(lo, a.port, 4)], { check })]));
    await a.stop();
    await until(() => Object.values(kernelWeights())[0] === 0, INTERVAL + SLACK, "down");
    await be.close();

    // The sync loop does not re-apply an applied revision after a restart: load() alone resumes.
    const again = wrapped();
    await again.load();
    expect(again.scheduler.size).toBe(1);
    expect((await again.health()).map((h) => [h.healthy, h.weight])).toEqual([[false, 0]]);
    await a.start();
    await until(() => Object.values(kernelWeights())[0] === 4, 3 * INTERVAL + SLACK, "recovered after restart");
  });
});
