/**
 * PlanChange against the real Postgres over a real gRPC server on port 0: plans per host from the
 * compiled desired state before and after the change (nothing written), warnings, and
 * apply-if-unchanged (stale expected_revision → ABORTED, nothing written; the right one writes
 * through the normal write path and returns its revision). Also `lvsfleet plan` (cli/plan.ts).
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { OperatorService, PlanAction } from "../../gen/lvsfleet/v1/operator_service_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createClient, type Client } from "../../lib/grpc/client.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { RpcError } from "../../lib/grpc/status.js";
import { runPlan } from "../../cli/plan.js";
import { operatorService } from "../../services/controlplane/api/operator.js";
import { topologyService } from "../../services/controlplane/api/topology-service.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

let t: TestDatabase;
let pool: pg.Pool;
let server: RunningServer;
let ops: Client<typeof OperatorService>;
let topo: Client<typeof TopologyService>;
/** Set by a test: commits a concurrent write (a raw audit row) to this site from inside the next write transaction. */
let interleave: string | undefined;

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
  const store = new TopologyStore(pool);
  // Registered before the plan's apply guard, so it runs first: another connection commits a write
  // to the site while the apply's write transaction is open.
  store.onWrite(async () => {
    const site = interleave;
    if (!site) return;
    interleave = undefined;
    await t.pool.query("INSERT INTO audit_log (revision, actor, operation, resource_name, site_id) VALUES (nextval('revision_seq'), 'test', 'Concurrent', $1, $2)", [`sites/${site}`, site]);
  });
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
    expect(res.warnings).toEqual([]);
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

  it("a write to the site committing while the apply's transaction is open aborts the apply (checked before COMMIT)", async () => {
    const s = await site("p8");
    const plan = await ops.planChange({ change: weightZero(s) });
    interleave = "p8";
    const err = await failure(ops.planChange({ change: weightZero(s), apply: true, expectedRevision: plan.revision }));
    expect(interleave).toBeUndefined();
    expect(err.code).toBe(10); // ABORTED
    expect(err.message).toMatch(/moved while applying/);
    expect((await topo.getRealServer({ name: `${s}/virtualServices/web/realServers/rs1` })).realServer!.weight).toBe(1);
    const ops8 = await t.pool.query<{ operation: string }>("SELECT operation FROM audit_log WHERE site_id = 'p8' AND operation IN ('UpdateRealServer', 'Concurrent')");
    expect(ops8.rows.map((r) => r.operation)).toEqual(["Concurrent"]);
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
