/**
 * Group commit of CreateRealServer (store/group-commit.ts, real-servers.ts createGroup) on the real
 * Postgres: concurrent creates share one transaction, yet each behaves as if it ran alone — its own
 * revision, audit row, outbox row and error; a failure belongs to the write that caused it; sites
 * never share a group. The oracle for "as if alone" is the same requests against a store with group
 * commit off (groupCommitMax 1).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, toJson } from "@bufbuild/protobuf";
import type pg from "pg";
import { RealServerSchema, SiteSchema, VirtualServiceSchema, type RealServer } from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError } from "../../services/controlplane/domain/errors.js";
import { outboxHook } from "../../services/controlplane/relay/index.js";
import { createPool, TopologyStore, type HookTx } from "../../services/controlplane/store/index.js";
import { SITE_LOCK_NAMESPACE } from "../../services/controlplane/store/site-lock.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

let t: TestDatabase;
let pool: pg.Pool;
/** Group commit on (the default). */
let grouped: TopologyStore;
/** Group commit off: every create alone, the oracle. */
let alone: TopologyStore;
const meta = (operation: string, reason?: string) => ({ actor: "anonymous", operation, reason });

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 24);
  grouped = new TopologyStore(pool);
  grouped.onWrite(outboxHook);
  alone = new TopologyStore(pool);
  alone.onWrite(outboxHook);
  alone.db.groupCommitMax = 1;
});

afterAll(async () => {
  await pool?.end();
  await t?.drop();
});

async function site(store: TopologyStore, id: string): Promise<void> {
  await store.sites.create(meta("CreateSite"), id, create(SiteSchema, {}));
  await store.virtualServices.create(meta("CreateVirtualService"), id, "web", create(VirtualServiceSchema, { protocol: Protocol.TCP, address: "192.0.2.1", port: 80 }));
  await store.virtualServices.create(meta("CreateVirtualService"), id, "dr", create(VirtualServiceSchema, { protocol: Protocol.TCP, address: "192.0.2.2", port: 443 }));
  await store.realServers.create(meta("CreateRealServer"), id, "web", "taken", rs("198.51.100.200", 80));
}

function rs(address: string, port: number, forwardMethod = ForwardMethod.NAT): RealServer {
  return create(RealServerSchema, { address, port, weight: 1, forwardMethod });
}

/** The mixed batch: valid creates, invalid ones, a missing parent, ids and addresses taken before or inside the batch. */
function requests(): Array<{ vs: string; id: string; rs: RealServer }> {
  const out = Array.from({ length: 20 }, (_, i) => ({ vs: "web", id: `r${i}`, rs: rs(`198.51.100.${i + 1}`, 80) }));
  out.splice(3, 0, { vs: "dr", id: "bad-dr", rs: rs("198.51.100.90", 8443, ForwardMethod.DR) }); // DR may not remap the port
  out.splice(7, 0, { vs: "nope", id: "orphan", rs: rs("198.51.100.91", 80) }); // no such service
  out.splice(9, 0, { vs: "web", id: "taken", rs: rs("198.51.100.92", 80) }); // id exists
  out.splice(11, 0, { vs: "web", id: "dup-addr", rs: rs("198.51.100.200", 80) }); // address:port exists
  out.splice(13, 0, { vs: "web", id: "twice", rs: rs("198.51.100.93", 80) }, { vs: "web", id: "twice", rs: rs("198.51.100.94", 80) });
  out.splice(16, 0, { vs: "web", id: "clash-a", rs: rs("198.51.100.150", 80) }, { vs: "web", id: "clash-b", rs: rs("198.51.100.150", 80) });
  return out;
}

/** Reasons with quotes, backslashes, braces and commas: they travel in the group insert's array literals. */
const reasonOf = (id: string) => `why ${id}: "quoted", back\\slash, it's {braced} NULL`;

type Result = { ok: true; resource: RealServer; revision: bigint } | { ok: false; code: string; fields: string[] };

async function runAll(store: TopologyStore, siteId: string): Promise<Result[]> {
  return Promise.all(
    requests().map((r) =>
      store.realServers.create(meta("CreateRealServer", reasonOf(r.id)), siteId, r.vs, r.id, r.rs).then(
        (w): Result => ({ ok: true, resource: w.resource, revision: w.revision }),
        (e: unknown): Result => {
          if (!(e instanceof LvsfleetError)) throw e;
          return { ok: false, code: e.code, fields: (e.details.fieldViolations ?? []).map((v) => `${v.field}:${v.reason}`) };
        },
      ),
    ),
  );
}

/** Outcome per request, with the two in-batch races (same id twice, same address twice) as sorted pairs. */
function outcomeShape(results: Result[]): string[] {
  const reqs = requests();
  const line = (i: number) => {
    const r = results[i]!;
    return r.ok ? "OK" : `${r.code} ${r.fields.join(",")}`;
  };
  const shape: string[] = [];
  const pairs = new Map<string, string[]>();
  reqs.forEach((q, i) => {
    const pair = q.id === "twice" ? "twice" : q.id.startsWith("clash-") ? "clash" : undefined;
    if (pair) pairs.set(pair, [...(pairs.get(pair) ?? []), line(i)]);
    else shape.push(`${q.id}: ${line(i)}`);
  });
  for (const [k, v] of [...pairs].sort()) shape.push(`${k}: ${v.sort().join(" | ")}`);
  return shape;
}

/**
 * `n` concurrent creates in a new site `siteId` of a store whose extra hook calls `fault` for every
 * transaction carrying the write number `at` (reason `reason`); `shared` counts such transactions
 * that held other writes too.
 */
async function createsWithFault(siteId: string, n: number, at: number, reason: string, fault: (tx: HookTx, shared: boolean) => void) {
  const store = new TopologyStore(pool);
  store.onWrite(outboxHook);
  let shared = 0;
  store.onWrite(async (tx, writes) => {
    if (!writes.some((w) => w.meta.reason === reason)) return;
    if (writes.length > 1) shared++;
    fault(tx, writes.length > 1);
  });
  await site(store, siteId);
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => store.realServers.create(meta("CreateRealServer", i === at ? reason : "fine"), siteId, "web", `r${i}`, rs(`198.51.100.${i + 1}`, 80))),
  );
  return { store, results, shared };
}

describe("group commit of CreateRealServer", () => {
  it("each create of a mixed concurrent batch gets what it would get alone: own revision, audit row, outbox row, error", async () => {
    await site(grouped, "g");
    await site(alone, "a");
    const before = { ...grouped.realServers.group.stats };
    const got = await runAll(grouped, "g");
    const want = await runAll(alone, "a");
    // Grouping really happened (else this test proves nothing about it) and the oracle never grouped.
    expect(grouped.realServers.group.stats.largest).toBeGreaterThan(1);
    expect(grouped.realServers.group.stats.writes - before.writes).toBe(requests().length);
    expect(alone.realServers.group.stats.groups).toBe(0);
    expect(outcomeShape(got)).toEqual(outcomeShape(want));
    expect(got.filter((r) => r.ok)).toHaveLength(22); // r0..r19, one "twice", one "clash-*"

    const created = got.filter((r): r is Extract<Result, { ok: true }> => r.ok);
    // Own revision each, stamped on the resource (etag too).
    expect(new Set(created.map((c) => c.revision)).size).toBe(created.length);
    for (const c of created) {
      expect(c.resource.revision).toBe(c.revision);
      expect(c.resource.etag).toBe(`"${c.revision}"`);
    }
    // Exactly one audit row per created resource, at its revision, with the resource as returned; the
    // batch shared transactions (fewer xids than rows), which is the point.
    const audit = await t.pool.query<{ resource_name: string; revision: string; xid: string; reason: string; after: unknown }>(
      "SELECT resource_name, revision::text AS revision, xid::text AS xid, reason, after FROM audit_log WHERE site_id = 'g' AND operation = 'CreateRealServer' AND resource_name <> 'sites/g/virtualServices/web/realServers/taken' ORDER BY revision",
    );
    expect(audit.rows.map((a) => a.resource_name).sort()).toEqual(created.map((c) => c.resource.name).sort());
    for (const c of created) {
      const a = audit.rows.find((x) => x.resource_name === c.resource.name)!;
      expect(BigInt(a.revision)).toBe(c.revision);
      expect(a.reason).toBe(reasonOf(c.resource.name.split("/").at(-1)!));
      expect(a.after).toEqual(toJson(RealServerSchema, c.resource));
    }
    expect(new Set(audit.rows.map((a) => a.xid)).size).toBeLessThan(audit.rows.length);
    // One outbox row per created resource, with its own revision.
    const outbox = await t.pool.query<{ resource: string; revision: string }>(
      "SELECT resource, revision::text AS revision FROM outbox WHERE site = 'g' AND kind = 'realServer' AND resource <> 'sites/g/virtualServices/web/realServers/taken'",
    );
    expect(new Map(outbox.rows.map((o) => [o.resource, BigInt(o.revision)]))).toEqual(new Map(created.map((c) => [c.resource.name, c.revision])));
    expect(outbox.rows).toHaveLength(created.length);
    // The rows: what was created, as returned; nothing of the failed ones.
    for (const c of created) expect((await grouped.realServers.get("g", "web", c.resource.name.split("/").at(-1)!)).resource).toEqual(c.resource);
    const n = await t.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM real_servers WHERE site_id = 'g'");
    expect(n.rows[0]!.n).toBe(created.length + 1);
  });

  it("a write that fails the shared transaction fails alone; the others of its group commit", async () => {
    const { results, shared: poisonedGroups } = await createsWithFault("p", 12, 5, "poison", () => {
      throw new Error("outbox refused this one");
    });
    expect(poisonedGroups).toBeGreaterThan(0); // the poison did sink a shared transaction first
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 12 }, (_, i) => (i === 5 ? "rejected" : "fulfilled")));
    expect(((results[5] as PromiseRejectedResult).reason as Error).message).toBe("outbox refused this one");
    const rows = await t.pool.query<{ id: string }>("SELECT real_server_id AS id FROM real_servers WHERE site_id = 'p' AND real_server_id <> 'taken' ORDER BY 1");
    expect(rows.rows.map((r) => r.id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`).filter((id) => id !== "r5").sort());
    const audits = await t.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_log WHERE site_id = 'p' AND reason = 'poison'");
    expect(audits.rows[0]!.n).toBe(0);
  });

  it("a deferred statement that fails in the COMMIT round trip fails only its own write (nothing committed: the rest run alone)", async () => {
    const { results, shared: sharedFailures } = await createsWithFault("lp", 8, 2, "late poison", (tx) => tx.defer("SELECT 1 / 0"));
    expect(sharedFailures).toBeGreaterThan(0);
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 8 }, (_, i) => (i === 2 ? "rejected" : "fulfilled")));
    expect(((results[2] as PromiseRejectedResult).reason as Error).message).toMatch(/division by zero/);
    const n = await t.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM real_servers WHERE site_id = 'lp' AND real_server_id <> 'taken'");
    expect(n.rows[0]!.n).toBe(7);
  });

  it("a connection lost in the COMMIT round trip: the outcome is unknown, so every write of the group gets the error and none runs again alone", async () => {
    // Only the shared transaction dies (alone, "cut" would pass): a retry alone would succeed.
    const { store, results } = await createsWithFault("cut", 6, 0, "cut", (tx, shared) => {
      if (shared) tx.defer("SELECT pg_terminate_backend(pg_backend_pid())");
    });
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 6 }, () => "rejected"));
    // It died before COMMIT ran: nothing of the group was written (no half-written state either).
    const n = await t.pool.query<{ n: number }>("SELECT (SELECT count(*) FROM real_servers WHERE site_id = 'cut' AND real_server_id <> 'taken') + (SELECT count(*) FROM audit_log WHERE site_id = 'cut' AND resource_name LIKE '%/realServers/r%')::int AS n");
    expect(Number(n.rows[0]!.n)).toBe(0);
    // The pool replaced the dead connection: the same creates go through now (one at a time: alone).
    for (let i = 0; i < 6; i++) await store.realServers.create(meta("CreateRealServer", "again"), "cut", "web", `r${i}`, rs(`198.51.100.${i + 1}`, 80));
  });

  it("sites never share a group: one whose writes wait on its site lock holds up no other", async () => {
    await site(grouped, "l1");
    await site(grouped, "l2");
    // An operator's apply on l1: its site lock, exclusive (site-lock.ts), held until we let go.
    const holder = await pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [SITE_LOCK_NAMESPACE, "l1"]);
      let l1Done = 0;
      const l1 = Array.from({ length: 6 }, (_, i) => grouped.realServers.create(meta("CreateRealServer"), "l1", "web", `w${i}`, rs(`198.51.100.${i + 1}`, 80)).then(() => l1Done++));
      const l2 = await Promise.all(Array.from({ length: 6 }, (_, i) => grouped.realServers.create(meta("CreateRealServer"), "l2", "web", `w${i}`, rs(`198.51.100.${i + 1}`, 80))));
      expect(l2).toHaveLength(6);
      expect(l1Done).toBe(0);
      await holder.query("COMMIT");
      await Promise.all(l1);
      expect(l1Done).toBe(6);
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      holder.release();
    }
  });

  it("a write whose async context must see its own transaction (Database.isolated) never joins a group", async () => {
    await site(grouped, "iso");
    const groups = grouped.realServers.group.stats.groups;
    grouped.db.isolated.push(() => true);
    try {
      await Promise.all(Array.from({ length: 8 }, (_, i) => grouped.realServers.create(meta("CreateRealServer"), "iso", "web", `w${i}`, rs(`198.51.100.${i + 1}`, 80))));
    } finally {
      grouped.db.isolated.pop();
    }
    expect(grouped.realServers.group.stats.groups).toBe(groups);
    const xids = await t.pool.query<{ n: number }>("SELECT count(DISTINCT xid)::int AS n FROM audit_log WHERE site_id = 'iso' AND resource_name LIKE '%/realServers/w%'");
    expect(xids.rows[0]!.n).toBe(8);
  });
});
