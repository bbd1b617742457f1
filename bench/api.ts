/**
 * bench:api — durable API writes and reads against the real control plane, side by side with pgbench
 * on the same Postgres in the same run.
 *
 *   npm run bench:api [-- --seconds 10 --clients 16 --reals 10000]
 *
 * 1. A fresh database on the shared Postgres (127.0.0.1:5432) and the control plane as a child process
 *    (`tsx services/controlplane/main.ts`, as `npm start` runs it, relay included, publishing to a KV
 *    bucket of the run's own on NATS_URL, deleted at the end) on a free port.
 * 2. Writes: `--clients` concurrent gRPC clients call CreateRealServer (each one transaction, fsync'd
 *    commit, audit row, revision) for `--seconds`; writes/s and p50/p99 latency.
 * 3. Reference: pgbench with the same client count for the same time, a single-row UPDATE script on a
 *    pgbench-initialised table in another fresh database of the same Postgres.
 * 4. Reads: a virtual service holding `--reals` real servers; GetVirtualService and ListRealServers
 *    (page_size 100, a random page via its token) from the same clients; reads/s.
 * Last line: api_writes_per_s=… pgbench_tps=… ratio=… reads_per_s=… (plus the latencies).
 */
import { spawn, execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { ForwardMethod, Protocol } from "../gen/lvsfleet/v1/types_pb.js";
import { TopologyService } from "../gen/lvsfleet/v1/topology_service_pb.js";
import { createClient, type Client } from "../lib/grpc/client.js";
import { createTestDatabase } from "../test/harness/postgres.js";

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    clients: { type: "string", default: "16" },
    reals: { type: "string", default: "10000" },
  },
});
const seconds = Number(args.seconds);
const clients = Number(args.clients);
const reals = Number(args.reals);
const root = join(import.meta.dirname, "..");

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

/** Runs `fn` on `n` workers until the deadline; returns per-call latencies (ms). */
async function load(n: number, ms: number, fn: (worker: number, i: number) => Promise<unknown>): Promise<{ lat: number[]; elapsedMs: number }> {
  const lat: number[] = [];
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        await fn(w, i);
        lat.push(performance.now() - t0);
      }
    }),
  );
  return { lat: lat.sort((a, b) => a - b), elapsedMs: performance.now() - start };
}

async function pgbench(adminUrl: string): Promise<number> {
  const db = await createTestDatabase();
  const dir = await mkdtemp(join(tmpdir(), "lvsfleet-pgbench-"));
  try {
    const script = join(dir, "update.sql");
    // The simplest durable write: one single-row UPDATE per transaction.
    await writeFile(script, "\\set aid random(1, 100000)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n");
    await run("pgbench", ["-i", "-q", "-s", "1", db.url]);
    const { stdout } = await run("pgbench", ["-n", "-c", String(clients), "-j", "2", "-T", String(seconds), "-f", script, db.url], { maxBuffer: 1 << 20 });
    const m = /tps = ([\d.]+)/.exec(stdout);
    if (!m) throw new Error(`no tps in pgbench output:\n${stdout}`);
    void adminUrl;
    return Number(m[1]);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await db.drop();
  }
}

async function main(): Promise<void> {
  const db = await createTestDatabase();
  const port = await freePort();
  // The relay runs as in production, publishing to a bucket of this run's own (deleted at the end).
  const bucket = `bench-api-${process.pid}`;
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "services/controlplane/main.ts")], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, LVSFLEET_DESIRED_BUCKET: bucket, LVSFLEET_GRPC_ADDR: `127.0.0.1:${port}`, LVSFLEET_LOG_LEVEL: "warn", LVSFLEET_DB_POOL_SIZE: String(clients + 4) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const stopServer = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  };
  try {
    const pool: Client<typeof TopologyService>[] = Array.from({ length: clients }, () => createClient(TopologyService, `127.0.0.1:${port}`));
    await pool[0]!.waitForReady(60_000);
    const c = pool[0]!;
    await c.createSite({ siteId: "bench", site: {} });
    const mkVs = async (id: string, port: number) =>
      c.createVirtualService({
        parent: "sites/bench",
        virtualServiceId: id,
        virtualService: { protocol: Protocol.TCP, address: "192.0.2.10", port, scheduler: "wlc" },
      });
    await mkVs("writes", 80);
    await mkVs("reads", 443);

    // --- writes -------------------------------------------------------------------------------------
    // Real server addresses walk 198.18.0.0/15 (131,072 addresses): unique per (worker, i).
    const addr = (n: number) => `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
    let seq = 0;
    const writes = await load(clients, seconds * 1000, async () => {
      const n = seq++;
      await pool[n % clients]!.createRealServer({
        parent: "sites/bench/virtualServices/writes",
        realServerId: `rs${n}`,
        realServer: { address: addr(n), forwardMethod: ForwardMethod.NAT, port: 8080, weight: 1 },
      });
    });
    const writesPerS = (writes.lat.length / writes.elapsedMs) * 1000;

    // --- pgbench reference (server idle meanwhile) ---------------------------------------------------
    const tps = await pgbench(db.url);

    // --- reads: a service with `reals` real servers ---------------------------------------------------
    let made = 0;
    await Promise.all(
      pool.map(async (cl) => {
        for (let n = made++; n < reals; n = made++) {
          await cl.createRealServer({
            parent: "sites/bench/virtualServices/reads",
            realServerId: `rs${n}`,
            realServer: { address: addr(n), forwardMethod: ForwardMethod.NAT, port: 8443, weight: 1 },
          });
        }
      }),
    );
    // Page tokens of the list, so readers hit random pages, not just the first.
    const tokens = [""];
    for (let tok = ""; ; ) {
      const page = await c.listRealServers({ parent: "sites/bench/virtualServices/reads", pageSize: 100, pageToken: tok });
      if (!page.nextPageToken) break;
      tokens.push((tok = page.nextPageToken));
    }
    let listed = 0;
    const reads = await load(clients, seconds * 1000, async (w, i) => {
      const cl = pool[w]!;
      if (i % 2 === 0) {
        await cl.getVirtualService({ name: "sites/bench/virtualServices/reads" });
      } else {
        const page = await cl.listRealServers({ parent: "sites/bench/virtualServices/reads", pageSize: 100, pageToken: tokens[(w * 7919 + i) % tokens.length]! });
        listed += page.realServers.length;
      }
    });
    const readsPerS = (reads.lat.length / reads.elapsedMs) * 1000;
    if (listed === 0) throw new Error("ListRealServers returned nothing");
    for (const cl of pool) cl.close();

    console.log(`writes: ${writes.lat.length} CreateRealServer in ${(writes.elapsedMs / 1000).toFixed(1)} s with ${clients} clients`);
    console.log(`reads: ${reads.lat.length} Get/List over ${tokens.length} pages of ${reals} real servers`);
    console.log(
      `api_writes_per_s=${writesPerS.toFixed(0)} pgbench_tps=${tps.toFixed(0)} ratio=${(writesPerS / tps).toFixed(2)} reads_per_s=${readsPerS.toFixed(0)} ` +
        `write_p50_ms=${percentile(writes.lat, 50).toFixed(2)} write_p99_ms=${percentile(writes.lat, 99).toFixed(2)} ` +
        `read_p50_ms=${percentile(reads.lat, 50).toFixed(2)} read_p99_ms=${percentile(reads.lat, 99).toFixed(2)} clients=${clients} reals=${reals}`,
    );
  } finally {
    await stopServer();
    await db.drop();
    const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" }).catch(() => undefined);
    if (nc) {
      await new Kvm(nc).open(bucket).then((kv) => kv.destroy()).catch(() => undefined);
      await nc.close();
    }
  }
}

await main();
