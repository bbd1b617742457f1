// The scheduler with real servers on 127.0.0.1 and short intervals.
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { dest, host, service, tcpCheck } from "./fixtures.js";
import { HealthScheduler, type Transition } from "./scheduler.js";
import { effectiveCheck } from "./spec.js";
import { tcpServer, type TestServer } from "./testing.js";

const INTERVAL = 50;
const SLACK = 400; // a loaded CI machine; the lower bounds below prove the counting itself
const lo = "127.0.0.1";

const schedulers: HealthScheduler[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of schedulers.splice(0)) s.stop();
  for (const s of servers.splice(0)) await s.stop();
});

function waitFor<T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const v = get();
      if (v !== undefined) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

function make(onTransition?: (t: Transition) => void, initialDown?: Set<string>): HealthScheduler {
  const s = new HealthScheduler({ onTransition, initialDown });
  schedulers.push(s);
  return s;
}

/** A TCP server that counts accepted connections. */
async function countingServer(): Promise<{ server: Server; port: number; count: () => number }> {
  let n = 0;
  const server = createServer((c) => {
    n++;
    c.end();
  });
  await new Promise<void>((r) => server.listen(0, lo, () => r()));
  return { server, port: (server.address() as { port: number }).port, count: () => n };
}

describe("HealthScheduler", () => {
  it("down after `fall` failures within fall × interval, up again after `rise` successes", async () => {
    const rs = await tcpServer();
    servers.push(rs);
    const transitions: Transition[] = [];
    const sched = make((t) => transitions.push(t));
    const check = tcpCheck({ intervalMs: INTERVAL, timeoutMs: 40, rise: 2, fall: 3 });
    const ds = host([service("web", 80, [dest(lo, rs.port)], { check })]);
    sched.update(ds);
    const key = effectiveCheck(ds.director!.services[0]!, ds.director!.services[0]!.destinations[0]!)!.key;
    expect(sched.health().get(key)!.up).toBe(true); // new real servers start up (keepalived)
    await waitFor(() => (sched.health().get(key)!.lastResult === "connected" ? true : undefined), 2000, "first success");

    await rs.stop();
    let t0 = Date.now();
    await waitFor(() => transitions.find((t) => !t.up), 3 * INTERVAL + SLACK, "down");
    let took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(2 * INTERVAL - 10); // three failures, two intervals apart at least
    expect(took).toBeLessThanOrEqual(3 * INTERVAL + SLACK);
    expect(sched.health().get(key)).toMatchObject({ up: false, lastResult: "connect ECONNREFUSED" });
    expect(transitions).toHaveLength(1);
    expect(transitions[0]).toMatchObject({ key, up: false, detail: "connect ECONNREFUSED", target: { address: lo, port: rs.port } });

    await rs.start();
    t0 = Date.now();
    await waitFor(() => transitions.find((t) => t.up), 2 * INTERVAL + SLACK, "up");
    took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(INTERVAL - 10);
    expect(sched.health().get(key)).toMatchObject({ up: true, lastResult: "connected" });
    expect(transitions.map((t) => t.up)).toEqual([false, true]);
  });

  it("a single failure does not take a real server down (fall counts consecutive failures)", async () => {
    const rs = await tcpServer();
    servers.push(rs);
    const transitions: Transition[] = [];
    const sched = make((t) => transitions.push(t));
    sched.update(host([service("web", 80, [dest(lo, rs.port)], { check: tcpCheck({ intervalMs: INTERVAL, rise: 1, fall: 3 }) })]));
    await new Promise((r) => setTimeout(r, 2 * INTERVAL));
    await rs.stop();
    await new Promise((r) => setTimeout(r, INTERVAL + 10)); // one or two failures
    await rs.start();
    await new Promise((r) => setTimeout(r, 4 * INTERVAL));
    expect(transitions).toEqual([]);
  });

  it("one check per real server and spec, shared by every service using it", async () => {
    const rs = await countingServer();
    try {
      const sched = make();
      const check = tcpCheck({ intervalMs: INTERVAL });
      sched.update(host([service("web", 80, [dest(lo, rs.port)], { check }), service("api", 81, [dest(lo, rs.port)], { check })]));
      expect(sched.size).toBe(1);
      await new Promise((r) => setTimeout(r, 20 * INTERVAL));
      // One check: about 20 connections in 20 intervals; two would be about 40.
      expect(rs.count()).toBeGreaterThanOrEqual(10);
      expect(rs.count()).toBeLessThanOrEqual(22);
      // Another spec for the same real server is another check.
      sched.update(host([service("web", 80, [dest(lo, rs.port)], { check }), service("api", 81, [dest(lo, rs.port)], { check: tcpCheck({ intervalMs: 2 * INTERVAL }) })]));
      expect(sched.size).toBe(2);
    } finally {
      rs.server.close();
    }
  });

  it("update keeps unchanged checks (state and counters) and stops removed ones", async () => {
    const a = await tcpServer();
    servers.push(a);
    const b = await countingServer();
    try {
      const transitions: Transition[] = [];
      const sched = make((t) => transitions.push(t));
      const check = tcpCheck({ intervalMs: INTERVAL, rise: 2, fall: 2 });
      const svcA = service("web", 80, [dest(lo, a.port)], { check });
      const keyA = effectiveCheck(svcA, svcA.destinations[0]!)!.key;
      sched.update(host([svcA]));
      await a.stop();
      await waitFor(() => transitions.find((t) => !t.up), 2 * INTERVAL + SLACK, "a down");
      const statusA = sched.health().get(keyA)!;

      // A new revision adds a service with b: a's check is the same object, still down, no new transition.
      const svcB = service("api", 81, [dest(lo, b.port)], { check });
      sched.update(host([svcA, svcB], 2n));
      expect(sched.size).toBe(2);
      expect(sched.health().get(keyA)).toBe(statusA);
      expect(statusA.up).toBe(false);
      await waitFor(() => (b.count() > 0 ? true : undefined), 2000, "b checked");

      // b's service goes away: its check stops probing.
      sched.update(host([svcA], 3n));
      expect(sched.size).toBe(1);
      const n = b.count();
      await new Promise((r) => setTimeout(r, 5 * INTERVAL));
      expect(b.count()).toBeLessThanOrEqual(n + 1); // at most a probe already in flight
      expect(transitions).toHaveLength(1);
    } finally {
      b.server.close();
    }
  });

  it("a check listed as initially down needs `rise` successes (agent restart)", async () => {
    const rs = await tcpServer();
    servers.push(rs);
    const svc = service("web", 80, [dest(lo, rs.port)], { check: tcpCheck({ intervalMs: INTERVAL, rise: 3 }) });
    const key = effectiveCheck(svc, svc.destinations[0]!)!.key;
    const transitions: Transition[] = [];
    const sched = make((t) => transitions.push(t), new Set([key]));
    const t0 = Date.now();
    sched.update(host([svc]));
    expect(sched.health().get(key)!.up).toBe(false);
    await waitFor(() => transitions.find((t) => t.up), 3 * INTERVAL + SLACK, "up");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2 * INTERVAL - 10);
  });

  it("first runs are jittered over the interval, not in lockstep", async () => {
    const firsts = new Map<number, number>();
    const t0 = Date.now();
    const sched = new HealthScheduler({
      probe: (c) => async (target) => {
        if (!firsts.has(target.port)) firsts.set(target.port, Date.now() - t0);
        void c;
        return { ok: true, detail: "ok" };
      },
    });
    schedulers.push(sched);
    const interval = 400;
    const dests = Array.from({ length: 20 }, (_, i) => dest(lo, 20000 + i));
    sched.update(host([service("web", 80, dests, { check: tcpCheck({ intervalMs: interval }) })]));
    await waitFor(() => (firsts.size === 20 ? true : undefined), interval + SLACK, "20 first runs");
    const times = [...firsts.values()];
    expect(Math.max(...times)).toBeLessThanOrEqual(interval + SLACK);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(interval / 4);
  });
});
