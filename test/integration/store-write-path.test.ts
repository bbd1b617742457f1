/**
 * The write path's round-trip savings (store/db.ts, rows.ts) on the real Postgres: BEGIN + now() +
 * the first statement in one simple query with parameters written as literals, row + audit row in one
 * statement, statements deferred to the COMMIT round trip. What must hold: literals are exact (no
 * injection, no mangling), deferred statements commit or roll back with the write, and a real-server
 * create costs the round trips it claims.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toJson } from "@bufbuild/protobuf";
import type pg from "pg";
import { RealServerSchema, SiteSchema, VirtualServiceSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createPool, TopologyStore, withTransaction } from "../../services/controlplane/store/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
const meta = (operation: string, reason?: string) => ({ actor: "anonymous", operation, reason });

const NASTY = ["it's", "back\\slash", "'; DROP TABLE sites; --", 'dou"ble', "$1 $2", "ünï €", "E'\\x41'", ""];

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 4);
  store = new TopologyStore(pool);
  await t.pool.query("CREATE TABLE scratch (id serial PRIMARY KEY, a text NOT NULL, tags text[] NOT NULL, n bigint NOT NULL CHECK (n >= 0))");
  await store.sites.create(meta("CreateSite"), "s", create(SiteSchema, {}));
  await store.virtualServices.create(meta("CreateVirtualService"), "s", "web", create(VirtualServiceSchema, { protocol: Protocol.TCP, address: "192.0.2.1", port: 80 }));
});

afterAll(async () => {
  await pool?.end();
  await t?.drop();
});

describe("first statement with BEGIN (parameters as literals)", () => {
  it.each(NASTY)("returns %j exactly and runs inside the transaction", async (s) => {
    const { result } = await withTransaction(store.db, meta("Test"), async (tx) => {
      const r = await tx.query<{ a: string; n: string; arr: string[]; xid: string }>(
        "SELECT $1::text AS a, $2::numeric::text AS n, $3::text[] AS arr, pg_current_xact_id()::text AS xid",
        [s, 12345678901234567890n, [s, null, "x", "NULL"]],
      );
      // A later statement runs in the same transaction (BEGIN came first), whose now() tx.now() holds.
      const later = await tx.query<{ same: boolean }>("SELECT abs(extract(epoch FROM now() - $1::timestamptz)) < 0.001 AND pg_current_xact_id()::text = $2 AS same", [await tx.now(), r.rows[0]!.xid]);
      return { row: r.rows[0]!, same: later.rows[0]!.same };
    });
    expect(result.row.a).toBe(s);
    expect(result.row.n).toBe("12345678901234567890");
    expect(result.row.arr).toEqual([s, null, "x", "NULL"]);
    expect(result.same).toBe(true);
    expect((await t.pool.query("SELECT count(*)::int AS n FROM sites")).rows[0].n).toBe(1);
  });

  it("a failing first statement rolls back and leaves the connection usable", async () => {
    await expect(withTransaction(store.db, meta("Test"), (tx) => tx.query("SELECT 1/$1::int", [0]))).rejects.toThrow(/division by zero/);
    const { result } = await withTransaction(store.db, meta("Test"), async (tx) => (await tx.query<{ x: number }>("SELECT 2 AS x")).rows[0]!.x);
    expect(result).toBe(2);
  });
});

describe("deferred statements ride with COMMIT", () => {
  it("commit with the write, literals exact; a failing one rolls the whole write back", async () => {
    const hooked = new TopologyStore(pool);
    let n = 1;
    hooked.onWrite(async (tx, writes) => {
      tx.defer("INSERT INTO scratch (a, tags, n) VALUES ($1, $2::text[], $3)", [NASTY.join("|"), NASTY, n]);
      tx.defer("INSERT INTO scratch (a, tags, n) VALUES ($1, $2::text[], $3::bigint)", ["rev", [], writes[0]!.revision]);
    });
    const ok = await hooked.sites.create(meta("CreateSite"), "d1", create(SiteSchema, {}));
    const rows = (await t.pool.query<{ a: string; tags: string[]; n: string }>("SELECT a, tags, n::text FROM scratch ORDER BY id")).rows;
    expect(rows).toEqual([
      { a: NASTY.join("|"), tags: NASTY, n: "1" },
      { a: "rev", tags: [], n: ok.revision.toString() },
    ]);
    // The CHECK fails at COMMIT time: nothing of the write may remain.
    n = -1;
    const audits = (await t.pool.query("SELECT count(*)::int AS n FROM audit_log")).rows[0].n;
    await expect(hooked.sites.create(meta("CreateSite"), "d2", create(SiteSchema, {}))).rejects.toThrow(/scratch_n_check/);
    expect((await t.pool.query("SELECT count(*)::int AS n FROM sites WHERE site_id = 'd2'")).rows[0].n).toBe(0);
    expect((await t.pool.query("SELECT count(*)::int AS n FROM audit_log")).rows[0].n).toBe(audits);
    expect((await t.pool.query("SELECT count(*)::int AS n FROM scratch")).rows[0].n).toBe(2);
  });

  it("refuses a statement it cannot write with literals", async () => {
    await expect(withTransaction(store.db, meta("Test"), async (tx) => tx.defer("SELECT $1", [{ a: 1 }]))).rejects.toThrow(/cannot defer/);
  });
});

describe("a connection that dies inside a write", () => {
  it("fails that write, writes nothing and does not take the process down (the dead client's 'error' event is handled)", async () => {
    const hooked = new TopologyStore(pool);
    hooked.onWrite(async (tx) => tx.defer("SELECT pg_terminate_backend(pg_backend_pid())"));
    // The backend dies in the COMMIT round trip, before COMMIT runs; pg then emits 'error' on the
    // checked-out client, which would be an uncaught exception (vitest fails the run on one).
    await expect(hooked.sites.create(meta("CreateSite"), "dies", create(SiteSchema, {}))).rejects.toThrow(/terminat/i);
    await new Promise((r) => setTimeout(r, 50));
    expect((await t.pool.query("SELECT count(*)::int AS n FROM sites WHERE site_id = 'dies'")).rows[0].n).toBe(0);
    // The pool lost that connection and goes on with others.
    expect((await store.sites.create(meta("CreateSite"), "lives", create(SiteSchema, {}))).revision).toBeGreaterThan(0n);
  });
});

describe("pooled clients (createPool)", () => {
  it("a checked-out client whose backend is terminated does not end the process; the pool goes on", async () => {
    const errors: Error[] = [];
    const p = createPool(t.url, 2, (err) => errors.push(err));
    try {
      const c = await p.connect();
      const pid = (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      const ended = new Promise((r) => c.once("end", r));
      // As a Postgres restart would: pg emits 'error' on the checked-out client, which pg-pool does
      // not listen to (only on idle ones) — an uncaught exception without createPool's guard.
      await t.pool.query("SELECT pg_terminate_backend($1)", [pid]);
      await ended;
      await new Promise((r) => setTimeout(r, 20));
      expect(errors.length).toBeGreaterThan(0);
      await expect(c.query("SELECT 1")).rejects.toThrow();
      c.release();
      expect((await p.query<{ x: number }>("SELECT 2 AS x")).rows[0]!.x).toBe(2);
    } finally {
      await p.end();
    }
  });
});

describe("CreateRealServer round trips", () => {
  it("first statement, row + audit, then the shared site lock with COMMIT: 3 queries; the audit row is the response", async () => {
    const counting = new TopologyStore(pool);
    let queries = 0;
    const texts: string[] = [];
    const unpatch: Array<() => void> = [];
    const connect = pool.connect.bind(pool);
    const spy = async () => {
      const c = await connect();
      const q = c.query;
      unpatch.push(() => ((c as { query: unknown }).query = q));
      (c as { query: unknown }).query = (...a: unknown[]) => {
        queries++;
        texts.push(typeof a[0] === "string" ? a[0] : String((a[0] as { text?: string }).text));
        return (q as (...x: unknown[]) => unknown).apply(c, a);
      };
      return c;
    };
    (counting.db as { pool: unknown }).pool = Object.assign(Object.create(pool) as pg.Pool, { connect: spy });
    const w = await counting.realServers.create(meta("CreateRealServer", "why"), "s", "web", "r1", create(RealServerSchema, { address: "198.51.100.1", port: 80, weight: 1, forwardMethod: ForwardMethod.NAT }));
    for (const u of unpatch) u();
    expect(queries).toBe(3);
    // The site lock rides in the COMMIT round trip, before COMMIT (site-lock.ts).
    expect(texts[2]).toMatch(/pg_advisory_xact_lock_shared\(.*\);\s*COMMIT/s);
    const a = await t.pool.query("SELECT revision::text AS revision, operation, reason, before, after FROM audit_log WHERE resource_name = $1", [w.resource.name]);
    expect(a.rows).toEqual([{ revision: w.revision.toString(), operation: "CreateRealServer", reason: "why", before: null, after: toJson(RealServerSchema, w.resource) }]);
    expect((await store.realServers.get("s", "web", "r1")).resource).toEqual(w.resource);
  });
});
