/**
 * PlanChange against the real Postgres over a real gRPC server on port 0: plans per host from the
 * compiled desired state before and after the change (nothing written), warnings, and
 * apply-if-unchanged (stale expected_revision → ABORTED, nothing written; the right one writes
 * through the normal write path and returns its revision), for every write (virtual services, real
 * servers, hosts, firewall marks, sites) and both imports. The race between the apply's revision
 * check and its COMMIT is closed by the per-site lock: interleavings forced with barriers inside
 * the write transactions (after-write hooks), waits observed in pg_locks. Also `lvsfleet plan`.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { OperatorService, PlanAction, type PlanChangeRequestSchema } from "../../gen/lvsfleet/v1/operator_service_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { RealServerSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { AgentReportSchema } from "../../gen/lvsfleet/v1/agent_report_pb.js";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { ingestHealth } from "../../services/controlplane/status/health-store.js";
import { StatusStore } from "../../services/controlplane/status/store.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createClient, type Client } from "../../lib/grpc/client.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { RpcError } from "../../lib/grpc/status.js";
import { runPlan } from "../../cli/plan.js";
import { operatorService } from "../../services/controlplane/api/operator.js";
import { topologyService } from "../../services/controlplane/api/topology-service.js";
import { guardApplies } from "../../services/controlplane/api/plan.js";
import { createPool, TopologyStore, type AfterWriteHook } from "../../services/controlplane/store/index.js";
import { SITE_LOCK_NAMESPACE } from "../../services/controlplane/store/site-lock.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let server: RunningServer;
let ops: Client<typeof OperatorService>;
let topo: Client<typeof TopologyService>;

/**
 * Barriers inside write transactions, keyed by the write's reason: "pre" runs before every other
 * after-write hook (no site lock taken yet); "post" stops the write inside its COMMIT round trip,
 * after the shared site lock (which the store takes there, site-lock.ts) and before COMMIT: the hook
 * defers a wait for an advisory lock (BARRIER_NAMESPACE, key) that the test holds until release().
 * The nth write with that reason stops there until released.
 */
interface Barrier {
  reached: Promise<void>;
  release(): void;
}
/** "barr": the first key of the post barriers' advisory locks (the site lock uses "lvsf"). */
const BARRIER_NAMESPACE = 0x62617272;
let barrierKeys = 0;
const barriers = new Map<string, { nth: number; seen: number; reached: () => void; released: Promise<void>; lockKey: number; held: Promise<unknown> }>();
function barrier(phase: "pre" | "post", reason: string, nth = 1): Barrier {
  let reached!: () => void;
  let release!: () => void;
  const r = new Promise<void>((res) => (reached = res));
  const released = new Promise<void>((res) => (release = res));
  const lockKey = ++barrierKeys;
  let held: Promise<unknown> = Promise.resolve();
  if (phase === "post") {
    // A session lock on a connection of its own, given up on release().
    const holder = t.pool.connect().then(async (c) => {
      await c.query("SELECT pg_advisory_lock($1, $2)", [BARRIER_NAMESPACE, lockKey]);
      return c;
    });
    held = holder;
    void released.then(async () => {
      const c = await holder;
      await c.query("SELECT pg_advisory_unlock($1, $2)", [BARRIER_NAMESPACE, lockKey]);
      c.release();
    });
  }
  barriers.set(`${phase}:${reason}`, { nth, seen: 0, reached, released, lockKey, held });
  return { reached: r, release };
}
function barrierHook(phase: "pre" | "post"): AfterWriteHook {
  return async (tx, writes) => {
    // The nth write with this reason; under group commit one transaction may carry several writes.
    let b: (typeof barriers extends Map<string, infer V> ? V : never) | undefined;
    let key = "";
    for (const record of writes) {
      key = `${phase}:${record.meta.reason ?? ""}`;
      const x = barriers.get(key);
      if (x && ++x.seen === x.nth) {
        b = x;
        break;
      }
    }
    if (!b) return;
    barriers.delete(key);
    if (phase === "pre") {
      b.reached();
      await b.released;
      return;
    }
    await b.held;
    tx.defer("SELECT pg_advisory_xact_lock_shared($1, $2)", [BARRIER_NAMESPACE, b.lockKey]);
    void advisoryWaiter(BARRIER_NAMESPACE, b.lockKey).then(b.reached);
  };
}

/** Resolves once a transaction of this database waits for the advisory lock (key1, key2) (polled). */
async function advisoryWaiter(key1: number, key2: number | string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const r = await t.pool.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid::text::bigint = $1 AND objid::text::bigint = ($2::bigint + 4294967296) % 4294967296 AND objsubid = 2`,
      [key1, String(key2)],
    );
    if (r.rows[0]!.n !== "0") return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`nobody waited for the advisory lock (${key1}, ${key2})`);
}

/** Resolves once a transaction of this database waits for the per-site lock of `site` (polled). */
async function lockWaiter(site: string): Promise<void> {
  const h = await t.pool.query<{ h: string }>("SELECT hashtext($1)::text AS h", [site]);
  await advisoryWaiter(SITE_LOCK_NAMESPACE, h.rows[0]!.h).catch(() => {
    throw new Error(`nobody waited for the site lock of ${site}`);
  });
}

/** Settles `p` into a tagged result without throwing. */
function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
const reason = (r: string) => ({ metadata: { "x-lvsfleet-reason": r } });
const writeMeta = (r: string) => ({ actor: "test", operation: "UpdateRealServer", reason: r });

async function snapshot(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ["virtual_services", "real_servers", "audit_log"]) {
    out[table] = Number((await t.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`)).rows[0]!.n);
  }
  out.revision = Number((await t.pool.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log")).rows[0]!.r);
  return out;
}

async function failure(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  if (!(err instanceof RpcError)) throw err;
  return err;
}

/** A site with Director lb1, real server hosts web1/web2 and a DR service `web` with `servers` real servers (weight 1). */
async function site(id: string, servers = 2): Promise<string> {
  const s = `sites/${id}`;
  await topo.createSite({ siteId: id, site: {} });
  await topo.createHost({ parent: s, hostId: "lb1", host: { roles: [HostRole.DIRECTOR], addresses: ["192.0.2.2"], interfaces: [{ name: "eth0", addresses: ["192.0.2.2/24"] }] } });
  for (const [h, a] of [["web1", "198.51.100.11"], ["web2", "198.51.100.12"]] as const) {
    await topo.createHost({ parent: s, hostId: h, host: { roles: [HostRole.REAL_SERVER], addresses: [a], interfaces: [{ name: "eth0", addresses: [`${a}/24`] }] } });
  }
  await topo.createVirtualService({
    parent: s,
    virtualServiceId: "web",
    virtualService: { protocol: Protocol.TCP, address: "192.0.2.100", port: 80, scheduler: "wlc", directors: [`${s}/hosts/lb1`] },
  });
  for (const [rs, a, h] of ([["rs1", "198.51.100.11", "web1"], ["rs2", "198.51.100.12", "web2"]] as const).slice(0, servers)) {
    await topo.createRealServer({
      parent: `${s}/virtualServices/web`,
      realServerId: rs,
      realServer: { address: a, port: 80, weight: 1, forwardMethod: ForwardMethod.DR, host: `${s}/hosts/${h}` },
    });
  }
  return s;
}

const weightZero = (s: string) => ({
  case: "updateRealServer" as const,
  value: { realServer: { name: `${s}/virtualServices/web/realServers/rs1`, weight: 0 }, updateMask: { paths: ["weight"] } },
});

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 8);
  store = new TopologyStore(pool);
  guardApplies(store);
  // Hook order in every write: pre barrier, plan/apply guard, shared site lock, post barrier.
  store.db.afterWrite.unshift(barrierHook("pre"));
  store.onWrite(barrierHook("post"));
  server = await startGrpcServer({ address: "127.0.0.1:0", services: [bind(TopologyService, topologyService(store)), bind(OperatorService, operatorService(store))] });
  ops = createClient(OperatorService, server.address);
  topo = createClient(TopologyService, server.address);
});

afterAll(async () => {
  ops?.close();
  topo?.close();
  await server?.shutdown(1000);
  await pool?.end();
  await t?.drop();
});

describe("PlanChange", () => {
  it("a weight change plans exactly one destination CHANGE on the Director and writes nothing", async () => {
    const s = await site("p1");
    const before = await snapshot();
    const res = await ops.planChange({ change: weightZero(s) });
    expect(res.hosts.map((h) => h.host)).toEqual(["lb1"]);
    expect(res.hosts[0]!.items.map((i) => ({ kind: i.kind, action: i.action, object: i.object, before: i.before, after: i.after }))).toEqual([
      { kind: "ipvs-destination", action: PlanAction.CHANGE, object: "TCP 192.0.2.100:80 -> 198.51.100.11:80", before: "weight 1", after: "weight 0" },
    ]);
    // No Director reported health in this test: the planner says it cannot tell (never "healthy").
    expect(res.warnings).toEqual([`health of the real servers left in ${s}/virtualServices/web is not known (rs2 health unknown): this may remove the last healthy one`]);
    expect(res.revision).toBeGreaterThan(0n);
    expect(res.appliedRevision).toBe(0n);
    expect(await snapshot()).toEqual(before);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` })).realServer!.weight).toBe(1);
  });

  it("deleting the last real server warns and plans its removal on the Director and its host", async () => {
    const s = await site("p2", 1);
    const res = await ops.planChange({ change: { case: "deleteRealServer", value: { name: `${s}/virtualServices/web/realServers/rs1` } } });
    expect(res.warnings).toContain(`removes the last real server of ${s}/virtualServices/web (no real server with weight > 0 left)`);
    const lb1 = res.hosts.find((h) => h.host === "lb1")!;
    expect(lb1.items).toContainEqual(expect.objectContaining({ kind: "ipvs-destination", action: PlanAction.REMOVE, object: "TCP 192.0.2.100:80 -> 198.51.100.11:80" }));
    expect(res.hosts.find((h) => h.host === "web1")!.items.some((i) => i.kind === "address" && i.action === PlanAction.REMOVE)).toBe(true);
  });

  it("a scheduler change warns that persistence templates are kept", async () => {
    const s = await site("p3");
    const res = await ops.planChange({
      change: { case: "updateVirtualService", value: { virtualService: { name: `${s}/virtualServices/web`, scheduler: "rr" }, updateMask: { paths: ["scheduler"] } } },
    });
    expect(res.hosts.map((h) => h.host)).toEqual(["lb1"]);
    expect(res.hosts[0]!.items).toEqual([expect.objectContaining({ kind: "ipvs-service", action: PlanAction.CHANGE, before: "scheduler wlc", after: "scheduler rr" })]);
    expect(res.warnings).toContain(`changes scheduler of ${s}/virtualServices/web: existing persistence templates are kept`);
  });

  it("creating a service and a real server plans the additions; a site without the change's parent is NOT_FOUND", async () => {
    const s = await site("p7", 0);
    const vsPlan = await ops.planChange({
      change: { case: "createVirtualService", value: { parent: s, virtualServiceId: "api", virtualService: { protocol: Protocol.TCP, address: "192.0.2.101", port: 443, scheduler: "rr", directors: [`${s}/hosts/lb1`] } } },
    });
    const lb1 = vsPlan.hosts.find((h) => h.host === "lb1")!;
    expect(lb1.items).toContainEqual(expect.objectContaining({ kind: "ipvs-service", action: PlanAction.ADD, object: "TCP 192.0.2.101:443" }));
    expect(lb1.items).toContainEqual(expect.objectContaining({ kind: "address", action: PlanAction.ADD, object: "192.0.2.101/32 dev eth0" }));
    const rsPlan = await ops.planChange({
      change: { case: "createRealServer", value: { parent: `${s}/virtualServices/web`, realServerId: "rs9", realServer: { address: "198.51.100.11", port: 80, weight: 2, forwardMethod: ForwardMethod.DR, host: `${s}/hosts/web1` } } },
    });
    expect(rsPlan.hosts.find((h) => h.host === "lb1")!.items).toEqual([
      expect.objectContaining({ kind: "ipvs-destination", action: PlanAction.ADD, object: "TCP 192.0.2.100:80 -> 198.51.100.11:80" }),
    ]);
    expect(rsPlan.hosts.find((h) => h.host === "web1")!.items.some((i) => i.kind === "address" && i.action === PlanAction.ADD && i.object.startsWith("192.0.2.100/32"))).toBe(true);
    expect((await failure(ops.planChange({ change: weightZero("sites/nosuch") }))).code).toBe(5);
    expect((await failure(ops.planChange({}))).code).toBe(3);
  });

  it("an invalid change fails like the write would (validation through the normal handler)", async () => {
    const s = await site("p4");
    const err = await failure(ops.planChange({ change: { case: "updateRealServer", value: { realServer: { name: `${s}/virtualServices/web/realServers/rs1`, weight: 70000 }, updateMask: { paths: ["weight"] } } } }));
    expect(err.code).toBe(3); // INVALID_ARGUMENT
    expect((await failure(ops.planChange({ change: { case: "deleteRealServer", value: { name: `${s}/virtualServices/web/realServers/nope` } } }))).code).toBe(5);
  });

  it("'removes the last healthy real server' from the health the Directors reported; unknown health is said, never taken as healthy", async () => {
    const s = await site("hl");
    const vsName = `${s}/virtualServices/web`;
    const report = (healthy: Record<string, boolean>) =>
      create(AgentReportSchema, {
        site: "hl",
        host: "lb1",
        agentId: "agent-hl",
        time: timestampNow(),
        heartbeatSeconds: 60,
        appliedRevision: 1n << 40n,
        healthReported: true,
        health: Object.entries(healthy).map(([id, ok], i) => ({
          virtualService: vsName,
          realServer: `${vsName}/realServers/${id}`,
          address: `198.51.100.1${i + 1}`,
          port: 80,
          healthy: ok,
          weight: ok ? 1 : 0,
          lastResult: ok ? "connected" : "connect ECONNREFUSED",
        })),
      });
    const status = new StatusStore(t.pool);
    const ingest = async (healthy: Record<string, boolean>) => {
      const r = report(healthy);
      await status.ingest([r]);
      await ingestHealth(t.pool, [r]);
    };

    // No report yet: the health of rs2 (the one left) is unknown, and the plan says so.
    expect((await ops.planChange({ change: weightZero(s) })).warnings).toEqual([
      `health of the real servers left in ${vsName} is not known (rs2 health unknown): this may remove the last healthy one`,
    ]);
    // rs1 healthy, rs2 failing its check: taking rs1 out leaves no healthy real server.
    await ingest({ rs1: true, rs2: false });
    expect((await ops.planChange({ change: weightZero(s) })).warnings).toEqual([`removes the last healthy real server of ${vsName} (left: rs2 unhealthy)`]);
    expect((await ops.planChange({ change: { case: "deleteRealServer", value: { name: `${vsName}/realServers/rs1` } } })).warnings).toEqual([
      `removes the last healthy real server of ${vsName} (left: rs2 unhealthy)`,
    ]);
    // Both healthy: no warning.
    await ingest({ rs1: true, rs2: true });
    expect((await ops.planChange({ change: weightZero(s) })).warnings).toEqual([]);
  });

  it("apply with a stale expected_revision is ABORTED and writes nothing", async () => {
    const s = await site("p5");
    const plan = await ops.planChange({ change: weightZero(s) });
    // The topology moves after the plan.
    await topo.updateRealServer({ realServer: { name: `${s}/virtualServices/web/realServers/rs2`, weight: 2 }, updateMask: { paths: ["weight"] } });
    const before = await snapshot();
    const err = await failure(ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision }));
    expect(err.code).toBe(10); // ABORTED
    expect(await snapshot()).toEqual(before);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` })).realServer!.weight).toBe(1);
    // apply without an expected revision is refused.
    expect((await failure(ops.planChange({ change: weightZero(s), apply: true }))).code).toBe(3);
  });

  it("a write holding its site lock when the apply checks: the apply waits for its COMMIT, then sees it (ABORTED)", async () => {
    const s = await site("p8");
    const plan = await ops.planChange({ change: weightZero(s) });
    // The apply's write stops before its guard (its dry run is the first write with this reason).
    const a = barrier("pre", "apply-p8", 2);
    const apply = settle(ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision }, reason("apply-p8")));
    await a.reached;
    // An ordinary write to the same site, stopped after taking its shared site lock, not committed.
    const w = barrier("post", "write-p8");
    const write = store.realServers.update(writeMeta("write-p8"), "p8", "web", "rs2", create(RealServerSchema, { weight: 2 }), { paths: ["weight"] });
    await w.reached;
    a.release();
    // The apply's guard now waits for the write's lock: without it, it would check (not seeing the
    // uncommitted write) and commit.
    await lockWaiter("p8");
    w.release();
    const written = await write;
    const r = await apply;
    expect(r.ok).toBe(false);
    const err = (r as { error: RpcError }).error;
    expect(err.code).toBe(10); // ABORTED
    expect(err.message).toContain(`moved while applying: planned against revision ${plan.revision}, now at ${written.revision}`);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` })).realServer!.weight).toBe(1);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs2` })).realServer!.weight).toBe(2);
  });

  it("an apply past its check holds the site: a write to it waits for the apply's COMMIT; ordinary writes don't wait for each other", async () => {
    const s = await site("p9");
    const plan = await ops.planChange({ change: weightZero(s) });
    const a = barrier("post", "apply-p9");
    const apply = settle(ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision }, reason("apply-p9")));
    await a.reached;
    const write = settle(store.realServers.update(writeMeta("write-p9"), "p9", "web", "rs2", create(RealServerSchema, { weight: 3 }), { paths: ["weight"] }));
    await lockWaiter("p9");
    a.release();
    const applied = await apply;
    const written = await write;
    if (!applied.ok) throw applied.error;
    if (!written.ok) throw written.error;
    expect(applied.value.appliedRevision).toBeGreaterThan(plan.revision);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` })).realServer!.weight).toBe(0);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs2` })).realServer!.weight).toBe(3);

    // Two ordinary writes to the site both hold its (shared) lock at the same time.
    const b1 = barrier("post", "w1-p9");
    const b2 = barrier("post", "w2-p9");
    const w1 = store.realServers.update(writeMeta("w1-p9"), "p9", "web", "rs1", create(RealServerSchema, { weight: 4 }), { paths: ["weight"] });
    const w2 = store.realServers.update(writeMeta("w2-p9"), "p9", "web", "rs2", create(RealServerSchema, { weight: 5 }), { paths: ["weight"] });
    await Promise.all([b1.reached, b2.reached]);
    b1.release();
    b2.release();
    const [r1, r2] = await Promise.all([w1, w2]);
    expect(r1.revision).not.toBe(r2.revision);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs2` })).realServer!.weight).toBe(5);
  });

  it("two applies planned against the same revision, run at once: exactly one lands, the other is ABORTED (no deadlock)", async () => {
    const s = await site("pa");
    const plan = await ops.planChange({ change: weightZero(s) });
    const other = { case: "updateRealServer" as const, value: { realServer: { name: `${s}/virtualServices/web/realServers/rs2`, weight: 7 }, updateMask: { paths: ["weight"] } } };
    // Hold the first apply after its guard (site lock exclusive) until the second one is waiting for it.
    const a = barrier("post", "apply-pa-1");
    const first = settle(ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision }, reason("apply-pa-1")));
    await a.reached;
    const second = settle(ops.planChange({ change: other, apply: true, expectedRevision: plan.revision }, reason("apply-pa-2")));
    await lockWaiter("pa");
    a.release();
    const [r1, r2] = await Promise.all([first, second]);
    if (!r1.ok) throw r1.error;
    expect(r2.ok).toBe(false);
    expect(((r2 as { error: RpcError }).error).code).toBe(10);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` })).realServer!.weight).toBe(0);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs2` })).realServer!.weight).toBe(1);
  });

  it("apply with the planned revision writes through the normal write path and returns its revision", async () => {
    const s = await site("p6");
    const plan = await ops.planChange({ change: weightZero(s) });
    const res = await ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision });
    expect(res.appliedRevision).toBeGreaterThan(plan.revision);
    expect(res.revision).toBe(plan.revision);
    expect(res.hosts).toEqual(plan.hosts);
    const rs = await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` });
    expect(rs.realServer!.weight).toBe(0);
    expect(rs.revision).toBeGreaterThanOrEqual(res.appliedRevision);
    const audit = await t.pool.query<{ operation: string; revision: string }>("SELECT operation, revision::text FROM audit_log WHERE resource_name = $1 ORDER BY id DESC LIMIT 1", [
      `${s}/virtualServices/web/realServers/rs1`,
    ]);
    expect(audit.rows[0]).toEqual({ operation: "UpdateRealServer", revision: String(res.appliedRevision) });
    // Re-applying the same plan now: the site moved.
    expect((await failure(ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision }))).code).toBe(10);
  });
});

describe("PlanChange for hosts, firewall marks, sites and imports", () => {
  const TABLES = ["sites", "hosts", "firewall_marks", "virtual_services", "real_servers", "audit_log"];
  async function all(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of TABLES) out[table] = Number((await t.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`)).rows[0]!.n);
    return out;
  }
  const items = (res: { hosts: { host: string; items: { kind: string; action: PlanAction; object: string }[] }[] }, host: string) =>
    (res.hosts.find((h) => h.host === host)?.items ?? []).map((i) => `${PlanAction[i.action]} ${i.kind} ${i.object}`);
  /** Plans, checks nothing was written, applies with the plan's revision; returns both. */
  async function planThenApply(change: MessageInitShape<typeof PlanChangeRequestSchema>["change"]) {
    const before = await all();
    const plan = await ops.planChange({ change });
    expect(await all()).toEqual(before);
    const applied = await ops.planChange({ change, apply: true, expectedRevision: plan.revision });
    expect(applied.hosts).toEqual(plan.hosts);
    expect(applied.appliedRevision).toBeGreaterThan(plan.revision);
    return { plan, applied };
  }

  it("host update moving the VIP's interface, host delete refused while in use and planned with force", async () => {
    const s = await site("h1");
    const { plan } = await planThenApply({
      case: "updateHost",
      value: { host: { name: `${s}/hosts/lb1`, interfaces: [{ name: "eth1", addresses: ["192.0.2.2/24"] }] }, updateMask: { paths: ["interfaces"] } },
    });
    expect(items(plan, "lb1")).toEqual(expect.arrayContaining(["REMOVE address 192.0.2.100/32 dev eth0", "ADD address 192.0.2.100/32 dev eth1"]));
    expect((await topo.getHost({ name: `${s}/hosts/lb1` })).host!.interfaces.map((i) => i.name)).toEqual(["eth1"]);

    // Deleting a Director still in use fails as the write would (FAILED_PRECONDITION), nothing written.
    const before = await all();
    expect((await failure(ops.planChange({ change: { case: "deleteHost", value: { name: `${s}/hosts/lb1` } } }))).code).toBe(9);
    // With force: the Director's service and VIP go; the real servers' hosts keep theirs (the service stays, directorless).
    const forced = await ops.planChange({ change: { case: "deleteHost", value: { name: `${s}/hosts/lb1`, force: true } } });
    expect(items(forced, "lb1")).toEqual(expect.arrayContaining(["REMOVE ipvs-service TCP 192.0.2.100:80", "REMOVE address 192.0.2.100/32 dev eth1"]));
    expect(await all()).toEqual(before);
    // A new real-server host: nothing in any kernel until something uses it.
    const { plan: created } = await planThenApply({
      case: "createHost",
      value: { parent: s, hostId: "web3", host: { roles: [HostRole.REAL_SERVER], addresses: ["198.51.100.13"], interfaces: [{ name: "eth0", addresses: ["198.51.100.13/24"] }] } },
    });
    expect(created.hosts.filter((h) => h.host !== "web3")).toEqual([]);
    expect((await topo.getHost({ name: `${s}/hosts/web3` })).host!.addresses).toEqual(["198.51.100.13"]);
  });

  it("firewall mark: a match change plans the nftables rule change; delete refused while used, planned with force", async () => {
    const s = await site("m1", 0);
    await topo.createFirewallMark({ parent: s, firewallMarkId: "web", firewallMark: { mark: 7, matches: [{ destinations: ["192.0.2.120"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }] }] } });
    await topo.createVirtualService({ parent: s, virtualServiceId: "fw", virtualService: { fwmark: 7, scheduler: "rr", directors: [`${s}/hosts/lb1`] } });
    const { plan } = await planThenApply({
      case: "updateFirewallMark",
      value: {
        firewallMark: { name: `${s}/firewallMarks/web`, matches: [{ destinations: ["192.0.2.120"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }] },
        updateMask: { paths: ["matches"] },
      },
    });
    const rule = plan.hosts.find((h) => h.host === "lb1")!.items.find((i) => i.kind === "fwmark-rule")!;
    expect(rule).toEqual(expect.objectContaining({ action: PlanAction.CHANGE, object: "mark 7" }));
    expect(rule.after).toContain("80,443");
    expect(rule.before).not.toContain("443");
    expect((await failure(ops.planChange({ change: { case: "deleteFirewallMark", value: { name: `${s}/firewallMarks/web` } } }))).code).toBe(9);
    const { plan: del } = await planThenApply({ case: "deleteFirewallMark", value: { name: `${s}/firewallMarks/web`, force: true } });
    expect(items(del, "lb1")).toEqual(expect.arrayContaining(["REMOVE ipvs-service FWM 7", "REMOVE fwmark-rule mark 7"]));
    expect(del.warnings).toContain(`removes virtual service ${s}/virtualServices/fw`);
    expect((await failure(topo.getVirtualService({ name: `${s}/virtualServices/fw` }))).code).toBe(5);
    // A new mark nobody uses yet changes no kernel.
    const { plan: created } = await planThenApply({ case: "createFirewallMark", value: { parent: s, firewallMarkId: "ftp", firewallMark: { mark: 8, matches: [{ destinations: ["192.0.2.121"], protocol: Protocol.TCP, ports: [{ start: 21, end: 21 }] }] } } });
    expect(created.hosts).toEqual([]);
  });

  it("site: create plans nothing and creates; delete with children is refused as the write is, with force removes everything", async () => {
    const { plan } = await planThenApply({ case: "createSite", value: { siteId: "s-new", site: {} } });
    expect(plan.hosts).toEqual([]);
    expect((await topo.getSite({ name: "sites/s-new" })).site!.name).toBe("sites/s-new");
    expect((await failure(ops.planChange({ change: { case: "createSite", value: { siteId: "s-new", site: {} } } }))).code).toBe(6); // ALREADY_EXISTS
    expect((await failure(ops.planChange({ change: { case: "createSite", value: { siteId: "Bad Id", site: {} } } }))).code).toBe(3);

    const s = await site("s-del");
    const before = await all();
    const refused = await failure(ops.planChange({ change: { case: "deleteSite", value: { name: s } } }));
    expect(refused.code).toBe(9); // FAILED_PRECONDITION, HAS_CHILDREN
    expect(refused.message).toMatch(/still has 1 virtual service\(s\), 3 host\(s\)/);
    expect(await all()).toEqual(before);
    const { plan: del } = await planThenApply({ case: "deleteSite", value: { name: s, force: true } });
    expect(del.hosts.map((h) => h.host)).toEqual(["lb1", "web1", "web2"]);
    for (const h of del.hosts) expect(h.items.every((i) => i.action === PlanAction.REMOVE)).toBe(true);
    expect(items(del, "lb1")).toContain("REMOVE ipvs-service TCP 192.0.2.100:80");
    expect((await failure(topo.getSite({ name: s }))).code).toBe(5);
  });

  it("site update: new IPVS timeouts plan an ipvs-timeouts change on the Director only", async () => {
    const s = await site("st");
    const { plan } = await planThenApply({ case: "updateSite", value: { site: { name: s, ipvsTimeouts: { tcpSeconds: 900, tcpFinSeconds: 120, udpSeconds: 300 } }, updateMask: { paths: ["ipvs_timeouts"] } } });
    expect(plan.hosts.map((h) => h.host)).toEqual(["lb1"]);
    expect(plan.hosts[0]!.items).toEqual([expect.objectContaining({ kind: "ipvs-timeouts", action: PlanAction.ADD, object: "timeouts", after: "tcp 900, tcpfin 120, udp 300" })]);
    expect((await topo.getSite({ name: s })).site!.ipvsTimeouts?.tcpSeconds).toBe(900);
  });

  it("imports: the plan lists per host what the file would create, names unsupported directives by line, and the apply is the import", async () => {
    const s = await site("i1", 0);
    const text = "-A -t 192.0.2.110:80 -s wrr\n-a -t 192.0.2.110:80 -r 198.51.100.11:80 -g -w 3\n-A -u 192.0.2.110:53 -s rr\n-a -u 192.0.2.110:53 -r 198.51.100.12:53 -m -w 1\n";
    const { plan, applied } = await planThenApply({ case: "importIpvsadm", value: { parent: s, director: "lb1", text, fileName: "lb1.rules", dryRun: true } });
    expect(items(plan, "lb1")).toEqual(
      expect.arrayContaining([
        "ADD ipvs-service TCP 192.0.2.110:80",
        "ADD ipvs-destination TCP 192.0.2.110:80 -> 198.51.100.11:80",
        "ADD ipvs-service UDP 192.0.2.110:53",
        "ADD ipvs-destination UDP 192.0.2.110:53 -> 198.51.100.12:53",
        "ADD address 192.0.2.110/32 dev eth0",
      ]),
    );
    expect(plan.importWarnings).toEqual([]);
    const audit = await t.pool.query<{ operation: string; reason: string }>("SELECT DISTINCT operation, reason FROM audit_log WHERE revision = $1", [applied.appliedRevision.toString()]);
    expect(audit.rows).toEqual([{ operation: "ImportIpvsadm", reason: 'ipvsadm import of "lb1.rules"' }]);
    // The same file again: every service exists → the plan fails like the import would, naming lines.
    const again = await failure(ops.planChange({ change: { case: "importIpvsadm", value: { parent: s, director: "lb1", text, fileName: "lb1.rules" } } }));
    expect(again.code).toBe(3);
    expect(again.message).toContain("line 1");

    const conf = `virtual_server 192.0.2.130 443 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  alpha
  real_server 198.51.100.11 443 {
    weight 2
    notify_up /usr/local/bin/up.sh
    TCP_CHECK {
      connect_timeout 3
    }
  }
}
`;
    const k = await ops.planChange({ change: { case: "importKeepalived", value: { parent: s, director: "lb1", text: conf, fileName: "keepalived.conf" } } });
    expect(items(k, "lb1")).toEqual(expect.arrayContaining(["ADD ipvs-service TCP 192.0.2.130:443", "ADD ipvs-destination TCP 192.0.2.130:443 -> 198.51.100.11:443"]));
    expect(k.importWarnings.map((w) => [w.line, w.directive])).toEqual(expect.arrayContaining([[5, "alpha"], [8, "notify_up"]]));
    // web and the two ipvsadm imports: the keepalived plan wrote nothing.
    expect((await topo.listVirtualServices({ parent: s, pageSize: 100 })).virtualServices).toHaveLength(3);
  });
});

describe("lvsfleet plan", () => {
  const cli = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runPlan(["--addr", server.address, ...argv], {}, { stdout: (x) => void (out += x), stderr: (x) => void (err += x) });
    return { code, out, err };
  };

  it("prints the per-host plan and writes nothing; --apply performs it", async () => {
    await site("c1");
    const before = await snapshot();
    const r = await cli("plan", "rs", "update", "c1/web/rs1", "--weight", "0");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("lb1:\n  ~ ipvs-destination TCP 192.0.2.100:80 -> 198.51.100.11:80  weight 1 → weight 0\n");
    expect(r.out).toMatch(/planned against revision \d+; nothing written/);
    expect(await snapshot()).toEqual(before);

    const a = await cli("plan", "rs", "update", "c1/web/rs1", "--weight", "0", "--apply");
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/applied at revision \d+/);
    expect((await topo.getRealServer({ name: "sites/c1/virtualServices/web/realServers/rs1" })).realServer!.weight).toBe(0);
  });

  it("--apply with a stale --expected-revision fails ABORTED; warnings are printed; not a plan command → undefined", async () => {
    await site("c2", 1);
    const stale = await cli("plan", "rs", "update", "c2/web/rs1", "--weight", "3", "--apply", "--expected-revision", "1");
    expect(stale.code).toBe(1);
    expect(stale.err).toMatch(/ABORTED|moved/);
    expect((await topo.getRealServer({ name: "sites/c2/virtualServices/web/realServers/rs1" })).realServer!.weight).toBe(1);
    const del = await cli("plan", "rs", "delete", "c2/web/rs1");
    expect(del.code).toBe(0);
    expect(del.out).toContain("warning: removes the last real server of sites/c2/virtualServices/web");
    expect(await runPlan(["rs", "list", "c2/web"], {}, { stdout: () => undefined, stderr: () => undefined })).toBeUndefined();
    expect((await cli("plan", "rs", "list", "c2/web")).code).toBe(2);
  });

  it("plans and applies an import, a host delete (refused without --force) and a mark create", async () => {
    await site("c4", 0);
    const dir = mkdtempSync(join(tmpdir(), "lvsfleet-plan-"));
    try {
      const file = join(dir, "lb1.rules");
      writeFileSync(file, "-A -t 192.0.2.140:80 -s rr\n-a -t 192.0.2.140:80 -r 198.51.100.11:80 -g -w 1\n");
      const before = await snapshot();
      const p = await cli("plan", "import", "ipvsadm", "--site", "c4", "--director", "lb1", file);
      expect(p.err).toBe("");
      expect(p.code).toBe(0);
      expect(p.out).toContain("lb1:\n");
      expect(p.out).toContain("+ ipvs-service     TCP 192.0.2.140:80");
      expect(p.out).toMatch(/planned against revision \d+; nothing written/);
      expect(await snapshot()).toEqual(before);
      const a = await cli("plan", "import", "ipvsadm", "--site", "c4", "--director", "lb1", file, "--apply");
      expect(a.code).toBe(0);
      expect(a.out).toMatch(/applied at revision \d+/);
      expect((await topo.listVirtualServices({ parent: "sites/c4", pageSize: 100 })).virtualServices.map((v) => v.address).sort()).toEqual(["192.0.2.100", "192.0.2.140"]);
      expect((await cli("plan", "import", "ipvsadm", "--site", "c4", "--director", "lb1", file, "--dry-run")).code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const refused = await cli("plan", "host", "delete", "c4/lb1");
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/FAILED_PRECONDITION|force/);
    const forced = await cli("plan", "host", "delete", "c4/lb1", "--force");
    expect(forced.code).toBe(0);
    expect(forced.out).toContain("- ipvs-service     TCP 192.0.2.140:80");
    const mark = await cli("plan", "mark", "create", "c4/ftp", "--mark", "9", "--match", "tcp:192.0.2.150:21");
    expect(mark.err).toBe("");
    expect(mark.out).toContain("no kernel changes on any host");
  });

  it("bin/lvsfleet routes plan to the OperatorService (cli/main.ts wiring)", async () => {
    await site("c3");
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["bin/lvsfleet.mjs", "plan", "rs", "update", "c3/web/rs2", "--weight", "5", "--addr", server.address], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    expect(out).toContain("~ ipvs-destination TCP 192.0.2.100:80 -> 198.51.100.12:80  weight 1 → weight 5");
  });
});
