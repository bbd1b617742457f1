/**
 * The TopologyService end to end against the real Postgres: the same scenarios run twice, once
 * calling the handlers in memory and once over a real gRPC server on port 0 with the typed client
 * (so errors travel as gRPC status + google.rpc.BadRequest details and are decoded on the client).
 * Reads go through the read cache, as in the running control plane (its own tests: read-cache.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import type pg from "pg";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createClient, type Client } from "../../lib/grpc/client.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { RpcError } from "../../lib/grpc/status.js";
import { topologyService } from "../../services/controlplane/api/topology-service.js";
import { LvsfleetError, type FieldViolation, type PreconditionViolation } from "../../services/controlplane/domain/errors.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import type { ReadCacheListener } from "../../services/controlplane/store/read-cache.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

type Api = Client<typeof TopologyService>;

let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let server: RunningServer;
let grpcClient: Api;
let readCache: ReadCacheListener;

/** The handlers called directly, shaped like the gRPC client (metadata passed as the call context). */
function memoryApi(desc: DescService, impl: Record<string, (req: unknown, ctx: unknown) => Promise<unknown>>): Api {
  const api: Record<string, unknown> = { close: () => undefined, waitForReady: async () => undefined };
  for (const m of desc.methods) {
    api[m.localName] = async (req: MessageInitShape<typeof m.input>, opts?: { metadata?: Record<string, string> }) =>
      impl[m.localName]!(create(m.input, req), { metadata: opts?.metadata ?? {}, signal: new AbortController().signal, peer: "memory" });
  }
  return api as Api;
}

interface Failure {
  code: string;
  fieldViolations: FieldViolation[];
  preconditionViolations: PreconditionViolation[];
}

/** Awaits a call that must fail; returns the error in one shape for both transports. */
async function failure(p: Promise<unknown>): Promise<Failure> {
  const err = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  if (err instanceof RpcError) {
    return { code: err.codeName, fieldViolations: err.fieldViolations, preconditionViolations: err.preconditionViolations };
  }
  if (err instanceof LvsfleetError) {
    return { code: err.code, fieldViolations: err.details.fieldViolations ?? [], preconditionViolations: err.details.preconditionViolations ?? [] };
  }
  throw err;
}

const TABLES = ["sites", "hosts", "virtual_services", "virtual_service_directors", "real_servers", "firewall_marks", "audit_log"];

/** Row counts of every table: the "database untouched" fingerprint. */
async function snapshot(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of TABLES) {
    const r = await t.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
    out[table] = Number(r.rows[0]!.n);
  }
  const rev = await t.pool.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log");
  out.revision = Number(rev.rows[0]!.r);
  return out;
}

const mark = (value: number) => ({
  mark: value,
  matches: [{ destinations: ["192.0.2.0/24"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }],
});

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 24);
  store = new TopologyStore(pool);
  // As `npm start` runs it: Get/List through the read cache (store/read-cache.ts).
  readCache = store.startReadCache(t.url);
  await readCache.ready;
  server = await startGrpcServer({ address: "127.0.0.1:0", services: [bind(TopologyService, topologyService(store))] });
  grpcClient = createClient(TopologyService, server.address);
});

afterAll(async () => {
  grpcClient?.close();
  await server?.shutdown(1000);
  await readCache?.stop();
  await pool?.end();
  await t?.drop();
});

describe.each([
  ["in memory", () => memoryApi(TopologyService, topologyService(store) as never)],
  ["over gRPC", () => grpcClient],
])("TopologyService %s", (mode, makeApi) => {
  let api: Api;
  // Each transport works in its own sites so the two runs cannot see each other's rows.
  const S = mode === "in memory" ? "mem" : "rpc";
  const site = `sites/${S}`;

  beforeAll(() => {
    api = makeApi();
  });

  it("CRUD for every resource, each write one revision, reads return the revision they saw", async () => {
    const r0 = (await snapshot()).revision;
    const s = await api.createSite({ siteId: S, site: { displayName: "Amsterdam 1", ipvsTimeouts: { tcpSeconds: 900 } } });
    // Above every committed revision. (Not necessarily +1: a write that lost a race for a unique
    // index had already taken its sequence value; sequences never roll back.)
    expect(s.revision).toBeGreaterThan(BigInt(r0));
    expect(s.site?.name).toBe(site);
    expect(s.site?.etag).toBe(`"${s.revision}"`);

    const lb = await api.createHost({ parent: site, hostId: "lb1", host: { roles: [HostRole.DIRECTOR], addresses: ["192.0.2.2"] } });
    expect(lb.revision).toBe(s.revision + 1n);
    const rsHost = await api.createHost({ parent: site, hostId: "web1", host: { roles: [HostRole.REAL_SERVER], addresses: ["198.51.100.11"] } });
    expect(rsHost.revision).toBe(lb.revision + 1n);
    const fm = await api.createFirewallMark({ parent: site, firewallMarkId: "web", firewallMark: mark(100) });
    expect(fm.revision).toBe(rsHost.revision + 1n);
    const vs = await api.createVirtualService({
      parent: site,
      virtualServiceId: "http",
      virtualService: { protocol: Protocol.TCP, address: "192.0.2.10", port: 80, scheduler: "wrr", directors: [`${site}/hosts/lb1`] },
    });
    expect(vs.revision).toBe(fm.revision + 1n);
    expect(vs.virtualService?.name).toBe(`${site}/virtualServices/http`);
    const fwvs = await api.createVirtualService({
      parent: site,
      virtualServiceId: "affinity",
      virtualService: { fwmark: 100, persistence: { timeoutSeconds: 600 }, directors: [`${site}/hosts/lb1`] },
    });
    expect(fwvs.virtualService?.persistence?.prefixLength).toBe(32);
    const rs = await api.createRealServer({
      parent: `${site}/virtualServices/http`,
      realServerId: "web1",
      realServer: { address: "198.51.100.11", port: 80, weight: 5, host: `${site}/hosts/web1` },
    });
    expect(rs.realServer?.forwardMethod).toBe(ForwardMethod.DR);
    expect(rs.revision).toBe(fwvs.revision + 1n);

    // Get: each resource, at the revision of the last write.
    const last = rs.revision;
    expect((await api.getSite({ name: site })).revision).toBe(last);
    expect((await api.getHost({ name: `${site}/hosts/lb1` })).host?.roles).toEqual([HostRole.DIRECTOR]);
    expect((await api.getFirewallMark({ name: `${site}/firewallMarks/web` })).firewallMark?.mark).toBe(100);
    const gotVs = await api.getVirtualService({ name: `${site}/virtualServices/http` });
    expect(gotVs.virtualService?.scheduler).toBe("wrr");
    expect(gotVs.revision).toBe(last);
    const gotRs = await api.getRealServer({ name: `${site}/virtualServices/http/realServers/web1` });
    expect(gotRs.realServer?.weight).toBe(5);
    expect(gotRs.realServer?.revision).toBe(last);

    // List: each collection.
    expect((await api.listHosts({ parent: site })).hosts.map((h) => h.name)).toEqual([`${site}/hosts/lb1`, `${site}/hosts/web1`]);
    expect((await api.listFirewallMarks({ parent: site })).firewallMarks).toHaveLength(1);
    const vss = await api.listVirtualServices({ parent: site });
    expect(vss.virtualServices.map((v) => v.name)).toEqual([`${site}/virtualServices/affinity`, `${site}/virtualServices/http`]);
    expect(vss.revision).toBe(last);
    expect((await api.listRealServers({ parent: `${site}/virtualServices/http` })).realServers).toHaveLength(1);

    // Update with a field mask: only the named field changes.
    const up = await api.updateRealServer({
      realServer: { name: `${site}/virtualServices/http/realServers/web1`, weight: 0, address: "198.51.100.99", etag: gotRs.realServer!.etag },
      updateMask: { paths: ["weight"] },
    });
    expect(up.revision).toBe(last + 1n);
    expect(up.realServer?.weight).toBe(0);
    expect(up.realServer?.address).toBe("198.51.100.11");
    expect(up.realServer?.etag).toBe(`"${up.revision}"`);
    const upSite = await api.updateSite({ site: { name: site, displayName: "AMS1" }, updateMask: { paths: ["display_name"] } });
    expect(upSite.site?.displayName).toBe("AMS1");
    expect(upSite.site?.ipvsTimeouts?.tcpSeconds).toBe(900);
    const upHost = await api.updateHost({ host: { name: `${site}/hosts/lb1`, labels: { rack: "r1" } }, updateMask: { paths: ["labels"] } });
    expect(upHost.host?.labels).toEqual({ rack: "r1" });
    expect(upHost.host?.addresses).toEqual(["192.0.2.2"]);
    const upFm = await api.updateFirewallMark({
      firewallMark: { name: `${site}/firewallMarks/web`, matches: [{ destinations: ["192.0.2.0/24"], protocol: Protocol.TCP, ports: [{ start: 8080, end: 8080 }] }] },
      updateMask: { paths: ["matches"] },
    });
    expect(upFm.firewallMark?.matches[0]?.ports[0]?.start).toBe(8080);
    const upVs = await api.updateVirtualService({ virtualService: { name: `${site}/virtualServices/http`, scheduler: "sh", schedulerFlags: ["sh-port"] }, updateMask: { paths: ["scheduler", "scheduler_flags"] } });
    expect(upVs.virtualService?.scheduler).toBe("sh");
    expect(upVs.virtualService?.address).toBe("192.0.2.10");
    expect(upVs.virtualService?.createTime).toEqual(vs.virtualService?.createTime);

    // Delete each, leaf first.
    const d1 = await api.deleteRealServer({ name: `${site}/virtualServices/http/realServers/web1`, etag: up.realServer!.etag });
    expect(d1.revision).toBe(upVs.revision + 1n);
    expect((await failure(api.getRealServer({ name: `${site}/virtualServices/http/realServers/web1` }))).code).toBe("NOT_FOUND");
    await api.deleteVirtualService({ name: `${site}/virtualServices/http` });
    await api.deleteVirtualService({ name: `${site}/virtualServices/affinity` });
    await api.deleteFirewallMark({ name: `${site}/firewallMarks/web` });
    await api.deleteHost({ name: `${site}/hosts/lb1` });
    const d6 = await api.deleteHost({ name: `${site}/hosts/web1` });
    expect((await api.listHosts({ parent: site })).hosts).toEqual([]);
    const d7 = await api.deleteSite({ name: site });
    expect(d7.revision).toBe(d6.revision + 1n);
    expect((await failure(api.getSite({ name: site }))).code).toBe("NOT_FOUND");
  });

  describe("with a populated site", () => {
    beforeAll(async () => {
      await api.createSite({ siteId: S, site: {} });
      await api.createSite({ siteId: `${S}-b`, site: {} });
      await api.createHost({ parent: site, hostId: "lb1", host: { roles: [HostRole.DIRECTOR] } });
      await api.createFirewallMark({ parent: site, firewallMarkId: "ftp", firewallMark: mark(21) });
      await api.createVirtualService({ parent: site, virtualServiceId: "web", virtualService: { protocol: Protocol.TCP, address: "192.0.2.20", port: 443, directors: [`${site}/hosts/lb1`] } });
      await api.createVirtualService({ parent: site, virtualServiceId: "ftp", virtualService: { fwmark: 21, persistence: { timeoutSeconds: 300 } } });
      for (let i = 0; i < 5; i++) {
        await api.createRealServer({ parent: `${site}/virtualServices/web`, realServerId: `r${i}`, realServer: { address: `198.51.100.${20 + i}`, port: 443 } });
      }
      await api.createVirtualService({ parent: `sites/${S}-b`, virtualServiceId: "web", virtualService: { protocol: Protocol.TCP, address: "192.0.2.20", port: 443 } });
    });

    it("pages through a list with page_size and page_token", async () => {
      const seen: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const p = await api.listRealServers({ parent: `${site}/virtualServices/web`, pageSize: 2, pageToken });
        expect(p.realServers.length).toBeLessThanOrEqual(2);
        seen.push(...p.realServers.map((r) => r.name.split("/").pop()!));
        pageToken = p.nextPageToken;
        pages++;
      } while (pageToken);
      expect(pages).toBe(3);
      expect(seen).toEqual(["r0", "r1", "r2", "r3", "r4"]);
      expect((await failure(api.listRealServers({ parent: `${site}/virtualServices/web`, pageToken: "not a token" }))).code).toBe("INVALID_ARGUMENT");
    });

    it("filters by parent; sites/- lists every site", async () => {
      const one = await api.listVirtualServices({ parent: `sites/${S}-b` });
      expect(one.virtualServices.map((v) => v.name)).toEqual([`sites/${S}-b/virtualServices/web`]);
      const all = await api.listVirtualServices({ parent: "sites/-", pageSize: 1000 });
      const names = all.virtualServices.map((v) => v.name);
      expect(names).toEqual(expect.arrayContaining([`${site}/virtualServices/web`, `${site}/virtualServices/ftp`, `sites/${S}-b/virtualServices/web`]));
      const allRs = await api.listRealServers({ parent: `${site}/virtualServices/-` });
      expect(allRs.realServers).toHaveLength(5);
      const bad = await failure(api.listHosts({ parent: "site/x" }));
      expect(bad.code).toBe("INVALID_ARGUMENT");
      expect(bad.fieldViolations[0]?.field).toBe("parent");
    });

    it("stale etag → ABORTED and nothing written", async () => {
      const vs = (await api.getVirtualService({ name: `${site}/virtualServices/web` })).virtualService!;
      await api.updateVirtualService({ virtualService: { name: vs.name, scheduler: "rr", etag: vs.etag }, updateMask: { paths: ["scheduler"] } });
      const before = await snapshot();
      const stale = await failure(api.updateVirtualService({ virtualService: { name: vs.name, scheduler: "lc", etag: vs.etag }, updateMask: { paths: ["scheduler"] } }));
      expect(stale.code).toBe("ABORTED");
      const staleDelete = await failure(api.deleteVirtualService({ name: vs.name, etag: vs.etag, force: true }));
      expect(staleDelete.code).toBe("ABORTED");
      expect(await snapshot()).toEqual(before);
      expect((await api.getVirtualService({ name: vs.name })).virtualService?.scheduler).toBe("rr");
    });

    it("duplicate VIP, fwmark or real server → INVALID_ARGUMENT naming the field; duplicate id → ALREADY_EXISTS", async () => {
      const before = await snapshot();
      const vip = await failure(api.createVirtualService({ parent: site, virtualServiceId: "web2", virtualService: { protocol: Protocol.TCP, address: "192.0.2.20", port: 443 } }));
      expect(vip.code).toBe("INVALID_ARGUMENT");
      expect(vip.fieldViolations.map((v) => v.field)).toEqual(["virtual_service.address"]);
      const fw = await failure(api.createVirtualService({ parent: site, virtualServiceId: "ftp2", virtualService: { fwmark: 21 } }));
      expect(fw.code).toBe("INVALID_ARGUMENT");
      expect(fw.fieldViolations.map((v) => v.field)).toEqual(["virtual_service.fwmark"]);
      const rs = await failure(api.createRealServer({ parent: `${site}/virtualServices/web`, realServerId: "dup", realServer: { address: "198.51.100.20", port: 443 } }));
      expect(rs.code).toBe("INVALID_ARGUMENT");
      expect(rs.fieldViolations.map((v) => v.field)).toEqual(["real_server.address"]);
      const id = await failure(api.createVirtualService({ parent: site, virtualServiceId: "web", virtualService: { protocol: Protocol.TCP, address: "192.0.2.21", port: 443 } }));
      expect(id.code).toBe("ALREADY_EXISTS");
      expect(await snapshot()).toEqual(before);
    });

    it("invalid input → INVALID_ARGUMENT with every field violation, database untouched", async () => {
      const before = await snapshot();
      const bad = await failure(
        api.createVirtualService(
          { parent: site, virtualServiceId: "bad", virtualService: { protocol: Protocol.TCP, address: "192.0.2.300", port: 70000, scheduler: "fastest" } },
          { metadata: { "x-lvsfleet-reason": "should not be recorded" } },
        ),
      );
      expect(bad.code).toBe("INVALID_ARGUMENT");
      const fields = bad.fieldViolations.map((v) => v.field);
      expect(fields).toEqual(expect.arrayContaining(["virtual_service.address", "virtual_service.port", "virtual_service.scheduler"]));
      expect(bad.fieldViolations.every((v) => v.description.length > 0)).toBe(true);

      // DR may not remap the port (only NAT may).
      const remap = await failure(api.createRealServer({ parent: `${site}/virtualServices/web`, realServerId: "remap", realServer: { address: "198.51.100.60", port: 8443, forwardMethod: ForwardMethod.DR } }));
      expect(remap.fieldViolations.map((v) => v.field)).toContain("real_server.port");
      // Port 0 without persistence.
      const p0 = await failure(api.createVirtualService({ parent: site, virtualServiceId: "all", virtualService: { protocol: Protocol.TCP, address: "192.0.2.30", port: 0 } }));
      expect(p0.fieldViolations.map((v) => v.reason)).toContain("ZERO_PORT_REQUIRES_PERSISTENCE");
      // A fwmark service whose mark is not defined.
      const nomark = await failure(api.createVirtualService({ parent: site, virtualServiceId: "nomark", virtualService: { fwmark: 4242 } }));
      expect(nomark.fieldViolations.map((v) => v.field)).toContain("virtual_service.fwmark");
      // A real server whose virtual service does not exist.
      const orphan = await failure(api.createRealServer({ parent: `${site}/virtualServices/nope`, realServerId: "r", realServer: { address: "198.51.100.61" } }));
      expect(orphan.code).toBe("INVALID_ARGUMENT");
      expect(orphan.fieldViolations.map((v) => v.field)).toEqual(["parent"]);
      // Bad ids, names and masks.
      expect((await failure(api.createSite({ siteId: "Bad_Id", site: {} }))).fieldViolations.map((v) => v.field)).toEqual(["site_id"]);
      expect((await failure(api.getVirtualService({ name: "sites/x/virtualservices/y" }))).fieldViolations.map((v) => v.field)).toEqual(["name"]);
      const mask = await failure(api.updateSite({ site: { name: site }, updateMask: { paths: ["no_such_field"] } }));
      expect(mask.code).toBe("INVALID_ARGUMENT");
      expect(mask.fieldViolations[0]?.field).toMatch(/^update_mask/);
      // validate_only of a valid update answers with the merged result and writes nothing.
      const voUp = await api.updateVirtualService({ virtualService: { name: `${site}/virtualServices/web`, scheduler: "mh" }, updateMask: { paths: ["scheduler"] }, validateOnly: true });
      expect(voUp.virtualService?.scheduler).toBe("mh");
      expect(voUp.virtualService?.address).toBe("192.0.2.20");
      expect((await api.getVirtualService({ name: `${site}/virtualServices/web` })).virtualService?.scheduler).not.toBe("mh");
      // validate_only of a valid request writes nothing either.
      const vo = await api.createVirtualService({ parent: site, virtualServiceId: "vo", virtualService: { protocol: Protocol.UDP, address: "192.0.2.40", port: 53 }, validateOnly: true });
      expect(vo.virtualService?.scheduler).toBe("wlc");
      expect(await snapshot()).toEqual(before);
    });

    it("delete with children → FAILED_PRECONDITION; force cascades in one revision", async () => {
      const before = await snapshot();
      const vsDel = await failure(api.deleteVirtualService({ name: `${site}/virtualServices/web` }));
      expect(vsDel.code).toBe("FAILED_PRECONDITION");
      expect(vsDel.preconditionViolations.map((v) => v.subject)).toContain(`${site}/virtualServices/web/realServers/r0`);
      expect((await failure(api.deleteSite({ name: `sites/${S}-b` }))).code).toBe("FAILED_PRECONDITION");
      expect((await failure(api.deleteHost({ name: `${site}/hosts/lb1` }))).code).toBe("FAILED_PRECONDITION");
      expect((await failure(api.deleteFirewallMark({ name: `${site}/firewallMarks/ftp` }))).code).toBe("FAILED_PRECONDITION");
      expect(await snapshot()).toEqual(before);

      const d = await api.deleteSite({ name: `sites/${S}-b`, force: true }, { metadata: { "x-lvsfleet-reason": "closing b" } });
      // One revision for the whole cascade (above everything committed; a lost unique race or
      // duplicate real server earlier may have used up a sequence value without committing).
      expect(d.revision).toBeGreaterThan(BigInt(before.revision));
      const inD = await t.pool.query<{ name: string }>("SELECT resource_name AS name FROM audit_log WHERE revision = $1 ORDER BY 1", [d.revision.toString()]);
      expect(inD.rows.map((r) => r.name)).toEqual([`sites/${S}-b`, `sites/${S}-b/virtualServices/web`]);
      expect((await api.listVirtualServices({ parent: `sites/${S}-b` })).virtualServices).toEqual([]);
      const entries = await api.listAuditEntries({ resourceName: `sites/${S}-b/` });
      expect(entries.auditEntries[0]).toMatchObject({ revision: d.revision, operation: "DeleteSite", reason: "closing b", actor: "anonymous" });
      const vsForce = await api.deleteVirtualService({ name: `${site}/virtualServices/web`, force: true });
      expect(vsForce.revision).toBe(d.revision + 1n);
      expect((await api.listRealServers({ parent: `${site}/virtualServices/web` })).realServers).toEqual([]);
    });
  });

  it("audit entries record operation, before/after and the reason from metadata", async () => {
    const s = await api.createSite({ siteId: `${S}-audit`, site: { displayName: "one" } }, { metadata: { "x-lvsfleet-reason": "CHG-1" } });
    const u = await api.updateSite({ site: { name: `sites/${S}-audit`, displayName: "two" }, updateMask: { paths: ["display_name"] } }, { metadata: { "x-lvsfleet-reason": "CHG-2" } });
    const d = await api.deleteSite({ name: `sites/${S}-audit` });
    const log = await api.listAuditEntries({ parent: `sites/${S}-audit`, pageSize: 2 });
    expect(log.auditEntries.map((e) => [e.revision, e.operation])).toEqual([
      [d.revision, "DeleteSite"],
      [u.revision, "UpdateSite"],
    ]);
    expect(log.nextPageToken).not.toBe("");
    const rest = await api.listAuditEntries({ parent: `sites/${S}-audit`, pageSize: 2, pageToken: log.nextPageToken });
    expect(rest.auditEntries.map((e) => e.revision)).toEqual([s.revision]);
    expect(rest.nextPageToken).toBe("");
    const [del, upd] = log.auditEntries;
    const [crt] = rest.auditEntries;
    expect(crt!.before).toBeUndefined();
    expect(crt!.after).toMatchObject({ name: `sites/${S}-audit`, displayName: "one" });
    expect(crt!.reason).toBe("CHG-1");
    expect(upd!.before).toMatchObject({ displayName: "one" });
    expect(upd!.after).toMatchObject({ displayName: "two" });
    expect(upd!.reason).toBe("CHG-2");
    expect(del!.after).toBeUndefined();
    expect(del!.before).toMatchObject({ displayName: "two" });
    expect(del!.reason).toBe("");
    expect(del!.actor).toBe("anonymous");
    expect(del!.time).toBeDefined();
  });

  it("concurrent creates of the same VIP: exactly one wins", async () => {
    await api.createSite({ siteId: `${S}-race`, site: {} });
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, (_, i) =>
        api.createVirtualService({ parent: `sites/${S}-race`, virtualServiceId: `v${i}`, virtualService: { protocol: Protocol.TCP, address: "203.0.113.80", port: 80 } }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") {
        const f = await failure(Promise.reject(r.reason));
        expect(f.code).toBe("INVALID_ARGUMENT");
        expect(f.fieldViolations.map((v) => v.field)).toEqual(["virtual_service.address"]);
      }
    }
    expect((await api.listVirtualServices({ parent: `sites/${S}-race` })).virtualServices).toHaveLength(1);
  });
});
