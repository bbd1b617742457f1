/**
 * The API's read cache (store/read-cache.ts, store/cached-reads.ts) against the real Postgres:
 * - the pre-encoded responses are byte for byte what toBinary gives, for every Get and List;
 * - a read never returns data older than a write acknowledged before it started — including a read
 *   whose SQL ran before the write committed and whose result arrives after (held back on purpose);
 * - concurrent writers and readers: every read reflects every write acknowledged before it began;
 * - a second store (another process) sees writes through NOTIFY; after its LISTEN connection is
 *   killed it serves from Postgres until it is back;
 * and that the checker is able to fail: with invalidation switched off it finds the stale reads.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import pg from "pg";
import { RealServerSchema, SiteSchema, VirtualServiceSchema, HostSchema, FirewallMarkSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createClient } from "../../lib/grpc/client.js";
import { appendInt64Field, encodingOf } from "../../lib/grpc/encoded.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { topologyService } from "../../services/controlplane/api/topology-service.js";
import { createBulk } from "../../services/controlplane/store/bulk.js";
import { CachedReads } from "../../services/controlplane/store/cached-reads.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import type { ReadCacheListener } from "../../services/controlplane/store/read-cache.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

const meta = (operation: string) => ({ actor: "anonymous", operation });
const rsName = (vs: string, rs: string) => `sites/rc/virtualServices/${vs}/realServers/${rs}`;

let t: TestDatabase;
let poolA: pg.Pool;
let poolB: pg.Pool;
/** Process A: the store under test. Process B: another control plane on the same database. */
let a: TopologyStore;
let b: TopologyStore;
let listenA: ReadCacheListener;
let listenB: ReadCacheListener;

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  t = await createTestDatabase();
  poolA = createPool(t.url, 12);
  poolB = createPool(t.url, 4);
  a = new TopologyStore(poolA);
  b = new TopologyStore(poolB);
  listenA = a.startReadCache(t.url);
  listenB = b.startReadCache(t.url);
  await Promise.all([listenA.ready, listenB.ready]);
  await a.sites.create(meta("CreateSite"), "rc", create(SiteSchema, { displayName: "read cache" }));
  await a.sites.create(meta("CreateSite"), "rc2", create(SiteSchema, {}));
  await a.hosts.create(meta("CreateHost"), "rc", "lb1", create(HostSchema, { roles: [HostRole.DIRECTOR], addresses: ["192.0.2.2"] }));
  await a.firewallMarks.create(
    meta("CreateFirewallMark"),
    "rc",
    "web",
    create(FirewallMarkSchema, { mark: 7, matches: [{ destinations: ["192.0.2.0/24"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }] }] }),
  );
  for (const [id, port] of [["web", 80], ["api", 443]] as const) {
    await a.virtualServices.create(meta("CreateVirtualService"), "rc", id, create(VirtualServiceSchema, { protocol: Protocol.TCP, address: "192.0.2.10", port, directors: ["sites/rc/hosts/lb1"] }));
  }
  for (let i = 0; i < 12; i++) {
    await a.realServers.create(meta("CreateRealServer"), "rc", "web", `r${String(i).padStart(2, "0")}`, create(RealServerSchema, { address: `198.51.100.${10 + i}`, port: 80, weight: 1 }));
  }
});

afterAll(async () => {
  await listenA?.stop();
  await listenB?.stop();
  await poolA?.end();
  await poolB?.end();
  await t?.drop();
});

describe("encoded responses", () => {
  it("appendInt64Field gives toBinary's bytes for revisions around the varint boundaries", () => {
    const vs = create(VirtualServiceSchema, { name: "sites/x/virtualServices/y", port: 80 });
    for (const rev of [0n, 1n, 127n, 128n, 16_383n, 16_384n, 2n ** 35n, 2n ** 63n - 1n]) {
      const full = create(GetVsResponse(), { virtualService: vs, revision: rev });
      const prefix = toBinary(GetVsResponse(), create(GetVsResponse(), { virtualService: vs }));
      expect(Buffer.from(appendInt64Field(prefix, 2, rev)).equals(Buffer.from(toBinary(GetVsResponse(), full))), `revision ${rev}`).toBe(true);
    }
  });

  it("every cached Get and List response carries exactly toBinary's bytes, cold and warm, and decodes the same over gRPC", async () => {
    const api = topologyService(a);
    const ctx = { metadata: {}, signal: new AbortController().signal, peer: "memory" };
    const calls: Array<[string, unknown]> = [
      ["getSite", { name: "sites/rc" }],
      ["listSites", { pageSize: 1 }],
      ["listSites", {}],
      ["getHost", { name: "sites/rc/hosts/lb1" }],
      ["listHosts", { parent: "sites/rc" }],
      ["listHosts", { parent: "sites/-" }],
      ["getFirewallMark", { name: "sites/rc/firewallMarks/web" }],
      ["listFirewallMarks", { parent: "sites/rc" }],
      ["getVirtualService", { name: "sites/rc/virtualServices/web" }],
      ["listVirtualServices", { parent: "sites/rc", pageSize: 1 }],
      ["listVirtualServices", { parent: "sites/-" }],
      ["getRealServer", { name: rsName("web", "r03") }],
      ["listRealServers", { parent: "sites/rc/virtualServices/web", pageSize: 5 }],
      ["listRealServers", { parent: "sites/rc/virtualServices/-", pageSize: 100 }],
      ["listRealServers", { parent: "sites/-/virtualServices/-" }],
      ["listRealServers", { parent: "sites/rc/virtualServices/api" }],
    ];
    const server: RunningServer = await startGrpcServer({ address: "127.0.0.1:0", services: [bind(TopologyService, api)] });
    const client = createClient(TopologyService, server.address);
    try {
      for (const [method, req] of calls) {
        const m = TopologyService.method[method as keyof typeof TopologyService.method];
        const fn = (api as unknown as Record<string, (r: unknown, c: unknown) => Promise<object>>)[method]!;
        for (const round of ["cold", "warm"]) {
          const res = await fn(create(m.input as DescMessage, req as never), ctx);
          const bytes = encodingOf(res);
          expect(bytes, `${method} ${round}: no encoding attached`).toBeDefined();
          expect(Buffer.from(bytes!).equals(Buffer.from(toBinary(m.output as DescMessage, res as never))), `${method} ${JSON.stringify(req)} ${round}`).toBe(true);
        }
        const overGrpc = await (client as unknown as Record<string, (r: unknown) => Promise<object>>)[method]!(req);
        const inMemory = await fn(create(m.input as DescMessage, req as never), ctx);
        expect(toBinary(m.output as DescMessage, overGrpc as never)).toEqual(toBinary(m.output as DescMessage, inMemory as never));
      }
      expect(a.db.readCache.stats.hits).toBeGreaterThan(0);
    } finally {
      client.close();
      await server.shutdown(1000);
    }
  });

  it("errors are answered the same and never cached", async () => {
    await expect(a.reads.realServer("rc", "web", "nope")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(a.reads.realServers("rc", "web", { pageToken: "!!" })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await a.realServers.create(meta("CreateRealServer"), "rc", "web", "nope", create(RealServerSchema, { address: "198.51.100.99", port: 80 }));
    expect((await a.reads.realServer("rc", "web", "nope")).resource.address).toBe("198.51.100.99");
    await a.realServers.delete(meta("DeleteRealServer"), "rc", "web", "nope");
    await expect(a.reads.realServer("rc", "web", "nope")).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});

function GetVsResponse() {
  return TopologyService.method.getVirtualService.output;
}

describe("no stale reads in this process", () => {
  it("a read after an acknowledged write sees it: Get, exact list, wildcard lists; revision ≥ the write's", async () => {
    for (let i = 2; i < 8; i++) {
      // Warm every view of r05 first, so a missing invalidation would show.
      await a.reads.realServer("rc", "web", "r05");
      await a.reads.realServers("rc", "web", { pageSize: 100 });
      await a.reads.realServers("rc", "-", { pageSize: 100 });
      await a.reads.realServers("-", "-", { pageSize: 100 });
      const w = await a.realServers.update(meta("UpdateRealServer"), "rc", "web", "r05", create(RealServerSchema, { weight: i }), { paths: ["weight"] });
      const got = await a.reads.realServer("rc", "web", "r05");
      expect(got.resource.weight).toBe(i);
      expect(got.revision).toBeGreaterThanOrEqual(w.revision);
      for (const page of [
        await a.reads.realServers("rc", "web", { pageSize: 100 }),
        await a.reads.realServers("rc", "-", { pageSize: 100 }),
        await a.reads.realServers("-", "-", { pageSize: 100 }),
      ]) {
        expect(page.items.find((r) => r.name === rsName("web", "r05"))?.weight).toBe(i);
        expect(page.revision).toBeGreaterThanOrEqual(w.revision);
      }
    }
    // A write elsewhere leaves the entry cached, and the revision reported moves on with it.
    const before = a.db.readCache.stats.hits;
    const other = await a.realServers.update(meta("UpdateRealServer"), "rc", "web", "r06", create(RealServerSchema, { weight: 9 }), { paths: ["weight"] });
    const vs = await a.reads.virtualService("rc", "api");
    const again = await a.reads.virtualService("rc", "api");
    expect(a.db.readCache.stats.hits).toBeGreaterThan(before);
    expect(again.revision).toBeGreaterThanOrEqual(other.revision);
    expect(again.resource).toBe(vs.resource);
  });

  it("a read whose SQL ran before a write committed is answered but not kept (nor joined by later reads)", async () => {
    // A pool whose next read result is held back until `release`: the read's snapshot predates the write.
    let hold: Promise<void> | undefined;
    let release!: () => void;
    let held!: () => void;
    const heldYet = new Promise<void>((r) => (held = r));
    const gated = {
      query: async (...args: unknown[]) => {
        const r = await (poolA.query as (...x: unknown[]) => Promise<unknown>)(...args);
        if (hold) {
          const h = hold;
          hold = undefined;
          held();
          await h;
        }
        return r;
      },
    } as unknown as pg.Pool;
    const reads = new CachedReads(gated, a.db.readCache);
    const cur = (await a.realServers.get("rc", "web", "r07")).resource.weight ?? 0;
    hold = new Promise<void>((r) => (release = r));
    const early = reads.realServer("rc", "web", "r07");
    await heldYet;
    const w = await a.realServers.update(meta("UpdateRealServer"), "rc", "web", "r07", create(RealServerSchema, { weight: cur + 1 }), { paths: ["weight"] });
    // Started after the write was acknowledged, while the early fill of the same key is in flight.
    const late = reads.realServer("rc", "web", "r07");
    release();
    expect((await early).resource.weight).toBe(cur);
    const l = await late;
    expect(l.resource.weight).toBe(cur + 1);
    expect(l.revision).toBeGreaterThanOrEqual(w.revision);
    expect((await reads.realServer("rc", "web", "r07")).resource.weight).toBe(cur + 1);
  });

  /**
   * Writers update weights (one writer per real server, so acknowledged revisions only grow); readers
   * note, before each read, the newest acknowledged revision of the real server they read, and check
   * the read's row revision is at least that. Returns the violations.
   */
  async function race(store: TopologyStore, ms: number): Promise<string[]> {
    const ids = ["r00", "r01", "r02", "r03"];
    const acked = new Map<string, bigint>();
    for (const id of ids) acked.set(id, (await store.realServers.get("rc", "web", id)).resource.revision);
    const violations: string[] = [];
    let writes = 0;
    let reads = 0;
    const end = Date.now() + ms;
    const writers = ids.map(async (id, n) => {
      for (let i = 0; Date.now() < end; i++) {
        const w = await store.realServers.update(meta("UpdateRealServer"), "rc", "web", id, create(RealServerSchema, { weight: 100 + ((i + n) % 50) }), { paths: ["weight"] });
        acked.set(id, w.resource.revision);
        writes++;
      }
    });
    const readers = Array.from({ length: 6 }, async (_, n) => {
      for (let i = 0; Date.now() < end; i++) {
        const id = ids[(i + n) % ids.length]!;
        const floor = acked.get(id)!;
        const got =
          i % 2 === 0
            ? (await store.reads.realServer("rc", "web", id)).resource
            : (await store.reads.realServers("rc", "web", { pageSize: 100 })).items.find((r) => r.name === rsName("web", id))!;
        if (got.revision < floor) violations.push(`${id}: read revision ${got.revision} after ${floor} was acknowledged`);
        reads++;
        // A hit resolves without I/O: let the writers' I/O run between reads, as a server's would.
        await new Promise((r) => setImmediate(r));
      }
    });
    await Promise.all([...writers, ...readers]);
    // Both sides must really have run interleaved for the check to mean anything.
    expect(writes).toBeGreaterThan(8);
    expect(reads).toBeGreaterThan(50);
    return violations;
  }

  it("concurrent writers and readers: every read reflects every write acknowledged before it began", async () => {
    const hits = a.db.readCache.stats.hits;
    expect(await race(a, 2500)).toEqual([]);
    expect(a.db.readCache.stats.hits).toBeGreaterThan(hits);
  });

  it("the same check fails for a cache whose writes do not invalidate (it can fail)", async () => {
    const cache = a.db.readCache;
    const invalidate = cache.invalidate;
    cache.invalidate = () => undefined;
    try {
      expect((await race(a, 1000)).length).toBeGreaterThan(0);
    } finally {
      cache.invalidate = invalidate;
      cache.reset();
    }
  });
});

describe("other processes", () => {
  it("a write through A reaches B's cache through NOTIFY", async () => {
    const first = await b.reads.realServer("rc", "web", "r08");
    const weight = first.resource.weight ?? 0;
    const hits = b.db.readCache.stats.hits;
    expect((await b.reads.realServer("rc", "web", "r08")).resource).toBe(first.resource);
    expect(b.db.readCache.stats.hits).toBe(hits + 1);
    const w = await a.realServers.update(meta("UpdateRealServer"), "rc", "web", "r08", create(RealServerSchema, { weight: weight + 1 }), { paths: ["weight"] });
    await waitFor("B to see A's write", async () => (await b.reads.realServer("rc", "web", "r08")).resource.weight === weight + 1);
    expect((await b.reads.realServer("rc", "web", "r08")).revision).toBeGreaterThanOrEqual(w.revision);
  });

  it("a write too big to name in one notification drops B's whole cache", async () => {
    await b.reads.virtualService("rc", "api");
    await b.reads.realServers("rc", "web", { pageSize: 3 });
    const resets = b.db.readCache.stats.resets;
    // One import of a service with 160 real servers (names ~70 bytes each): over the payload limit.
    const realServers = Array.from({ length: 160 }, (_, i) => ({
      id: `real-server-with-a-long-id-${i}`,
      realServer: create(RealServerSchema, { address: `198.18.0.${i}`, port: 80 }),
      label: `line ${i + 2}`,
    }));
    const virtualService = create(VirtualServiceSchema, { protocol: Protocol.TCP, address: "192.0.2.11", port: 80 });
    await createBulk(a.db, meta("ImportIpvsadm"), "rc2", [{ id: "big", virtualService, label: "line 1", realServers }], { field: "text" });
    await waitFor("B to reset", () => b.db.readCache.stats.resets > resets);
    expect(b.db.readCache.size).toBe(0);
  });

  it("B's listener killed: B reads from Postgres (seeing A's writes at once) until it reconnects", async () => {
    await b.reads.realServer("rc", "web", "r09");
    const pid = await listenB.backendPid();
    expect(pid).toBeGreaterThan(0);
    await t.pool.query("SELECT pg_terminate_backend($1)", [pid]);
    await waitFor("B's cache to turn off", () => !b.db.readCache.isEnabled);
    const cur = (await b.reads.realServer("rc", "web", "r09")).resource.weight ?? 0;
    await a.realServers.update(meta("UpdateRealServer"), "rc", "web", "r09", create(RealServerSchema, { weight: cur + 1 }), { paths: ["weight"] });
    if (!b.db.readCache.isEnabled) expect((await b.reads.realServer("rc", "web", "r09")).resource.weight).toBe(cur + 1);
    await waitFor("B's cache to come back", () => b.db.readCache.isEnabled);
    expect((await b.reads.realServer("rc", "web", "r09")).resource.weight).toBe(cur + 1);
    expect((await listenB.backendPid())).not.toBe(pid);
  });
});
