/**
 * `npm start` as a newcomer runs it: no DATABASE_URL, so an embedded Postgres is initialised in a
 * fresh data directory; it must serve gRPC health and the API, and exit 0 on SIGTERM after stopping
 * the embedded Postgres.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import pg from "pg";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { createClient } from "../../lib/grpc/client.js";
import { createTestDatabase } from "../harness/postgres.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

interface LogLine {
  msg?: string;
  level?: number;
  address?: string;
  [k: string]: unknown;
}

let child: ChildProcess | undefined;
let dataDir: string | undefined;

afterAll(async () => {
  // Only if the test failed before a clean exit: kill what we started (its own process group).
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

it("npm start with embedded Postgres serves health and the API, and exits 0 on SIGTERM", async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "lvsfleet-start-"));
  const pgPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LVSFLEET_DATA_DIR: dataDir,
    LVSFLEET_GRPC_ADDR: "127.0.0.1:0",
    LVSFLEET_EMBEDDED_PG_PORT: String(pgPort),
    LVSFLEET_LOG_LEVEL: "info",
    // Nothing listens on the discard port: the API must serve while NATS is unreachable (the relay
    // and status ingest retry in the background), and this test never touches the shared NATS.
    NATS_URL: "nats://127.0.0.1:9",
  };
  delete env.DATABASE_URL;
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];

  // detached: its own process group, so cleanup can reach tsx and node if npm is gone.
  const proc = spawn("npm", ["start"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  child = proc;
  const lines: LogLine[] = [];
  let stderr = "";
  let buf = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const serving = new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.startsWith("{")) continue;
        let parsed: LogLine;
        try {
          parsed = JSON.parse(line) as LogLine;
        } catch {
          continue;
        }
        lines.push(parsed);
        if (parsed.msg === "serving" && parsed.address) resolve(parsed.address);
      }
    });
    proc.once("exit", (code) => reject(new Error(`npm start exited early (${code}): ${stderr}\n${JSON.stringify(lines)}`)));
  });
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));

  const address = await serving;
  const health = createClient(Health, address);
  const topo = createClient(TopologyService, address);
  try {
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: "lvsfleet.v1.TopologyService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const created = await topo.createSite({ siteId: "smoke", site: { displayName: "smoke test" } });
    expect(created.revision).toBeGreaterThan(0n);
    const got = await topo.getSite({ name: "sites/smoke" });
    expect(got.site?.displayName).toBe("smoke test");
    expect(got.revision).toBe(created.revision);
    // The embedded Postgres is really there, on 127.0.0.1 at the configured port.
    const probe = new pg.Client({ connectionString: `postgres://postgres:lvsfleet@127.0.0.1:${pgPort}/lvsfleet` });
    await probe.connect();
    expect((await probe.query("SELECT count(*)::int AS n FROM sites")).rows[0].n).toBe(1);

    // Drain: hold the site's row lock so an UpdateSite is in flight when SIGTERM arrives; it must
    // still complete once the lock is released, and only then may the process exit.
    await probe.query("BEGIN");
    await probe.query("SELECT 1 FROM sites WHERE site_id = 'smoke' FOR UPDATE");
    const inflight = topo.updateSite({ site: { name: "sites/smoke", displayName: "drained" }, updateMask: { paths: ["display_name"] } });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(proc.pid!, "SIGTERM");
    await new Promise((r) => setTimeout(r, 700));
    expect(proc.exitCode).toBe(null);
    await probe.query("COMMIT");
    await probe.end();
    const drained = await inflight;
    expect(drained.site?.displayName).toBe("drained");
    expect(drained.revision).toBe(created.revision + 1n);
  } finally {
    health.close();
    topo.close();
  }

  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 30_000))]);
  expect(code, stderr).toBe(0);
  const msgs = lines.map((l) => l.msg);
  expect(msgs).toEqual(expect.arrayContaining(["shutting down: draining in-flight calls", "grpc server stopped", "embedded postgres stopped", "bye"]));
  expect(lines.every((l) => typeof l.level === "number")).toBe(true);
  // And it is gone: nothing listens on the embedded port any more.
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(pgPort, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
  expect(refused).toBe(true);
}, 180_000);

it("with OTEL_TRACES_EXPORTER set, npm start traces gRPC calls and pg queries (ESM loader hook in the start script)", async () => {
  const db = await createTestDatabase();
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: db.url, LVSFLEET_GRPC_ADDR: "127.0.0.1:0", LVSFLEET_LOG_LEVEL: "info", NATS_URL: "nats://127.0.0.1:9" };
  for (const k of Object.keys(env)) if (k.startsWith("OTEL_")) delete env[k];
  Object.assign(env, { OTEL_TRACES_EXPORTER: "console", OTEL_METRICS_EXPORTER: "none", OTEL_LOGS_EXPORTER: "none", OTEL_BSP_SCHEDULE_DELAY: "100" });
  const proc = spawn("npm", ["start"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  try {
    const address = await new Promise<string>((resolve, reject) => {
      proc.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"address":"(127\.0\.0\.1:\d+)".*"msg":"serving"/.exec(out);
        if (m) resolve(m[1]!);
      });
      proc.once("exit", (code) => reject(new Error(`npm start exited early (${code}): ${stderr}`)));
    });
    const topo = createClient(TopologyService, address);
    try {
      await topo.createSite({ siteId: "traced", site: {} });
      await topo.getSite({ name: "sites/traced" });
    } finally {
      topo.close();
    }
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    process.kill(proc.pid!, "SIGTERM");
    expect(await exited, stderr).toBe(0);
    // The console exporter prints each finished span; shutdown flushes the rest.
    expect(out).toContain("grpc.lvsfleet.v1.TopologyService/CreateSite");
    expect(out).toContain("grpc.lvsfleet.v1.TopologyService/GetSite");
    expect(out).toMatch(/name: 'pg\.query:(INSERT|SELECT)/);
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(-proc.pid!, "SIGKILL");
      } catch {
        // gone
      }
    }
    await db.drop();
  }
}, 120_000);
