// The distribution path when NATS fails: a private nats-server (temp dir, free port) that the test
// kills, restarts and wipes; the real Postgres (a database of this file). The shared server is
// never touched.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { MARKER_KEY, outboxHook, startRelay, type Relay } from "../../services/controlplane/relay/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";
import { AgentFleet, buildFleet, PrivateNats, setWeight, waitFor, type FleetShape } from "./fleet-harness.js";

const SITE = "ams2";
const BUCKET = "lvsfleet-desired";
let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let nats: PrivateNats;
let fleet: AgentFleet;
let shape: FleetShape;
let relay: Relay;

async function keysInBucket(): Promise<string[]> {
  const nc = await connect({ servers: nats.url });
  try {
    const kv = await new Kvm(nc).open(BUCKET);
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    return keys.sort();
  } finally {
    await nc.close();
  }
}

/**
 * Some writes while NATS is away. They all commit before NATS comes back (the callers start it only
 * afterwards): the write path does not depend on NATS.
 */
async function writesWhileDown(base: number): Promise<void> {
  let i = 0;
  for (const [vsId, svc] of shape.services) {
    const rev = await setWeight(store, SITE, vsId, svc.rsHosts[0]!, base + i++);
    expect(rev).toBeGreaterThan(0n);
  }
}

beforeAll(async () => {
  nats = await PrivateNats.start();
  t = await createTestDatabase();
  pool = createPool(t.url, 20);
  store = new TopologyStore(pool);
  store.onWrite(outboxHook);
  shape = await buildFleet(store, SITE, 2, 18);
  relay = await startRelay({ pool, natsUrl: nats.url, bucket: BUCKET, pollMs: 100, lockRetryMs: 200, markerCheckMs: 300 });
  fleet = await AgentFleet.create(SITE, nats.url, BUCKET);
  await fleet.startAll([...shape.directors, ...shape.realServers]);
  await fleet.converged(pool);
});

afterAll(async () => {
  await relay?.stop();
  await fleet?.close();
  await nats?.stop();
  await pool?.end();
  await t?.drop();
});

describe("NATS faults", () => {
  it("NATS killed and restarted: writes keep committing, the relay catches up, all converge", async () => {
    await nats.kill();
    await writesWhileDown(500);
    // The outbox was compiled meanwhile; it waits in desired_states for NATS.
    await waitFor("changes compiled while NATS is down", async () => {
      const r = await pool.query<{ outbox: number; pending: string[] }>(
        `SELECT (SELECT count(*)::int FROM outbox) AS outbox,
                (SELECT coalesce(array_agg(host ORDER BY host), '{}') FROM desired_states WHERE NOT published) AS pending`,
      );
      // Weight changes touch the Directors only.
      return r.rows[0]!.outbox === 0 && r.rows[0]!.pending.join() === shape.directors.join();
    });
    await nats.startProcess();
    await fleet.converged(pool, 30_000);
    // (No assertion on full republishes here: nats-server flushes its file store lazily, so a
    // SIGKILL right after the marker was written may lose it, and the relay then rightly republishes.)
    fleet.assertMonotonic();
  });

  it("NATS data wiped: the relay notices, recreates the bucket, republishes every host; all converge", async () => {
    const republishes = relay.stats.republishes;
    await nats.wipeAndRestart();
    await writesWhileDown(700);
    await fleet.converged(pool, 30_000);
    await waitFor("a full republish", () => relay.stats.republishes > republishes);
    const keys = await keysInBucket();
    // Every host's key and the site part's (`<site>._site`).
    expect(keys).toEqual([MARKER_KEY, `${SITE}._site`, ...[...fleet.agents.keys()].map((h) => `${SITE}.${h}`)].sort());
    fleet.assertMonotonic();
  });

  it("NATS wiped while idle (no writes): every key comes back", async () => {
    await nats.wipeAndRestart();
    await waitFor("every key republished", async () => (await keysInBucket().catch(() => [])).length === fleet.agents.size + 2, 20_000);
    // Agents keep their kernel state (same revisions come back and are not re-applied).
    await fleet.converged(pool);
    fleet.assertMonotonic();
  });

  it("a relay that starts while NATS is down compiles at once and publishes when NATS comes up", async () => {
    await relay.stop();
    await nats.kill();
    relay = await startRelay({ pool, natsUrl: nats.url, bucket: BUCKET, pollMs: 100, lockRetryMs: 200, markerCheckMs: 300 });
    await writesWhileDown(900);
    await waitFor("outbox compiled without NATS", async () => (await pool.query("SELECT count(*)::int AS n FROM outbox")).rows[0].n === 0);
    expect(relay.isLeader()).toBe(true);
    expect(relay.stats.published).toBe(0);
    await nats.startProcess();
    await fleet.converged(pool, 30_000);
    expect(relay.stats.published).toBeGreaterThan(0);
    fleet.assertMonotonic();
  });
});
