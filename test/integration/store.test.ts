/**
 * The Postgres store against the real Postgres on 127.0.0.1:5432, in a database of its own.
 * Covers what the database guarantees (constraints, revisions, snapshots, locks) underneath the API.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import type pg from "pg";
import {
  FirewallMarkSchema,
  HostSchema,
  RealServerSchema,
  SiteSchema,
  VirtualServiceSchema,
} from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError } from "../../services/controlplane/domain/errors.js";
import { createPool, TopologyStore, type WriteRecord } from "../../services/controlplane/store/index.js";
import { migrate } from "../../services/controlplane/store/migrate.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

const meta = (operation: string, reason?: string) => ({ actor: "anonymous", operation, reason });

let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;

async function count(table: string): Promise<number> {
  const r = await t.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
  return Number(r.rows[0]!.n);
}

async function expectError(p: Promise<unknown>, code: string): Promise<LvsfleetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(LvsfleetError);
  expect((err as LvsfleetError).code).toBe(code);
  return err as LvsfleetError;
}

function mark(value: number) {
  return create(FirewallMarkSchema, {
    mark: value,
    matches: [{ destinations: ["192.0.2.0/24"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] }],
  });
}

function vip(address: string, port: number, extra: Record<string, unknown> = {}) {
  return create(VirtualServiceSchema, { protocol: Protocol.TCP, address, port, ...extra });
}

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 24);
  store = new TopologyStore(pool);
});

afterAll(async () => {
  await pool?.end();
  await t?.drop();
});

describe("migrations", () => {
  it("are idempotent: a second run applies nothing", async () => {
    expect(await migrate(t.url)).toEqual([]);
  });

  it("keep the audit log append-only", async () => {
    await store.sites.create(meta("CreateSite"), "audit-only", create(SiteSchema, {}));
    await expect(t.pool.query("UPDATE audit_log SET actor = 'mallory'")).rejects.toThrow(/append-only/);
    await expect(t.pool.query("DELETE FROM audit_log")).rejects.toThrow(/append-only/);
  });
});

describe("revisions", () => {
  it("every write takes the next revision; reads return the revision they saw", async () => {
    const before = await store.currentRevision();
    const a = await store.sites.create(meta("CreateSite"), "rev-a", create(SiteSchema, { displayName: "A" }));
    expect(a.revision).toBe(before + 1n);
    expect(a.resource.revision).toBe(a.revision);
    expect(a.resource.etag).toBe(`"${a.revision}"`);
    const h = await store.hosts.create(meta("CreateHost"), "rev-a", "lb1", create(HostSchema, { roles: [HostRole.DIRECTOR] }));
    expect(h.revision).toBe(a.revision + 1n);
    const got = await store.sites.get("rev-a");
    expect(got.revision).toBe(h.revision);
    expect(got.resource.revision).toBe(a.revision);
    const listed = await store.hosts.list("rev-a", {});
    expect(listed.revision).toBe(h.revision);
    // An empty list still says which revision it read.
    const empty = await store.hosts.list("no-such-site", {});
    expect(empty.items).toEqual([]);
    expect(empty.revision).toBe(h.revision);
  });

  it("records the writing transaction's xid8 with each audit row (for snapshot-based tailing)", async () => {
    const w = await store.sites.create(meta("CreateSite"), "rev-xid", create(SiteSchema, {}));
    const r = await t.pool.query<{ xid: string; visible: boolean }>(
      "SELECT xid::text AS xid, pg_visible_in_snapshot(xid, pg_current_snapshot()) AS visible FROM audit_log WHERE revision = $1",
      [w.revision.toString()],
    );
    expect(r.rows).toHaveLength(1);
    expect(BigInt(r.rows[0]!.xid)).toBeGreaterThan(0n);
    expect(r.rows[0]!.visible).toBe(true);
  });

  it("concurrent writes get distinct revisions, one per transaction, without gaps when all succeed", async () => {
    await store.sites.create(meta("CreateSite"), "rev-c", create(SiteSchema, {}));
    const start = await store.currentRevision();
    const writes = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        store.hosts.create(meta("CreateHost"), "rev-c", `h${i}`, create(HostSchema, { roles: [HostRole.REAL_SERVER] })),
      ),
    );
    const revs = writes.map((w) => w.revision).sort((a, b) => (a < b ? -1 : 1));
    expect(revs).toEqual(Array.from({ length: 32 }, (_, i) => start + BigInt(i) + 1n));
  });
});

describe("etag and validate_only", () => {
  it("a stale etag is ABORTED and writes nothing", async () => {
    const s = await store.sites.create(meta("CreateSite"), "etag-a", create(SiteSchema, { displayName: "one" }));
    const u = await store.sites.update(meta("UpdateSite"), "etag-a", create(SiteSchema, { displayName: "two", etag: s.resource.etag }), {
      paths: ["display_name"],
    });
    expect(u.resource.displayName).toBe("two");
    const audits = await count("audit_log");
    const rev = await store.currentRevision();
    await expectError(
      store.sites.update(meta("UpdateSite"), "etag-a", create(SiteSchema, { displayName: "three", etag: s.resource.etag }), { paths: ["display_name"] }),
      "ABORTED",
    );
    await expectError(store.sites.delete(meta("DeleteSite"), "etag-a", { etag: s.resource.etag }), "ABORTED");
    expect((await store.sites.get("etag-a")).resource.displayName).toBe("two");
    expect(await count("audit_log")).toBe(audits);
    expect(await store.currentRevision()).toBe(rev);
  });

  it("validate_only validates (including duplicates) and writes nothing", async () => {
    await store.sites.create(meta("CreateSite"), "vo", create(SiteSchema, {}));
    await store.virtualServices.create(meta("CreateVirtualService"), "vo", "web", vip("192.0.2.80", 80));
    const audits = await count("audit_log");
    const ok = await store.virtualServices.create(meta("CreateVirtualService"), "vo", "web2", vip("192.0.2.81", 80), { validateOnly: true });
    expect(ok.revision).toBe(0n);
    expect(ok.resource.scheduler).toBe("wlc");
    const dup = await expectError(
      store.virtualServices.create(meta("CreateVirtualService"), "vo", "web3", vip("192.0.2.80", 80), { validateOnly: true }),
      "INVALID_ARGUMENT",
    );
    expect(dup.details.fieldViolations?.map((v) => v.field)).toEqual(["virtual_service.address"]);
    expect(await count("audit_log")).toBe(audits);
    await expectError(store.virtualServices.get("vo", "web2"), "NOT_FOUND");
  });
});

describe("constraints", () => {
  beforeAll(async () => {
    await store.sites.create(meta("CreateSite"), "con", create(SiteSchema, {}));
    await store.firewallMarks.create(meta("CreateFirewallMark"), "con", "web", mark(10));
  });

  it("duplicate VIP+protocol+port in a site → INVALID_ARGUMENT virtual_service.address; other protocol or site is fine", async () => {
    await store.virtualServices.create(meta("C"), "con", "a", vip("192.0.2.1", 443));
    const e = await expectError(store.virtualServices.create(meta("C"), "con", "b", vip("192.0.2.1", 443)), "INVALID_ARGUMENT");
    expect(e.details.fieldViolations?.[0]?.field).toBe("virtual_service.address");
    await store.virtualServices.create(meta("C"), "con", "c", vip("192.0.2.1", 443, { protocol: Protocol.UDP }));
    await store.sites.create(meta("C"), "con2", create(SiteSchema, {}));
    await store.virtualServices.create(meta("C"), "con2", "a", vip("192.0.2.1", 443));
  });

  it("duplicate fwmark service → INVALID_ARGUMENT virtual_service.fwmark; undefined mark → INVALID_ARGUMENT", async () => {
    await store.virtualServices.create(meta("C"), "con", "fw1", create(VirtualServiceSchema, { fwmark: 10, persistence: { timeoutSeconds: 300 } }));
    const e = await expectError(store.virtualServices.create(meta("C"), "con", "fw2", create(VirtualServiceSchema, { fwmark: 10 })), "INVALID_ARGUMENT");
    expect(e.details.fieldViolations?.[0]?.field).toBe("virtual_service.fwmark");
    const u = await expectError(store.virtualServices.create(meta("C"), "con", "fw3", create(VirtualServiceSchema, { fwmark: 99 })), "INVALID_ARGUMENT");
    expect(u.details.fieldViolations?.[0]?.field).toBe("virtual_service.fwmark");
  });

  it("duplicate real server address+port in a service → INVALID_ARGUMENT real_server.address", async () => {
    await store.realServers.create(meta("C"), "con", "a", "r1", create(RealServerSchema, { address: "198.51.100.1", port: 443 }));
    const e = await expectError(
      store.realServers.create(meta("C"), "con", "a", "r2", create(RealServerSchema, { address: "198.51.100.1", port: 443 })),
      "INVALID_ARGUMENT",
    );
    expect(e.details.fieldViolations?.[0]?.field).toBe("real_server.address");
  });

  it("duplicate id → ALREADY_EXISTS; missing parent → INVALID_ARGUMENT parent", async () => {
    await expectError(store.virtualServices.create(meta("C"), "con", "a", vip("192.0.2.2", 443)), "ALREADY_EXISTS");
    await expectError(store.sites.create(meta("C"), "con", create(SiteSchema, {})), "ALREADY_EXISTS");
    const p = await expectError(
      store.realServers.create(meta("C"), "con", "nope", "r1", create(RealServerSchema, { address: "198.51.100.1" })),
      "INVALID_ARGUMENT",
    );
    expect(p.details.fieldViolations?.[0]?.field).toBe("parent");
    await expectError(store.hosts.create(meta("C"), "no-site", "h", create(HostSchema, {})), "INVALID_ARGUMENT");
  });

  it("the unique indexes hold even when validation is bypassed", async () => {
    await expect(
      t.pool.query(
        `INSERT INTO virtual_services (site_id, virtual_service_id, protocol, address, port, fwmark, address_family, resource, revision, create_time, update_time)
         VALUES ('con', 'sneaky', 1, '192.0.2.1', 443, NULL, 1, '{}', 1, now(), now())`,
      ),
    ).rejects.toMatchObject({ code: "23505", constraint: "virtual_services_vip_key" });
    await expect(
      t.pool.query(
        `INSERT INTO virtual_services (site_id, virtual_service_id, protocol, address, port, fwmark, address_family, resource, revision, create_time, update_time)
         VALUES ('con', 'sneaky', 0, NULL, 0, 77, 1, '{}', 1, now(), now())`,
      ),
    ).rejects.toMatchObject({ code: "23503", constraint: "virtual_services_fwmark_fkey" });
  });

  it("concurrent creates of the same VIP: exactly one wins, the rest are INVALID_ARGUMENT", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => store.virtualServices.create(meta("C"), "con", `race${i}`, vip("203.0.113.7", 80))),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(11);
    for (const l of lost) {
      expect(l.reason).toBeInstanceOf(LvsfleetError);
      expect((l.reason as LvsfleetError).code).toBe("INVALID_ARGUMENT");
      expect((l.reason as LvsfleetError).details.fieldViolations?.[0]?.field).toBe("virtual_service.address");
    }
    const r = await t.pool.query("SELECT 1 FROM virtual_services WHERE site_id = 'con' AND address = '203.0.113.7'");
    expect(r.rowCount).toBe(1);
  });

  it("concurrent creates of one real server address: one wins, the rest name real_server.address; a taken id is ALREADY_EXISTS", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        store.realServers.create(meta("C"), "con", "a", `rrace${i}`, create(RealServerSchema, { address: "198.51.100.200", port: 443 })),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect((r.reason as LvsfleetError).details.fieldViolations?.[0]?.field).toBe("real_server.address");
    }
    const winner = results.findIndex((r) => r.status === "fulfilled");
    await expectError(
      store.realServers.create(meta("C"), "con", "a", `rrace${winner}`, create(RealServerSchema, { address: "198.51.100.201", port: 443 })),
      "ALREADY_EXISTS",
    );
  });

  it("port 0 means the service port: 0 and the explicit port are the same destination, also after a port change", async () => {
    await store.virtualServices.create(meta("C"), "con", "p0", vip("203.0.113.30", 80));
    await store.realServers.create(meta("C"), "con", "p0", "implicit", create(RealServerSchema, { address: "198.51.100.30", port: 0 }));
    const dup = await expectError(
      store.realServers.create(meta("C"), "con", "p0", "explicit", create(RealServerSchema, { address: "198.51.100.30", port: 80 })),
      "INVALID_ARGUMENT",
    );
    expect(dup.details.fieldViolations?.[0]?.field).toBe("real_server.address");
    // A NAT real server on 8080 is another destination; moving the service to 8080 would merge them.
    await store.realServers.create(meta("C"), "con", "p0", "nat", create(RealServerSchema, { address: "198.51.100.30", port: 8080, forwardMethod: ForwardMethod.NAT }));
    const clash = await expectError(
      store.virtualServices.update(meta("U"), "con", "p0", create(VirtualServiceSchema, { port: 8080 }), { paths: ["port"] }),
      "INVALID_ARGUMENT",
    );
    expect(clash.details.fieldViolations?.[0]).toMatchObject({ field: "virtual_service.port", reason: "DUPLICATE_REAL_SERVER" });
    // Another port is fine, and the port-0 real server's destination follows it.
    await store.virtualServices.update(meta("U"), "con", "p0", create(VirtualServiceSchema, { port: 81 }), { paths: ["port"] });
    const r = await t.pool.query<{ port: number }>("SELECT port FROM real_servers WHERE site_id = 'con' AND virtual_service_id = 'p0' AND real_server_id = 'implicit'");
    expect(r.rows[0]!.port).toBe(81);
    await store.realServers.create(meta("C"), "con", "p0", "explicit80", create(RealServerSchema, { address: "198.51.100.30", port: 80, forwardMethod: ForwardMethod.NAT }));
  });

  it("a real server create racing its service's port change never leaves a DR port mismatch", async () => {
    await store.virtualServices.create(meta("C"), "con", "race-port", vip("203.0.113.9", 80));
    const ops = await Promise.allSettled([
      store.realServers.create(meta("C"), "con", "race-port", "r1", create(RealServerSchema, { address: "198.51.100.9", port: 80, forwardMethod: ForwardMethod.DR })),
      store.virtualServices.update(meta("U"), "con", "race-port", create(VirtualServiceSchema, { port: 81 }), { paths: ["port"] }),
    ]);
    const vs = (await store.virtualServices.get("con", "race-port")).resource;
    const rss = (await store.realServers.list("con", "race-port", {})).items;
    // Whichever committed first, the other saw it: never a DR real server on another port.
    for (const rs of rss) expect(rs.port === 0 || rs.port === vs.port).toBe(true);
    expect(ops.some((o) => o.status === "fulfilled")).toBe(true);
  });
});

describe("pagination and parents", () => {
  beforeAll(async () => {
    for (const s of ["pg-a", "pg-b"]) {
      await store.sites.create(meta("C"), s, create(SiteSchema, {}));
      for (let i = 0; i < 7; i++) {
        await store.hosts.create(meta("C"), s, `h${String(i).padStart(2, "0")}`, create(HostSchema, { roles: [HostRole.DIRECTOR] }));
      }
    }
  });

  it("keyset pages cover every row once, in name order", async () => {
    const names: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const p = await store.hosts.list("pg-a", { pageSize: 3, pageToken: token });
      names.push(...p.items.map((h) => h.name));
      token = p.nextPageToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(names).toEqual(Array.from({ length: 7 }, (_, i) => `sites/pg-a/hosts/h${String(i).padStart(2, "0")}`));
  });

  it("sites/- lists across sites; a site filter lists only its own", async () => {
    const all = await store.hosts.list("-", { pageSize: 1000 });
    const sites = new Set(all.items.map((h) => h.name.split("/")[1]));
    expect(sites.has("pg-a") && sites.has("pg-b")).toBe(true);
    const b = await store.hosts.list("pg-b", {});
    expect(b.items).toHaveLength(7);
    expect(b.items.every((h) => h.name.startsWith("sites/pg-b/"))).toBe(true);
  });

  it("rejects garbage page tokens and negative page sizes", async () => {
    await expectError(store.hosts.list("pg-a", { pageToken: "%%%" }), "INVALID_ARGUMENT");
    await expectError(store.hosts.list("pg-a", { pageToken: Buffer.from("only-one-part").toString("base64url") }), "INVALID_ARGUMENT");
    await expectError(store.hosts.list("pg-a", { pageSize: -1 }), "INVALID_ARGUMENT");
  });
});

describe("deletes", () => {
  it("site with children: FAILED_PRECONDITION, then force deletes everything in one revision with audit rows", async () => {
    await store.sites.create(meta("C"), "del", create(SiteSchema, {}));
    await store.hosts.create(meta("C"), "del", "lb1", create(HostSchema, { roles: [HostRole.DIRECTOR] }));
    await store.firewallMarks.create(meta("C"), "del", "m", mark(5));
    await store.virtualServices.create(meta("C"), "del", "web", vip("192.0.2.50", 80, { directors: ["sites/del/hosts/lb1"] }));
    await store.realServers.create(meta("C"), "del", "web", "r1", create(RealServerSchema, { address: "198.51.100.50" }));
    const e = await expectError(store.sites.delete(meta("DeleteSite"), "del"), "FAILED_PRECONDITION");
    expect(e.details.preconditionViolations?.length).toBeGreaterThan(0);
    expect((await store.sites.get("del")).resource.name).toBe("sites/del");

    const d = await store.sites.delete(meta("DeleteSite", "decommission"), "del", { force: true });
    const rows = await t.pool.query<{ resource_name: string; reason: string; after: unknown }>(
      "SELECT resource_name, reason, after FROM audit_log WHERE revision = $1 ORDER BY resource_name",
      [d.revision.toString()],
    );
    expect(rows.rows.map((r) => r.resource_name)).toEqual([
      "sites/del",
      "sites/del/firewallMarks/m",
      "sites/del/hosts/lb1",
      "sites/del/virtualServices/web",
      "sites/del/virtualServices/web/realServers/r1",
    ]);
    expect(rows.rows.every((r) => r.reason === "decommission" && r.after === null)).toBe(true);
    for (const table of ["hosts", "virtual_services", "real_servers", "firewall_marks", "virtual_service_directors"]) {
      const r = await t.pool.query(`SELECT 1 FROM ${table} WHERE site_id = 'del'`);
      expect(r.rowCount, table).toBe(0);
    }
  });

  it("a Director host in use: FAILED_PRECONDITION, force removes it from the service and deletes its real servers", async () => {
    await store.sites.create(meta("C"), "delh", create(SiteSchema, {}));
    await store.hosts.create(meta("C"), "delh", "lb1", create(HostSchema, { roles: [HostRole.DIRECTOR, HostRole.REAL_SERVER], addresses: ["198.51.100.60"] }));
    await store.hosts.create(meta("C"), "delh", "lb2", create(HostSchema, { roles: [HostRole.DIRECTOR] }));
    await store.virtualServices.create(meta("C"), "delh", "web", vip("192.0.2.60", 80, { directors: ["sites/delh/hosts/lb1", "sites/delh/hosts/lb2"] }));
    await store.realServers.create(meta("C"), "delh", "web", "self", create(RealServerSchema, { address: "198.51.100.60", host: "sites/delh/hosts/lb1" }));
    // Taking the DIRECTOR role away while it directs a service is a validation error.
    const roles = await expectError(
      store.hosts.update(meta("U"), "delh", "lb2", create(HostSchema, { roles: [HostRole.REAL_SERVER] }), { paths: ["roles"] }),
      "INVALID_ARGUMENT",
    );
    expect(roles.details.fieldViolations?.[0]?.field).toBe("host.roles");
    await expectError(store.hosts.delete(meta("D"), "delh", "lb1"), "FAILED_PRECONDITION");
    await store.hosts.delete(meta("D"), "delh", "lb1", { force: true });
    const vs = (await store.virtualServices.get("delh", "web")).resource;
    expect(vs.directors).toEqual(["sites/delh/hosts/lb2"]);
    expect((await store.realServers.list("delh", "web", {})).items).toEqual([]);
  });

  it("a firewall mark in use: FAILED_PRECONDITION, force deletes its fwmark services", async () => {
    await store.sites.create(meta("C"), "delm", create(SiteSchema, {}));
    await store.firewallMarks.create(meta("C"), "delm", "web", mark(80));
    await store.virtualServices.create(meta("C"), "delm", "fw", create(VirtualServiceSchema, { fwmark: 80 }));
    await store.realServers.create(meta("C"), "delm", "fw", "r1", create(RealServerSchema, { address: "198.51.100.70" }));
    await expectError(store.firewallMarks.delete(meta("D"), "delm", "web"), "FAILED_PRECONDITION");
    // Renumbering a mark in use would orphan the service.
    await expectError(store.firewallMarks.update(meta("U"), "delm", "web", mark(81), { paths: ["mark"] }), "FAILED_PRECONDITION");
    await store.firewallMarks.delete(meta("D"), "delm", "web", { force: true });
    await expectError(store.virtualServices.get("delm", "fw"), "NOT_FOUND");
    await expectError(store.realServers.get("delm", "fw", "r1"), "NOT_FOUND");
  });
});

describe("after-write hooks (where the outbox plugs in)", () => {
  it("run inside the transaction with the revision and changes; a failing hook rolls the write back", async () => {
    const seen: WriteRecord[] = [];
    const hooked = new TopologyStore(pool);
    let fail = false;
    hooked.onWrite(async (tx, writes) => {
      // A single write's transaction carries one record (group commit is for concurrent creates).
      expect(writes).toHaveLength(1);
      const record = writes[0]!;
      // Same transaction: the row just written is visible here, and the xid is this transaction's.
      const r = await tx.query<{ n: string }>("SELECT count(*)::text AS n FROM audit_log WHERE revision = $1 AND xid = pg_current_xact_id()", [
        record.revision.toString(),
      ]);
      expect(Number(r.rows[0]!.n)).toBe(record.changes.length);
      seen.push(record);
      if (fail) throw new Error("outbox down");
    });
    const ok = await hooked.sites.create(meta("CreateSite", "hook"), "hook-a", create(SiteSchema, {}));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.revision).toBe(ok.revision);
    expect(seen[0]!.changes.map((c) => [c.kind, c.resourceName])).toEqual([["site", "sites/hook-a"]]);
    expect(seen[0]!.meta.reason).toBe("hook");
    fail = true;
    const audits = await count("audit_log");
    await expect(hooked.sites.create(meta("CreateSite"), "hook-b", create(SiteSchema, {}))).rejects.toThrow("outbox down");
    await expectError(store.sites.get("hook-b"), "NOT_FOUND");
    expect(await count("audit_log")).toBe(audits);
  });
});

describe("audit log order", () => {
  it("lists newest first by numeric revision across pages (revisions past 9 and 99)", async () => {
    for (let i = 0; i < 25; i++) await store.sites.create(meta("CreateSite"), `audit-order-${i}`, create(SiteSchema, {}));
    // The whole log (other tests in this file wrote to it too), paged 7 at a time.
    const seen: bigint[] = [];
    let token = "";
    do {
      const page = await store.audit.list({}, { pageSize: 7, pageToken: token });
      seen.push(...page.items.map((e) => e.revision));
      token = page.nextPageToken;
    } while (token);
    expect(seen.length).toBe(await count("audit_log"));
    expect(seen.length).toBeGreaterThan(25);
    // Non-increasing (one write may audit several resources under one revision), numerically.
    expect(seen).toEqual([...seen].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
  });
});
