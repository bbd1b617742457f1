// Desired states above the inline limit (NATS max_payload in production; set low here so the states
// stay small): the relay puts them into the Object Store and a reference into the KV; agents fetch,
// check and apply them. Real Postgres (a database of this file), the shared NATS (buckets of this
// file), agents in-process with the fake backend. A server with a really small max_payload:
// fleet-large-state-payload.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { AgentPhase, AgentReportSchema, type AgentReport } from "../../gen/lvsfleet/v1/agent_report_pb.js";
import { HostDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { RealServerSchema, VirtualServiceSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { hashDesiredState } from "../../services/controlplane/compile/index.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { createBulk } from "../../services/controlplane/store/bulk.js";
import { outboxHook, startRelay, type Relay } from "../../services/controlplane/relay/index.js";
import { packStateObject } from "../../services/controlplane/relay/state-object.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";
import { AgentFleet, buildFleet, meta, setWeight, SHARED_NATS_URL, uniqueName, waitFor, type FleetShape } from "./fleet-harness.js";

const SITE = "lhr3";
/** Far below the shared server's 1 MiB: the big Director's ≈40 KB state goes to the Object Store. */
const INLINE_MAX = 4096;
let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let bucket: string;
let nc: NatsConnection;
let kv: KV;
let fleet: AgentFleet;
let shape: FleetShape;
const relays: Relay[] = [];

async function relay(inlineMaxBytes = INLINE_MAX, publishBatchBytes?: number): Promise<Relay> {
  const r = await startRelay({ pool, natsUrl: SHARED_NATS_URL, bucket, pollMs: 100, lockRetryMs: 200, markerCheckMs: 500, inlineMaxBytes, publishBatchBytes });
  relays.push(r);
  return r;
}

/** The KV value of a host, decoded (a reference when its state is above the limit). */
async function kvValue(host: string): Promise<{ bytes: number; ds: HostDesiredState }> {
  const e = await kv.get(`${SITE}.${host}`);
  return { bytes: e!.value.length, ds: fromBinary(HostDesiredStateSchema, e!.value) };
}

async function objectsOf(os: ObjectStore, host: string): Promise<string[]> {
  return (await os.list()).filter((o) => !o.deleted && o.name.startsWith(`${SITE}.${host}.`)).map((o) => o.name).sort();
}

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 20);
  store = new TopologyStore(pool);
  store.onWrite(outboxHook);
  bucket = uniqueName("lvsfleet-desired-large");
  nc = await connect({ servers: SHARED_NATS_URL });
  shape = await buildFleet(store, SITE, 2, 2);
  // d0 carries 40 NAT services × 10 real servers besides web0 (one import, one transaction).
  await createBulk(
    store.db,
    meta("ImportIpvsadm"),
    SITE,
    Array.from({ length: 40 }, (_, i) => ({
      id: `big${i}`,
      label: `line ${i}`,
      virtualService: create(VirtualServiceSchema, { protocol: Protocol.TCP, address: `203.0.113.${100 + i}`, port: 443, scheduler: "wlc", directors: [`sites/${SITE}/hosts/d0`] }),
      realServers: Array.from({ length: 10 }, (_, j) => ({
        id: `rs${j}`,
        label: `line ${i}.${j}`,
        realServer: create(RealServerSchema, { address: `198.18.${i}.${j + 1}`, port: 8443, forwardMethod: ForwardMethod.NAT, weight: 1 }),
      })),
    })),
    { field: "text" },
  );
  fleet = await AgentFleet.create(SITE, SHARED_NATS_URL, bucket);
});

afterAll(async () => {
  for (const r of relays.splice(0)) await r.stop();
  await fleet?.close();
  await new Kvm(nc).open(bucket).then((b) => b.destroy()).catch(() => undefined);
  await new Objm(nc).open(bucket).then((b) => b.destroy()).catch(() => undefined);
  await nc?.close();
  await pool?.end();
  await t?.drop();
});

describe("a Director state above the inline limit", () => {
  it("goes to the Object Store, the KV holds a reference; the agent applies the full state (hash of the compile)", async () => {
    const r = await relay();
    await fleet.startAll([...shape.directors, ...shape.realServers]);
    const want = await fleet.converged(pool);
    kv = await new Kvm(nc).open(bucket);
    const d0 = await kvValue("d0");
    expect(d0.ds.stateObject).toBeDefined();
    expect(d0.bytes).toBeLessThan(INLINE_MAX);
    expect(d0.ds.director).toBeUndefined();
    expect(d0.ds.stateObject!.stateSize).toBeGreaterThan(BigInt(INLINE_MAX));
    // Small states stay inline.
    expect((await kvValue("d1")).ds.stateObject).toBeUndefined();
    const applied = fleet.agents.get("d0")!.backend.current!;
    expect(applied.hash).toBe(want.get("d0"));
    expect(applied.director!.services.length).toBe(41);
    expect(applied.director!.services.reduce((n, s) => n + s.destinations.length, 0)).toBe(402);
    expect(applied.stateObject).toBeUndefined();
    const os = await new Objm(nc).open(bucket);
    expect(await objectsOf(os, "d0")).toEqual([d0.ds.stateObject!.name]);
    expect(r.stats.objectsPut).toBe(1);
  });

  it("changes converge; superseded objects are deleted, the previous one is kept for slow agents", async () => {
    const r = relays[0]!;
    const os = await new Objm(nc).open(bucket);
    const names: string[] = [];
    for (const w of [3, 4, 5]) {
      const rev = await setWeight(store, SITE, "big7", "rs3", w);
      const a = await fleet.agents.get("d0")!.backend.waitFor((x) => x.revision >= rev);
      expect(a.desired.director!.services.find((s) => s.virtualService.endsWith("/big7"))!.destinations.find((d) => d.realServer.endsWith("/rs3"))!.weight).toBe(w);
      await fleet.converged(pool);
      await r.idle();
      names.push((await kvValue("d0")).ds.stateObject!.name);
    }
    expect(new Set(names).size).toBe(3);
    // Current and previous remain; the first (and the initial one) are gone.
    expect(await objectsOf(os, "d0")).toEqual(names.slice(1).sort());
    expect(r.stats.objectsDeleted).toBe(2);
    fleet.assertMonotonic();
  });

  it("a new leader republishes without putting the objects again and sweeps to current + previous", async () => {
    const os = await new Objm(nc).open(bucket);
    const before = await objectsOf(os, "d0");
    for (const x of relays.splice(0)) await x.stop();
    const applies = fleet.agents.get("d0")!.backend.applies.length;
    const r = await relay();
    await waitFor("republish", () => r.stats.republishes > 0);
    await r.idle();
    expect(r.stats.objectsPut).toBe(0);
    expect(await objectsOf(os, "d0")).toEqual(before);
    // A change after the takeover supersedes the previous object, which the sweep adopted.
    const current = (await kvValue("d0")).ds.stateObject!.name;
    const rev = await setWeight(store, SITE, "big1", "rs1", 9);
    await fleet.agents.get("d0")!.backend.waitFor((x) => x.revision >= rev);
    await r.idle();
    const next = (await kvValue("d0")).ds.stateObject!.name;
    expect(await objectsOf(os, "d0")).toEqual([current, next].sort());
    expect(fleet.agents.get("d0")!.backend.applies.length).toBe(applies + 1);
    fleet.assertMonotonic();
  });

  it("with a limit below every state, every host part becomes an object (the site part stays inline); all converge", async () => {
    for (const x of relays.splice(0)) await x.stop();
    // Publish batches of one row (the byte cap): the republish and the change still reach every host.
    const r = await relay(1, 1);
    await waitFor("republish", () => r.stats.republishes > 0);
    await r.idle();
    const hosts = [...shape.directors, ...shape.realServers];
    for (const h of hosts) expect((await kvValue(h)).ds.stateObject?.name).toMatch(new RegExp(`^${SITE}\\.${h}\\.[0-9a-f]{64}$`));
    const site = await kv.get(`${SITE}._site`);
    expect(site!.value.length).toBeGreaterThan(0);
    const rev = await setWeight(store, SITE, "web0", shape.services.get("web0")!.rsHosts[0]!, 5);
    await fleet.agents.get("d0")!.backend.waitFor((x) => x.revision >= rev);
    await fleet.converged(pool);
    fleet.assertMonotonic();
  });
});

describe("the agent and a broken state object", () => {
  const site = "ber1";
  const host = "lb1";
  let b2: string;
  let kv2: KV;
  let os2: ObjectStore;
  let fleet2: AgentFleet;
  let sub: Subscription;
  const reports: AgentReport[] = [];

  function director(revision: bigint, weight: number): HostDesiredState {
    const ds = create(HostDesiredStateSchema, {
      site,
      host,
      director: {
        services: Array.from({ length: 30 }, (_, i) => ({
          virtualService: `sites/${site}/virtualServices/web${i}`,
          protocol: Protocol.TCP,
          address: `203.0.113.${i + 1}`,
          port: 80,
          scheduler: "wlc",
          destinations: Array.from({ length: 10 }, (_, j) => ({ realServer: `sites/${site}/virtualServices/web${i}/realServers/r${j}`, address: `198.18.${i}.${j + 1}`, port: 80, forwardMethod: ForwardMethod.NAT, weight })),
        })),
      },
    });
    ds.hash = hashDesiredState(ds);
    ds.revision = revision;
    return ds;
  }

  beforeAll(async () => {
    b2 = uniqueName("lvsfleet-desired-broken");
    kv2 = await new Kvm(nc).create(b2, { history: 1 });
    os2 = await new Objm(nc).create(b2);
    sub = nc.subscribe(`lvsfleet.status.${site}.${host}`, { callback: (_e, m) => void reports.push(fromBinary(AgentReportSchema, m.data)) });
    fleet2 = await AgentFleet.create(site, SHARED_NATS_URL, b2);
  });

  afterAll(async () => {
    sub?.unsubscribe();
    await fleet2?.close();
    await kv2?.destroy().catch(() => undefined);
    await os2?.destroy().catch(() => undefined);
  });

  const last = () => reports[reports.length - 1];

  it("a corrupt object is reported as an error and not applied; once it is right, it is applied", async () => {
    const s1 = director(10n, 1);
    const p1 = await packStateObject(toBinary(HostDesiredStateSchema, s1), { deflate: true });
    await os2.putBlob({ name: p1.name }, p1.bytes);
    await kv2.put(`${site}.${host}`, p1.reference);
    const a = await fleet2.start(host);
    await a.backend.waitFor((x) => x.revision === 10n);
    expect(a.backend.current!.hash).toBe(s1.hash);
    expect(a.backend.current!.director!.services.length).toBe(30);

    const s2 = director(11n, 2);
    const p2 = await packStateObject(toBinary(HostDesiredStateSchema, s2), { deflate: true });
    const bad = Uint8Array.from(p2.bytes);
    bad[bad.length >> 1]! ^= 0x01;
    await os2.putBlob({ name: p2.name }, bad);
    await kv2.put(`${site}.${host}`, p2.reference);
    const err = await waitFor("an ERROR report naming the digest", () => {
      const r = last();
      return r?.phase === AgentPhase.ERROR && r.errors.some((e) => e.operation === "fetch" && /SHA-256/.test(e.message)) ? r : undefined;
    });
    expect(err.appliedRevision).toBe(10n);
    expect(err.seenRevision).toBe(10n);
    // Retried with backoff, never applied meanwhile.
    const attempts = reports.length;
    await waitFor("more attempts", () => reports.length >= attempts + 2 && last()!.phase === AgentPhase.ERROR);
    expect(a.backend.applies.map((x) => x.revision)).toEqual([10n]);

    await os2.putBlob({ name: p2.name }, p2.bytes);
    // A read in flight while the object was replaced waits for chunks that were purged: the agent
    // gives up on it after its read timeout (5 s here) and reads again.
    await a.backend.waitFor((x) => x.revision === 11n, 20_000);
    expect(a.backend.current!.hash).toBe(s2.hash);
    await waitFor("an IDLE report without errors", () => {
      const r = last();
      return r?.phase === AgentPhase.IDLE && r.errors.length === 0 && r.appliedRevision === 11n;
    });
  });

  it("a missing object is reported; a newer state supersedes it", async () => {
    const a = fleet2.agents.get(host)!;
    const s3 = director(12n, 3);
    const p3 = await packStateObject(toBinary(HostDesiredStateSchema, s3), { deflate: false });
    await kv2.put(`${site}.${host}`, p3.reference); // its object is never put
    await waitFor("an ERROR report naming the missing object", () => {
      const r = last();
      return r?.phase === AgentPhase.ERROR && r.errors.some((e) => /missing/.test(e.message)) ? r : undefined;
    });
    expect(a.backend.applies.map((x) => x.revision)).toEqual([10n, 11n]);
    // A newer state, small enough to be inline.
    const s4 = create(HostDesiredStateSchema, { site, host, sysctls: [{ key: "net.ipv4.vs.conntrack", value: "1" }] });
    s4.hash = hashDesiredState(s4);
    s4.revision = 13n;
    await kv2.put(`${site}.${host}`, toBinary(HostDesiredStateSchema, s4));
    await a.backend.waitFor((x) => x.revision === 13n);
    await waitFor("errors cleared", () => {
      const r = last();
      return r?.phase === AgentPhase.IDLE && r.errors.length === 0 && r.appliedRevision === 13n;
    });
    expect(a.backend.applies.map((x) => x.revision)).toEqual([10n, 11n, 13n]);
  });
});
