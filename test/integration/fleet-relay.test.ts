// Outbox → relay → KV → agents, on the real Postgres (a database of this file) and the shared NATS
// (a bucket of this file): 50 agents in-process with the fake backend.
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { HostDesiredStateSchema } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { RealServerSchema, SiteSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { outboxHook, startRelay, type Relay } from "../../services/controlplane/relay/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";
import { AgentFleet, buildFleet, expectedHashes, expectedParts, publishedState, setWeight, SHARED_NATS_URL, uniqueName, waitFor, type FleetShape } from "./fleet-harness.js";

const SITE = "fra1";
let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let bucket: string;
let fleet: AgentFleet;
let shape: FleetShape;
let nc: NatsConnection;
const relays: Relay[] = [];
const children: ChildProcess[] = [];

async function relay(extra: { lockRetryMs?: number; lockConnection?: pg.ClientConfig } = {}): Promise<Relay> {
  const r = await startRelay({ pool, natsUrl: SHARED_NATS_URL, bucket, pollMs: 100, lockRetryMs: extra.lockRetryMs ?? 200, markerCheckMs: 500, lockConnection: extra.lockConnection });
  relays.push(r);
  return r;
}

async function stopRelays(): Promise<void> {
  for (const r of relays.splice(0)) await r.stop();
}

/** [vs, rs] of every real server that exists now. */
async function realServerKeys(): Promise<Array<readonly [string, string]>> {
  const r = await pool.query<{ vs: string; rs: string }>(
    "SELECT virtual_service_id AS vs, real_server_id AS rs FROM real_servers ORDER BY 1, 2",
  );
  return r.rows.map((x) => [x.vs, x.rs] as const);
}

function appliesOf(hosts: string[]): Map<string, number> {
  return new Map(hosts.map((h) => [h, fleet.agents.get(h)!.backend.applies.length]));
}

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 80);
  store = new TopologyStore(pool);
  store.onWrite(outboxHook);
  bucket = uniqueName("lvsfleet-desired-relay");
  nc = await connect({ servers: SHARED_NATS_URL });
  shape = await buildFleet(store, SITE, 2, 48);
  fleet = await AgentFleet.create(SITE, SHARED_NATS_URL, bucket);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await stopRelays();
  await fleet?.close();
  await new Kvm(nc).open(bucket).then((kv) => kv.destroy()).catch(() => undefined);
  await nc?.close();
  await pool?.end();
  await t?.drop();
});

/**
 * Holds every write whose operation is `operation` after its statements, before COMMIT: its
 * revision is taken, it is not yet visible. `inHook` resolves when one is held; `release` lets it
 * commit; `done` releases and removes the hook.
 */
function holdBeforeCommit(operation: string): { inHook: Promise<void>; release: () => void; done: () => void } {
  let entered!: () => void;
  const inHook = new Promise<void>((r) => (entered = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const hold = async (_tx: unknown, writes: readonly { meta: { operation: string } }[]) => {
    if (!writes.some((w) => w.meta.operation === operation)) return;
    entered();
    await gate;
  };
  store.onWrite(hold);
  return {
    inHook,
    release,
    done: () => {
      release();
      store.db.afterWrite.splice(store.db.afterWrite.indexOf(hold), 1);
    },
  };
}

describe("relay", () => {
  it("publishes every host's compiled state; 50 agents converge", async () => {
    await relay();
    await fleet.startAll([...shape.directors, ...shape.realServers]);
    const want = await fleet.converged(pool);
    expect(want.size).toBe(50);
    // The KV value carries revision and hash; the outbox is drained.
    // Joined as the agent joins the host part and the site part (`<site>._site`).
    const kv = await new Kvm(nc).open(bucket);
    const ds = await publishedState(kv, SITE, "d0");
    expect(ds?.hash).toBe(want.get("d0"));
    expect(ds!.revision).toBeGreaterThan(0n);
    expect(ds!.director?.services.length).toBeGreaterThan(0);
    expect(ds!.director?.timeouts).toBeDefined();
    await relays[0]!.idle();
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox")).rows[0].n).toBe(0);
  });

  it("a change reaches exactly the hosts whose state it changes", async () => {
    const hosts = [...fleet.agents.keys()];
    const [vsId, svc] = [...shape.services.entries()][1]!;
    // A weight change only touches the Director's IPVS table.
    let before = appliesOf(hosts);
    const rev = await setWeight(store, SITE, vsId, svc.rsHosts[0]!, 7);
    await fleet.agents.get(svc.director)!.backend.waitFor((a) => a.revision >= rev);
    await relays[0]!.idle();
    await new Promise((r) => setTimeout(r, 300));
    let after = appliesOf(hosts);
    expect(hosts.filter((h) => after.get(h) !== before.get(h))).toEqual([svc.director]);
    // Removing a DR real server touches its Director and the real server host (VIP off lo).
    before = after;
    const rs = svc.rsHosts[1]!;
    await store.realServers.delete({ actor: "test", operation: "DeleteRealServer" }, SITE, vsId, rs);
    await fleet.converged(pool);
    await relays[0]!.idle();
    await new Promise((r) => setTimeout(r, 300));
    after = appliesOf(hosts);
    expect(hosts.filter((h) => after.get(h) !== before.get(h)).sort()).toEqual([svc.director, rs].sort());
    expect(fleet.agents.get(rs)!.backend.current?.realServer?.addresses ?? []).toEqual([]);
    fleet.assertMonotonic();
  });

  it("a site-wide change (IPVS timeouts) is one put of the site part, and every Director applies it", async () => {
    const r = relays[0]!;
    await r.idle();
    const [published, compiled] = [r.stats.published, r.stats.compiled];
    const w = await store.sites.update({ actor: "test", operation: "UpdateSite" }, SITE, create(SiteSchema, { ipvsTimeouts: { tcpSeconds: 777, tcpFinSeconds: 60, udpSeconds: 200 } }), { paths: ["ipvs_timeouts"] });
    await fleet.converged(pool);
    await r.idle();
    // One desired_states row (`_site`) and one KV put, however many hosts the site has.
    expect([r.stats.compiled - compiled, r.stats.published - published]).toEqual([1, 1]);
    for (const d of shape.directors) {
      const cur = fleet.agents.get(d)!.backend.current!;
      expect(cur.revision, d).toBeGreaterThanOrEqual(w.revision);
      expect(cur.director?.timeouts, d).toMatchObject({ tcpSeconds: 777, tcpFinSeconds: 60, udpSeconds: 200 });
    }
    fleet.assertMonotonic();
  });

  it("a site-wide change committing after a host was stamped higher is stamped above it (trap, site part)", async () => {
    const [vsId, svc] = [...shape.services.entries()][5]!;
    const director = fleet.agents.get(svc.director)!;
    const { inHook, release, done } = holdBeforeCommit("SlowSiteUpdate");
    try {
      const a = store.sites.update({ actor: "test", operation: "SlowSiteUpdate" }, SITE, create(SiteSchema, { ipvsTimeouts: { tcpSeconds: 555, tcpFinSeconds: 60, udpSeconds: 200 } }), { paths: ["ipvs_timeouts"] });
      await inHook;
      const revB = await setWeight(store, SITE, vsId, svc.rsHosts[0]!, 71);
      await director.backend.waitFor((x) => x.revision >= revB);
      release();
      const revA = (await a).revision;
      expect(revA).toBeLessThan(revB);
      const applied = await director.backend.waitFor((x) => x.desired.director?.timeouts?.tcpSeconds === 555);
      expect(applied.revision).toBeGreaterThan(revB);
      await fleet.converged(pool);
    } finally {
      done();
    }
    fleet.assertMonotonic();
  });

  it("an agent offline during 100 changes gets the latest on reconnect, in one apply", async () => {
    const [vsId, svc] = [...shape.services.entries()][2]!;
    const off = await fleet.stop(svc.director);
    const n = off.backend.applies.length;
    for (let i = 1; i <= 100; i++) await setWeight(store, SITE, vsId, svc.rsHosts[i % 2]!, 100 + i);
    await relays[0]!.idle();
    // Same "kernel" (the fake keeps its state), same state dir: a restarted agent.
    await fleet.start(svc.director, off.backend);
    await fleet.converged(pool);
    expect(off.backend.applies.length).toBe(n + 1);
    const weights = off.backend.current!.director!.services.find((s) => s.virtualService.endsWith(`/${vsId}`))!.destinations.map((d) => d.weight);
    expect(weights.sort()).toEqual([199, 200]);
    fleet.assertMonotonic();
  });

  it("64 concurrent writers with random commit delays: no change is skipped (the outbox trap)", async () => {
    // Every write takes its revision, then waits 0–80 ms before COMMIT: revisions commit out of order.
    const delay = async () => new Promise<void>((r) => setTimeout(r, Math.random() * 80));
    store.onWrite(delay);
    try {
      const targets = await realServerKeys();
      const writes: Array<Promise<bigint>> = [];
      const commitOrder: bigint[] = [];
      for (let i = 0; i < 64; i++) {
        const [vsId, h] = targets[i % targets.length]!;
        writes.push(setWeight(store, SITE, vsId, h, 1000 + i).then((rev) => (commitOrder.push(rev), rev)));
      }
      await Promise.all(writes);
      // The trap really happened: some revision committed after a higher one.
      expect(commitOrder.some((rev, i) => i > 0 && rev < commitOrder[i - 1]!)).toBe(true);
    } finally {
      store.db.afterWrite.splice(store.db.afterWrite.indexOf(delay), 1);
    }
    await relays[0]!.idle();
    await fleet.converged(pool);
    // Independent of the oracle: every Director's table has exactly the weights written last.
    const rows = await pool.query<{ vs: string; rs: string; w: number }>(
      "SELECT virtual_service_id AS vs, real_server_id AS rs, (resource->>'weight')::int AS w FROM real_servers",
    );
    for (const r of rows.rows) {
      const director = shape.services.get(r.vs)!.director;
      const svc = fleet.agents.get(director)!.backend.current!.director!.services.find((s) => s.virtualService.endsWith(`/${r.vs}`))!;
      expect(svc.destinations.find((d) => d.realServer.endsWith(`/${r.rs}`))?.weight, `${r.vs}/${r.rs}`).toBe(r.w);
    }
    expect(rows.rows.some((r) => r.w >= 1000)).toBe(true);
    fleet.assertMonotonic();
  });

  it("a lower revision committing after a higher one is published with a newer stamp (deterministic trap)", async () => {
    const [vsId, svc] = [...shape.services.entries()][4]!;
    const director = fleet.agents.get(svc.director)!;
    const { inHook, release, done } = holdBeforeCommit("SlowUpdate");
    try {
      // A takes its revision first and stalls before COMMIT ...
      const a = store.realServers.update({ actor: "test", operation: "SlowUpdate" }, SITE, vsId, svc.rsHosts[0]!, create(RealServerSchema, { weight: 61 }), { paths: ["weight"] });
      await inHook;
      // ... B takes a higher one, commits, and reaches the Director.
      const revB = await setWeight(store, SITE, vsId, svc.rsHosts[1]!, 62);
      await director.backend.waitFor((x) => x.revision >= revB);
      const bumps = relays[0]!.stats.bumps;
      release();
      const revA = (await a).revision;
      expect(revA).toBeLessThan(revB);
      // A's change arrives, stamped above B's revision (else the agent would ignore it).
      const applied = await director.backend.waitFor((x) =>
        x.desired.director!.services.some((s) => s.destinations.some((d) => d.realServer.endsWith(`/${svc.rsHosts[0]}`) && d.weight === 61)),
      );
      expect(applied.revision).toBeGreaterThan(revB);
      expect(relays[0]!.stats.bumps).toBeGreaterThan(bumps);
      const weights = director.backend.current!.director!.services.find((s) => s.virtualService.endsWith(`/${vsId}`))!.destinations.map((d) => d.weight);
      expect(weights.sort()).toEqual([61, 62]);
    } finally {
      done();
    }
    fleet.assertMonotonic();
  });

  it("two relays: only one publishes; the other takes over when it stops", async () => {
    await stopRelays();
    const a = await relay();
    await waitFor("a leader", () => a.isLeader());
    const b = await relay();
    await a.idle();
    const [vsId, svc] = [...shape.services.entries()][3]!;
    for (let i = 0; i < 5; i++) await setWeight(store, SITE, vsId, svc.rsHosts[0]!, 300 + i);
    await a.idle();
    await fleet.converged(pool);
    expect(a.isLeader()).toBe(true);
    expect(b.isLeader()).toBe(false);
    expect(b.stats).toMatchObject({ compiled: 0, published: 0, leaderships: 0 });
    expect(a.stats.published).toBeGreaterThan(0);
    await a.stop();
    await waitFor("b takes over", () => b.isLeader(), 10_000);
    await setWeight(store, SITE, vsId, svc.rsHosts[0]!, 400);
    await b.idle();
    await fleet.converged(pool);
    expect(b.stats.compiled).toBeGreaterThan(0);
  });

  it("leadership moves A → B → A: A's topology cache from before is dropped, never compiled onto (stale cache)", async () => {
    // A keeps the site's topology from its own last compile and re-reads only what the outbox rows it
    // takes name. Rows B consumed while leading are gone when A leads again, so A's cache misses
    // their changes: relay_compile_token must make A reload, or A's next change of the same service
    // would be compiled onto stale weights and published with a newer revision.
    await stopRelays();
    // Mutable lock-connection settings: the relay spreads them over the pool's on every (re)connect.
    const lockA: pg.ClientConfig = { application_name: "relay-test-lock-a" };
    const lockB: pg.ClientConfig = { application_name: "relay-test-lock-b" };
    const a = await relay({ lockConnection: lockA });
    await waitFor("A leads", () => a.isLeader());
    const b = await relay({ lockConnection: lockB });
    const [vsId, svc] = [...shape.services.entries()][5]!;
    const [rs0, rs1] = svc.rsHosts as [string, string];
    /**
     * Ends the leader's lock session and keeps it from coming back until `next` holds the lock: a
     * relay whose lock session ends reconnects at once, which would usually beat `next`'s jittered
     * lock poll (this test flaked on that race). Its reconnects go to a closed port meanwhile.
     */
    const handOver = async (from: pg.ClientConfig, next: Relay) => {
      from.connectionString = "postgres://postgres@127.0.0.1:1/unreachable";
      try {
        await pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [from.application_name]);
        await waitFor(`${from.application_name} hands over`, () => next.isLeader(), 20_000);
      } finally {
        delete from.connectionString;
      }
    };
    /** Waits until `r` compiled and published the Director's state at ≥ `rev`. */
    const publishedBy = async (r: Relay, rev: bigint) => {
      const before = r.stats.compiled;
      await waitFor(`revision ${rev} published`, async () =>
        (await pool.query("SELECT 1 FROM desired_states WHERE site = $1 AND host = $2 AND revision >= $3 AND published", [SITE, svc.director, rev.toString()])).rows.length > 0);
      await r.idle();
      return r.stats.compiled - before;
    };
    await a.idle();
    expect(await publishedBy(a, await setWeight(store, SITE, vsId, rs0, 600))).toBeGreaterThan(0);
    await handOver(lockA, b);
    await setWeight(store, SITE, vsId, rs1, 601);
    expect(await publishedBy(b, await setWeight(store, SITE, vsId, rs0, 602))).toBeGreaterThan(0);
    await handOver(lockB, a);
    const drops = a.stats.cacheDrops;
    await publishedBy(a, await setWeight(store, SITE, vsId, rs1, 603));
    expect(a.stats.cacheDrops).toBe(drops + 1);
    // The Director's state has both last weights; desired_states equal a full compile of the
    // database; the KV holds what desired_states holds.
    const hosts = [...fleet.agents.keys()];
    const want = await expectedParts(pool, SITE, hosts);
    const kv = await new Kvm(nc).open(bucket);
    const rows = await pool.query<{ host: string; hash: string; revision: string }>("SELECT host, hash, revision::text AS revision FROM desired_states WHERE site = $1", [SITE]);
    expect(rows.rows.find((r) => r.host === "_site")?.hash).toBe(want.site);
    for (const r of rows.rows) {
      if (!want.host.has(r.host)) continue;
      expect(r.hash, r.host).toBe(want.host.get(r.host));
      const ds = fromBinary(HostDesiredStateSchema, (await kv.get(`${SITE}.${r.host}`))!.value);
      expect([ds.hash, ds.revision.toString()], r.host).toEqual([r.hash, r.revision]);
    }
    const e = await kv.get(`${SITE}.${svc.director}`);
    const svcState = fromBinary(HostDesiredStateSchema, e!.value).director!.services.find((s) => s.virtualService.endsWith(`/${vsId}`))!;
    expect(svcState.destinations.map((d) => d.weight).sort()).toEqual([602, 603]);
    await fleet.converged(pool);
    fleet.assertMonotonic();
    await stopRelays();
    await relay();
  });

  it("relay killed (SIGKILL) mid-burst: nothing is lost", async () => {
    await stopRelays();
    const child = spawn(process.execPath, ["--import", "tsx", "services/controlplane/relay/main.ts"], {
      env: { ...process.env, DATABASE_URL: t.url, NATS_URL: SHARED_NATS_URL, LVSFLEET_DESIRED_BUCKET: bucket, LVSFLEET_RELAY_POLL_MS: "50", LVSFLEET_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (d) => (out += String(d)));
    child.stderr!.on("data", (d) => (out += String(d)));
    await waitFor("the child relay leads", () => out.includes("relay leader"), 20_000);
    const targets = await realServerKeys();
    const exited = new Promise((r) => child.once("exit", r));
    let killedAt = -1;
    for (let i = 0; i < 120; i++) {
      const [vsId, h] = targets[i % targets.length]!;
      const writes = [setWeight(store, SITE, vsId, h, 2000 + i)];
      if (i === 40) {
        // Let the relay be in the middle of the stream, then kill it without warning.
        await waitFor("the child relay publishing", async () => (await pool.query("SELECT count(*)::int AS n FROM desired_states WHERE revision > 0 AND published")).rows[0].n > 0);
        child.kill("SIGKILL");
        killedAt = i;
      }
      await Promise.all(writes);
    }
    await exited;
    expect(killedAt).toBe(40);
    // Writes went on without a relay; a new one picks up everything.
    const r = await relay();
    await r.idle(30_000);
    const want = await fleet.converged(pool, 30_000);
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox")).rows[0].n).toBe(0);
    const unpublished = await pool.query("SELECT count(*)::int AS n FROM desired_states WHERE NOT published");
    expect(unpublished.rows[0].n).toBe(0);
    expect(want.size).toBe(50);
    fleet.assertMonotonic();
  });

  it("the relay's Postgres connections cut mid-burst (as a Postgres restart would): it goes on, nothing is lost", async () => {
    await stopRelays();
    const r = await relay();
    await r.idle(30_000);
    const targets = await realServerKeys();
    let cut = 0;
    for (let i = 0; i < 90; i++) {
      const [vsId, h] = targets[i % targets.length]!;
      const write = setWeight(store, SITE, vsId, h, 3000 + i);
      if (i % 15 === 7) {
        // Every connection of the relay's compile/publish pool, whether idle or in a transaction.
        const k = await pool.query<{ n: number }>("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'lvsfleet-relay' AND datname = current_database()");
        cut += k.rows[0]!.n;
      }
      await write;
    }
    expect(cut).toBeGreaterThan(0);
    await r.idle(30_000);
    const want = await fleet.converged(pool, 30_000);
    expect(want.size).toBe(50);
    expect((await pool.query("SELECT count(*)::int AS n FROM outbox")).rows[0].n).toBe(0);
    expect((await pool.query("SELECT count(*)::int AS n FROM desired_states WHERE NOT published")).rows[0].n).toBe(0);
    fleet.assertMonotonic();
  });

  it("a deleted site: every one of its hosts gets the empty state (the agent removes everything)", async () => {
    const site2 = "tmp9";
    const shape2 = await buildFleet(store, site2, 1, 2);
    const fleet2 = await AgentFleet.create(site2, SHARED_NATS_URL, bucket);
    try {
      await fleet2.startAll([...shape2.directors, ...shape2.realServers]);
      await fleet2.converged(pool);
      expect(fleet2.agents.get("d0")!.backend.current!.director!.services.length).toBe(1);
      expect(fleet2.agents.get("r0")!.backend.current!.realServer!.addresses.length).toBe(1);
      await store.sites.delete({ actor: "test", operation: "DeleteSite" }, site2, { force: true });
      await fleet2.converged(pool);
      for (const a of fleet2.agents.values()) {
        expect(a.backend.current!.director).toBeUndefined();
        expect(a.backend.current!.realServer).toBeUndefined();
        expect(a.backend.current!.sysctls).toEqual([]);
      }
      const r = await pool.query("SELECT count(*)::int AS n FROM desired_states WHERE site = $1 AND present", [site2]);
      expect(r.rows[0].n).toBe(0);
      fleet2.assertMonotonic();
    } finally {
      await fleet2.close();
    }
  });
});
