/**
 * OperatorService against the real Postgres, over a real gRPC server on port 0 (errors travel as
 * gRPC status + google.rpc.BadRequest and are decoded by the client): imports create every resource
 * in one transaction with the file named in the audit reason; invalid files, store-level violations
 * and dry runs write nothing; the export of an imported `ipvsadm -S -n` file is that file, byte for byte,
 * and reads one snapshot (writes committing between its reads are wholly out of it).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { ExportIpvsadmRequestSchema, OperatorService } from "../../gen/lvsfleet/v1/operator_service_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createClient, type Client } from "../../lib/grpc/client.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { RpcError } from "../../lib/grpc/status.js";
import { runImportExport } from "../../cli/import-export.js";
import { exportIpvsadm, operatorService } from "../../services/controlplane/api/operator.js";
import { topologyService } from "../../services/controlplane/api/topology-service.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";

const testdata = (f: string) => readFileSync(new URL(`../../services/controlplane/operator/testdata/${f}`, import.meta.url), "utf8");
const SAVE_N = testdata("ipvsadm-1.31-save-n.rules");
const SAVE_NAMES = testdata("ipvsadm-1.31-save.rules");
const KEEPALIVED = testdata("keepalived-full.conf");

let t: TestDatabase;
let pool: pg.Pool;
let server: RunningServer;
let ops: Client<typeof OperatorService>;
let topo: Client<typeof TopologyService>;

const TABLES = ["virtual_services", "virtual_service_directors", "real_servers", "audit_log"];

async function snapshot(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of TABLES) out[table] = Number((await t.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`)).rows[0]!.n);
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

/** A site with a Director lb1 and the firewall marks `marks`. */
async function site(id: string, marks: { mark: number; destination: string }[] = []): Promise<string> {
  await topo.createSite({ siteId: id, site: {} });
  await topo.createHost({ parent: `sites/${id}`, hostId: "lb1", host: { roles: [HostRole.DIRECTOR], addresses: ["192.0.2.2"] } });
  for (const m of marks) {
    await topo.createFirewallMark({
      parent: `sites/${id}`,
      firewallMarkId: `m${m.mark}`,
      firewallMark: { mark: m.mark, matches: [{ destinations: [m.destination], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }] }] },
    });
  }
  return `sites/${id}`;
}

const GOLDEN_MARKS = [
  { mark: 100, destination: "192.0.2.0/24" },
  { mark: 101, destination: "2001:db8::/32" },
];
const SERVICES = SAVE_N.split("\n").filter((l) => l.startsWith("-A")).length;
const SERVERS = SAVE_N.split("\n").filter((l) => l.startsWith("-a")).length;

beforeAll(async () => {
  t = await createTestDatabase();
  pool = createPool(t.url, 8);
  const store = new TopologyStore(pool);
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

describe("ImportIpvsadm", () => {
  it("creates every service and real server in one revision, audited with the file name; the export is the file", async () => {
    const parent = await site("ams1", GOLDEN_MARKS);
    const before = await snapshot();
    const r = await ops.importIpvsadm({ parent, director: "lb1", text: SAVE_N, fileName: "lb1-ipvsadm.rules" }, { metadata: { "x-lvsfleet-reason": "migration CHG-42" } });
    expect(r.dryRun).toBe(false);
    expect(r.virtualServices).toHaveLength(SERVICES);
    expect(r.realServers).toHaveLength(SERVERS);
    expect(r.revision).toBeGreaterThan(BigInt(before.revision));
    expect(new Set([...r.virtualServices, ...r.realServers].map((x) => x.revision))).toEqual(new Set([r.revision]));
    expect(r.virtualServices[0]!.name).toBe(`${parent}/virtualServices/tcp-192-0-2-18-80`);
    expect(r.virtualServices.every((v) => v.directors.join() === `${parent}/hosts/lb1`)).toBe(true);

    const after = await snapshot();
    expect(after.virtual_services - before.virtual_services).toBe(SERVICES);
    expect(after.real_servers - before.real_servers).toBe(SERVERS);
    expect(after.virtual_service_directors - before.virtual_service_directors).toBe(SERVICES);
    expect(after.audit_log - before.audit_log).toBe(SERVICES + SERVERS);

    const audit = await t.pool.query<{ revision: string; operation: string; reason: string }>("SELECT DISTINCT revision::text, operation, reason FROM audit_log WHERE revision = $1", [r.revision.toString()]);
    expect(audit.rows).toEqual([{ revision: r.revision.toString(), operation: "ImportIpvsadm", reason: 'ipvsadm import of "lb1-ipvsadm.rules": migration CHG-42' }]);

    const got = await topo.getVirtualService({ name: `${parent}/virtualServices/udp-192-0-2-60-5060` });
    expect([got.virtualService?.persistenceEngine, got.virtualService?.onePacket, got.virtualService?.persistence?.prefixLength, got.virtualService?.schedulerFlags]).toEqual(["sip", true, 16, ["sh-fallback"]]);

    const e = await ops.exportIpvsadm({ parent, director: `${parent}/hosts/lb1` });
    expect(e.text).toBe(SAVE_N);
    expect([e.virtualServiceCount, e.realServerCount]).toEqual([SERVICES, SERVERS]);
  });

  it("a file saved without -n imports to the same topology: its export is the -n file", async () => {
    const parent = await site("names", GOLDEN_MARKS);
    await ops.importIpvsadm({ parent, director: "lb1", text: SAVE_NAMES, fileName: "names.rules" });
    expect((await ops.exportIpvsadm({ parent, director: "lb1" })).text).toBe(SAVE_N);
  });

  it("an invalid file writes nothing; the error names the line and the token", async () => {
    const parent = await site("bad", GOLDEN_MARKS);
    const lines = SAVE_N.split("\n");
    lines.splice(11, 0, "-a -t 192.0.2.18:80 -r 198.51.100.99:80 -g -w 1 --foo");
    const before = await snapshot();
    const err = await failure(ops.importIpvsadm({ parent, director: "lb1", text: lines.join("\n"), fileName: "bad.rules" }));
    expect(err.codeName).toBe("INVALID_ARGUMENT");
    expect(err.fieldViolations.map((v) => [v.field, v.description])).toEqual([["text", 'line 12: unknown option "--foo"']]);
    expect(await snapshot()).toEqual(before);
  });

  it("violations only the store can see (undefined fwmark, missing Director) fail the whole file, by line", async () => {
    const parent = await site("nomarks"); // no firewall marks: the two fwmark services cannot exist
    const before = await snapshot();
    const err = await failure(ops.importIpvsadm({ parent, director: "lb1", text: SAVE_N, fileName: "x.rules" }));
    expect(err.codeName).toBe("INVALID_ARGUMENT");
    const fw = SAVE_N.split("\n").findIndex((l) => l.startsWith("-A -f 100")) + 1;
    const fw6 = SAVE_N.split("\n").findIndex((l) => l.startsWith("-A -f 101 -6")) + 1;
    expect(err.fieldViolations.map((v) => [v.reason, v.description.replace(/: fwmark.*/, "")])).toEqual([
      ["FWMARK_NOT_DEFINED", `line ${fw}: virtual_service.fwmark`],
      ["FWMARK_NOT_DEFINED", `line ${fw6}: virtual_service.fwmark`],
    ]);
    const noHost = await failure(ops.importIpvsadm({ parent, director: "lb9", text: "-A -t 192.0.2.1:80 -s rr\n", fileName: "x.rules" }));
    expect(noHost.fieldViolations.map((v) => v.description)).toEqual(['line 1: virtual_service.directors[0]: host "sites/nomarks/hosts/lb9" does not exist']);
    expect(await snapshot()).toEqual(before);
  });

  it("importing the same file twice: the second fails naming each existing service, writes nothing", async () => {
    const parent = await site("twice");
    const text = "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -g -w 1\n-A -u 192.0.2.1:53 -s rr\n";
    await ops.importIpvsadm({ parent, director: "lb1", text, fileName: "a" });
    const before = await snapshot();
    const err = await failure(ops.importIpvsadm({ parent, director: "lb1", text, fileName: "a" }));
    expect(err.fieldViolations.map((v) => v.description)).toEqual([
      `line 1: ${parent}/virtualServices/tcp-192-0-2-1-80 already exists`,
      `line 3: ${parent}/virtualServices/udp-192-0-2-1-53 already exists`,
    ]);
    expect(await snapshot()).toEqual(before);
  });

  it("two concurrent imports of one file: one creates everything, the other fails naming the lines", async () => {
    const parent = await site("race", GOLDEN_MARKS);
    const results = await Promise.allSettled([1, 2].map((i) => ops.importIpvsadm({ parent, director: "lb1", text: SAVE_N, fileName: `race-${i}` })));
    const ok = results.filter((r) => r.status === "fulfilled");
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as RpcError);
    expect([ok.length, failed.length]).toEqual([1, 1]);
    expect(failed[0]!.codeName).toBe("INVALID_ARGUMENT");
    // Which services the loser reports depends on when the winner committed during its validation
    // (each statement sees the latest commits); every one it names exists, by line.
    const v = failed[0]!.fieldViolations.map((x) => x.description);
    expect(v.length).toBeGreaterThan(0);
    for (const d of v) expect(d).toMatch(new RegExp(`^line \\d+: ${parent}/virtualServices/[a-z0-9-]+ already exists$`));
    const n = await t.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM virtual_services WHERE site_id = 'race'");
    expect(Number(n.rows[0]!.n)).toBe(SERVICES);
  });

  it("a dry run returns what would be created and writes nothing", async () => {
    const parent = await site("dry", GOLDEN_MARKS);
    const before = await snapshot();
    const r = await ops.importIpvsadm({ parent, director: "lb1", text: SAVE_N, fileName: "dry.rules", dryRun: true });
    expect([r.dryRun, r.revision, r.virtualServices.length, r.realServers.length]).toEqual([true, 0n, SERVICES, SERVERS]);
    expect(r.virtualServices[0]!.name).toBe(`${parent}/virtualServices/tcp-192-0-2-18-80`);
    expect(await snapshot()).toEqual(before);
    expect((await ops.exportIpvsadm({ parent, director: "lb1" })).text).toBe("");
  });

  it("request errors: missing director, director of another site, unknown site, empty file", async () => {
    const parent = await site("req");
    expect((await failure(ops.importIpvsadm({ parent, text: "-A -t 192.0.2.1:80\n" }))).fieldViolations.map((v) => v.field)).toEqual(["director"]);
    expect((await failure(ops.importIpvsadm({ parent, director: "sites/other/hosts/lb1", text: "-A -t 192.0.2.1:80\n" }))).fieldViolations.map((v) => v.reason)).toEqual(["WRONG_SITE"]);
    expect((await failure(ops.importIpvsadm({ parent: "sites/nosuch", director: "lb1", text: "-A -t 192.0.2.1:80\n" }))).fieldViolations.map((v) => v.reason)).toEqual(["PARENT_NOT_FOUND"]);
    expect((await failure(ops.importIpvsadm({ parent, director: "lb1", text: "" }))).fieldViolations.map((v) => [v.field, v.description])).toEqual([["text", "the file is empty"]]);
    expect((await failure(ops.importIpvsadm({ parent, director: "lb1", text: "# only a comment\n" }))).fieldViolations.map((v) => v.reason)).toEqual(["NOTHING_TO_IMPORT"]);
    expect((await failure(ops.exportIpvsadm({ parent, director: "lb7" }))).codeName).toBe("NOT_FOUND");
    const big = await failure(ops.importIpvsadm({ parent, director: "lb1", text: `-A -t 192.0.2.1:80\n${"# padding\n".repeat(350_000)}` }));
    expect([big.codeName, big.fieldViolations.map((v) => v.description)]).toEqual(["INVALID_ARGUMENT", ["the file is larger than 3145728 bytes"]]);
    // Over grpc-js's 4 MiB message limit the transport refuses the call before any handler runs.
    expect((await failure(ops.importIpvsadm({ parent, director: "lb1", text: "#".repeat(5 * 1024 * 1024) }))).codeName).toBe("RESOURCE_EXHAUSTED");
  });
});

describe("hostile files through the API", () => {
  it("mutated files either import whole or fail with INVALID_ARGUMENT on text and write nothing", async () => {
    const parent = await site("hostile", GOLDEN_MARKS);
    const lines = SAVE_N.split("\n");
    const mutation = fc.oneof(
      fc.nat(SAVE_N.length).map((n) => SAVE_N.slice(0, n)),
      fc.tuple(fc.nat(lines.length - 1), fc.constantFrom("--foo", "-p", "-w", "{", "\u0000", "[::1", "-M 255.0.255.0", "-s nosuch", "-r 198.51.100.1:80")).map(([i, tk]) =>
        lines.map((l, j) => (j === i ? `${l} ${tk}` : l)).join("\n"),
      ),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b).toString("latin1")),
    );
    let imported = 0;
    await fc.assert(
      fc.asyncProperty(mutation, async (text) => {
        const before = await snapshot();
        const res = await ops.importIpvsadm({ parent, director: "lb1", text, fileName: "fuzz" }).then(
          (r) => r,
          (e: unknown) => e,
        );
        if (!(res instanceof RpcError)) {
          imported++;
          return;
        }
        expect(res.codeName).toBe("INVALID_ARGUMENT");
        for (const v of res.fieldViolations) expect([v.field, /^(line \d+: |the file |… and)/.test(v.description)]).toEqual(["text", true]);
        expect(await snapshot()).toEqual(before);
      }),
      { numRuns: 30 },
    );
    expect(imported).toBeLessThan(30);
  });
});

describe("ImportKeepalived", () => {
  it("creates services with health checks and real servers, returns the unsupported directives, audits the file", async () => {
    const parent = await site("kad", [
      { mark: 100, destination: "192.0.2.0/24" },
      { mark: 200, destination: "192.0.2.0/24" },
    ]);
    const before = await snapshot();
    const r = await ops.importKeepalived({ parent, director: "lb1", text: KEEPALIVED, fileName: "/etc/keepalived/keepalived.conf" });
    expect(r.virtualServices.map((v) => v.name.split("/").pop())).toEqual([
      "tcp-192-0-2-10-80",
      "tcp-192-0-2-11-443",
      "udp-192-0-2-12-53",
      "udp-192-0-2-13-5060",
      "fwmark-100",
      "tcp-2001-db8--10-80",
      "tcp-192-0-2-20-80",
      "tcp-192-0-2-21-80",
      "tcp-192-0-2-22-80",
      "fwmark-200",
    ]);
    expect(r.warnings.map((w) => `${w.line} ${w.directive}`)).toContain("37 digest");
    const after = await snapshot();
    expect(after.virtual_services - before.virtual_services).toBe(10);
    expect(after.real_servers - before.real_servers).toBe(r.realServers.length);
    const web = await topo.getVirtualService({ name: `${parent}/virtualServices/tcp-192-0-2-10-80` });
    expect(web.virtualService?.healthCheck?.kind.case).toBe("http");
    expect(web.virtualService?.healthCheck?.fall).toBe(4);
    const reasons = await t.pool.query<{ reason: string }>("SELECT DISTINCT reason FROM audit_log WHERE revision = $1", [r.revision.toString()]);
    expect(reasons.rows).toEqual([{ reason: 'keepalived import of "/etc/keepalived/keepalived.conf"' }]);
    // The export shows the same services as ipvsadm rules (keepalived's view of the kernel).
    const e = await ops.exportIpvsadm({ parent, director: "lb1" });
    expect(e.text).toContain("-A -t 192.0.2.10:80 -s wlc -p 50 -M 255.255.255.0\n-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 1\n");
    expect(e.text).toContain("-a -t [2001:db8::10]:80 -r [2001:db8:1::10]:80 -i -w 4 --tun-type gue --tun-port 6080 --tun-csum -x 1000 -y 100\n");
  });

  it("a dry run writes nothing; include is refused and writes nothing", async () => {
    const parent = await site("kad2", [
      { mark: 100, destination: "192.0.2.0/24" },
      { mark: 200, destination: "192.0.2.0/24" },
    ]);
    const before = await snapshot();
    const r = await ops.importKeepalived({ parent, text: KEEPALIVED, dryRun: true });
    expect([r.dryRun, r.revision, r.virtualServices.length]).toEqual([true, 0n, 10]);
    const err = await failure(ops.importKeepalived({ parent, text: `${KEEPALIVED}\ninclude /etc/keepalived/more.conf\n` }));
    expect(err.fieldViolations.map((v) => v.description)).toEqual([
      `line ${KEEPALIVED.split("\n").length + 1}: include "/etc/keepalived/more.conf": includes are not followed — the import reads one text; paste the included file in its place`,
    ]);
    expect(await snapshot()).toEqual(before);
  });
});

describe("ExportIpvsadm reads one snapshot", () => {
  /** The pool, with `after(sql)` awaited after each query (of the pool or of a client it hands out). */
  function interceptedPool(real: pg.Pool, after: (sql: string) => Promise<void>): pg.Pool {
    const wrap = (target: { query: (...a: never[]) => Promise<unknown> }) => async (text: unknown, values?: unknown) => {
      const r = await (target.query as (t: unknown, v?: unknown) => Promise<unknown>)(text, values);
      await after(typeof text === "string" ? text : String((text as { text?: string }).text));
      return r;
    };
    const passthrough = <T extends object>(t: T, k: string | symbol) => {
      const v = Reflect.get(t, k) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    };
    return new Proxy(real, {
      get(t, k) {
        if (k === "query") return wrap(t as never);
        if (k === "connect") {
          return async () => {
            const c = await t.connect();
            return new Proxy(c, { get: (ct, ck) => (ck === "query" ? wrap(ct as never) : passthrough(ct, ck)) });
          };
        }
        return passthrough(t, k);
      },
    });
  }

  it("writes committing between its reads (scheduler change, then a new real server) are wholly out of it", async () => {
    const parent = await site("snap");
    await ops.importIpvsadm({ parent, director: "lb1", text: "-A -t 192.0.2.77:80 -s rr\n-a -t 192.0.2.77:80 -r 198.51.100.7:80 -g -w 1\n", fileName: "snap.rules" });
    const expected = await ops.exportIpvsadm({ parent, director: "lb1" });
    let fired = false;
    const spyStore = new TopologyStore(
      interceptedPool(pool, async (sql) => {
        if (fired || !/FROM virtual_services/.test(sql)) return;
        fired = true;
        // Two writes commit after the export read the services and before it reads the real servers.
        await topo.updateVirtualService({ virtualService: { name: `${parent}/virtualServices/tcp-192-0-2-77-80`, scheduler: "wlc" }, updateMask: { paths: ["scheduler"] } });
        await topo.createRealServer({ parent: `${parent}/virtualServices/tcp-192-0-2-77-80`, realServerId: "late", realServer: { address: "198.51.100.8", port: 80, weight: 1 } });
      }),
    );
    const e = await exportIpvsadm(spyStore, create(ExportIpvsadmRequestSchema, { parent, director: "lb1" }));
    expect(fired).toBe(true);
    expect(e.text).toBe(expected.text);
    expect(e.revision).toBe(expected.revision);
    expect(e.realServerCount).toBe(1);
    // Both writes are in the next export.
    const next = await ops.exportIpvsadm({ parent, director: "lb1" });
    expect(next.text).toBe("-A -t 192.0.2.77:80 -s wlc\n-a -t 192.0.2.77:80 -r 198.51.100.7:80 -g -w 1\n-a -t 192.0.2.77:80 -r 198.51.100.8:80 -g -w 1\n");
  });
});

describe("lvsfleet import / export (CLI)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "lvsfleet-import-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(...argv: string[]): Promise<{ code: number | undefined; out: string; err: string }> {
    let out = "";
    let err = "";
    const code = await runImportExport([...argv, "--addr", server.address], {}, { stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
    return { code, out, err };
  }

  it("import --dry-run, import, export: the file comes back; errors exit 1 with the line, usage errors exit 2", async () => {
    await site("cli", GOLDEN_MARKS);
    const file = join(dir, "lb1.rules");
    writeFileSync(file, SAVE_N);
    const before = await snapshot();
    const dry = await cli("import", "ipvsadm", "--site", "cli", "--director", "lb1", file, "--dry-run");
    expect([dry.code, dry.err]).toEqual([0, ""]);
    expect(dry.out).toContain(`dry run: would create ${SERVICES} virtual services and ${SERVERS} real servers; nothing written`);
    expect(await snapshot()).toEqual(before);
    const imp = await cli("--reason", "CHG-7", "import", "ipvsadm", "--site", "cli", "--director", "lb1", file);
    expect([imp.code, imp.err]).toEqual([0, ""]);
    expect(imp.out.split("\n").slice(0, 2).map((l) => l.split(/\s{2,}/))).toEqual([
      ["VIRTUAL SERVICE", "SERVICE", "SCHEDULER", "REAL SERVERS"],
      ["tcp-192-0-2-18-80", "TCP", "192.0.2.18:80", "ovf", "2"],
    ]);
    expect(imp.out).toMatch(/created \d+ virtual services and \d+ real servers \(revision \d+\)\n$/);
    expect(imp.out).toContain(`created ${SERVICES} virtual services and ${SERVERS} real servers (revision `);
    const reason = await t.pool.query<{ reason: string }>("SELECT DISTINCT reason FROM audit_log WHERE resource_name LIKE 'sites/cli/virtualServices/%'");
    expect(reason.rows).toEqual([{ reason: `ipvsadm import of ${JSON.stringify(file)}: CHG-7` }]);
    const exp = await cli("export", "ipvsadm", "--site", "cli", "--director", "lb1");
    expect([exp.code, exp.out, exp.err]).toEqual([0, SAVE_N, ""]);

    writeFileSync(join(dir, "bad.rules"), "-A -t 192.0.2.77:80 -s rr\n-a -t 192.0.2.77:80 -r 198.51.100.1:80 -q\n");
    const bad = await cli("import", "ipvsadm", "--site", "cli", "--director", "lb1", join(dir, "bad.rules"));
    expect([bad.code, bad.out]).toEqual([1, ""]);
    expect(bad.err).toBe('error: INVALID_ARGUMENT: ipvsadm rules: line 2: unknown option "-q"\n  text: line 2: unknown option "-q"\n');
    expect((await cli("import", "ipvsadm", "--site", "cli", join(dir, "bad.rules"))).code).toBe(2);
    expect((await cli("import", "nginx", "--site", "cli", file)).code).toBe(2);
    expect((await cli("import", "ipvsadm", "--site", "cli", "--director", "lb1", join(dir, "missing.rules"))).code).toBe(1);
    expect(await runImportExport(["vs", "list", "cli"], {}, { stdout: () => undefined, stderr: () => undefined })).toBeUndefined();
  });

  it("bin/lvsfleet routes export to the OperatorService (cli/main.ts wiring)", async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["bin/lvsfleet.mjs", "export", "ipvsadm", "--site", "cli", "--director", "lb1", "--addr", server.address], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    expect(out).toBe(SAVE_N);
  });
});
