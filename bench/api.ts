/**
 * bench:api — durable API writes and reads against the real control plane, side by side with pgbench
 * on the same Postgres in the same run.
 *
 *   npm run bench:api [-- --seconds 10 --clients 16 --reals 10000 --client-procs 2 --client http2 --streams 1]
 *
 * 1. A fresh database on the shared Postgres (127.0.0.1:5432) and the control plane as a child process
 *    (`node --import tsx services/controlplane/main.ts`, as `npm start` runs it, relay included,
 *    publishing to a KV bucket of the run's own on NATS_URL, deleted at the end) on a free port.
 * 2. Writes: `--clients` concurrent gRPC clients call CreateRealServer (each its own revision, audit
 *    row, outbox row; concurrent ones share a transaction and its fsync'd commit — group commit,
 *    store/group-commit.ts) for `--seconds`; writes/s, p50/p99 latency, and writes_per_commit (audit
 *    rows per transaction id, read back from the database).
 * 3. Reference: pgbench with the same client count for the same time, a single-row UPDATE script on a
 *    pgbench-initialised table in another fresh database of the same Postgres.
 * 4. Reads: a virtual service holding `--reals` real servers (created by one keepalived.conf import,
 *    OperatorService.ImportKeepalived, one transaction; no Director carries it); GetVirtualService and ListRealServers (page_size 100, a
 *    random page via its token) from the same clients; reads/s.
 * 3b. The floor: the same clients call GetVirtualService of the writes' service for `--seconds` — a
 *    read-cache hit, no Postgres: the cheapest call the API serves, so the most calls/s any write
 *    could reach here (floor_calls_per_s, and floor_ratio against pgbench).
 * CPU per operation (server process and its main thread, client processes, the database's Postgres
 * backends) is read from /proc around each phase: unlike rates, it hardly depends on the machine's load.
 *
 * The load generator (`--client`): `http2` (default) is lean — raw `node:http2` sessions sending
 * requests encoded before the timed window (bench/api-h2.ts; every call checked for :status 200 and
 * grpc-status 0, list items counted from the response bytes), the role ghz/h2load play elsewhere.
 * `--streams N` lets N of a process's clients share one HTTP/2 connection (h2load's -m; default 1).
 * `grpc-js` is the project's own client (lib/grpc/client.ts), which costs several times the server's
 * CPU per call: on two cores it, not the server, was the limit. The server does the same work either way.
 * With `--client grpc-js`, `--decode full` (its default) decodes every response into protobuf-es
 * messages (100 RealServers per List page); `--decode count` takes the response bytes and walks only
 * their top level (count the items, read the revision), as `http2` always does.
 * The load comes from `--client-procs` processes (this script forked, `--clients` split among them,
 * one gRPC channel per client) so that one client event loop is not what saturates: the figure is the
 * server's. `--server-args="--cpu-prof --cpu-prof-dir=/tmp/prof"` passes node flags to the control
 * plane (profiling): one profile for the main thread and one for tsx's loader thread; the relay worker
 * thread is started with `execArgv: []` (relay-worker.ts) and so is not profiled. "server" CPU is the
 * whole process: main thread, relay worker, V8's GC helper threads.
 * Last line: api_writes_per_s=… pgbench_tps=… ratio=… reads_per_s=… (plus the latencies, CPU ms per op
 * and client=http2|grpc-js).
 */
import { spawn, execFile, fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { ForwardMethod, Protocol } from "../gen/lvsfleet/v1/types_pb.js";
import { OperatorService } from "../gen/lvsfleet/v1/operator_service_pb.js";
import {
  CreateRealServerRequestSchema,
  GetVirtualServiceRequestSchema,
  ListRealServersRequestSchema,
  TopologyService,
} from "../gen/lvsfleet/v1/topology_service_pb.js";
import { createClient, type Client } from "../lib/grpc/client.js";
import { createTestDatabase } from "../test/harness/postgres.js";
import { grpcFrame, H2GrpcSession } from "./api-h2.js";

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    clients: { type: "string", default: "16" },
    reals: { type: "string", default: "10000" },
    "client-procs": { type: "string", default: "2" },
    "server-args": { type: "string", default: "" },
    client: { type: "string", default: "http2" },
    streams: { type: "string", default: "1" },
    decode: { type: "string" },
    only: { type: "string" },
    role: { type: "string", default: "main" },
  },
});
const seconds = Number(args.seconds);
const clients = Number(args.clients);
const reals = Number(args.reals);
const clientKind = args.client === "grpc-js" ? "grpc-js" : "http2";
if (args.client !== clientKind) throw new Error(`--client ${args.client}: http2 or grpc-js`);
// http2: concurrent calls per connection (h2load's -m); the `--clients` calls in flight share
// ceil(clients / streams) connections per process. 1 = one connection per client, as with grpc-js.
const streams = Math.max(1, Number(args.streams));
if (!Number.isInteger(streams) || (streams > 1 && clientKind !== "http2")) throw new Error(`--streams ${args.streams}: a positive integer, only with --client http2`);
const decode = (args.decode ?? (clientKind === "http2" ? "count" : "full")) as "full" | "count";
if (decode !== "full" && decode !== "count") throw new Error(`--decode ${args.decode}: full or count`);
if (clientKind === "http2" && decode !== "count") throw new Error("--client http2 only counts items (--decode count); --decode full needs --client grpc-js");
// `--only writes|reads`: one phase (writes includes pgbench), for profiling; the other's figures print NaN.
const only = args.only;
if (only !== undefined && only !== "writes" && only !== "reads") throw new Error(`--only ${only}: writes or reads`);
const noResult: JobResult = { lat: [], elapsedMs: NaN, listed: 0 };
const clientProcs = Math.max(1, Math.min(clients, Number(args["client-procs"])));
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

/** The service the reads phase reads: the import's id for TCP 192.0.2.10:443 (operator/common.ts). */
const READS_VS = "sites/bench/virtualServices/tcp-192-0-2-10-443";

// Real server addresses walk 198.18.0.0/15 (131,072 addresses).
const addr = (n: number) => `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;

/**
 * CPU time (user + system, ms) from /proc: of a process (all threads), of one thread, and of the
 * Postgres backends serving database `db` (their process title names it). Clock ticks are 10 ms
 * (CLK_TCK 100). A backend that exits inside a phase takes its CPU with it (the pools keep theirs).
 */
function statCpuMs(path: string): number {
  try {
    const s = readFileSync(path, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}
function backendsCpuMs(db: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmd.startsWith("postgres: ") && cmd.includes(` ${db} `)) out.set(Number(d), statCpuMs(`/proc/${d}/stat`));
  }
  return out;
}
interface CpuSnapshot {
  server: number;
  serverMain: number;
  clients: number;
  backends: Map<number, number>;
}
function cpuSnapshot(serverPid: number, clientPids: number[], db: string): CpuSnapshot {
  return {
    server: statCpuMs(`/proc/${serverPid}/stat`),
    serverMain: statCpuMs(`/proc/${serverPid}/task/${serverPid}/stat`),
    clients: clientPids.reduce((sum, p) => sum + statCpuMs(`/proc/${p}/stat`), 0),
    backends: backendsCpuMs(db),
  };
}
/** CPU ms per operation between two snapshots: server (and its main thread), clients, Postgres. */
function cpuPerOp(a: CpuSnapshot, b: CpuSnapshot, ops: number): { server: number; serverMain: number; clients: number; postgres: number } {
  let pgMs = 0;
  for (const [pid, ms] of b.backends) pgMs += ms - (a.backends.get(pid) ?? 0);
  const per = (x: number) => x / Math.max(1, ops);
  return { server: per(b.server - a.server), serverMain: per(b.serverMain - a.serverMain), clients: per(b.clients - a.clients), postgres: per(pgMs) };
}
const fmtCpu = (c: ReturnType<typeof cpuPerOp>) =>
  `server ${c.server.toFixed(3)} (main thread ${c.serverMain.toFixed(3)}), clients ${c.clients.toFixed(3)}, postgres ${c.postgres.toFixed(3)}`;

/** One job for a client process; every process gets its share of the clients. */
type Job =
  | { kind: "writes"; ms: number }
  | { kind: "floor"; ms: number }
  | { kind: "reads"; ms: number; tokens: string[]; decode: "full" | "count" };
interface JobResult {
  lat: number[];
  elapsedMs: number;
  listed: number;
  /** http2 writes: the pre-encoded requests ran out before the deadline (the window was cut short). */
  exhausted?: boolean;
}

/** Runs `fn` on `n` workers until the deadline (or until fn returns false); per-call latencies (ms). */
async function load(n: number, ms: number, fn: (worker: number, i: number) => Promise<unknown>): Promise<{ lat: number[]; elapsedMs: number }> {
  const lat: number[] = [];
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        if ((await fn(w, i)) === false) break;
        lat.push(performance.now() - t0);
      }
    }),
  );
  return { lat, elapsedMs: performance.now() - start };
}

/** The top level of a response: how many field-1 entries (the resource / the items) and the revision. */
function scanTop(buf: Uint8Array, revisionField: number): { items: number; revision: bigint } {
  const r = new BinaryReader(buf);
  let items = 0;
  let revision = 0n;
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) items++;
    if (no === revisionField && wt === WireType.Varint) revision = BigInt(r.int64());
    else r.skip(wt);
  }
  return { items, revision };
}

const TOPOLOGY = "/lvsfleet.v1.TopologyService";

/** The CreateRealServer request of write number `k` (unique across client processes). */
const writeRequest = (k: number) =>
  create(CreateRealServerRequestSchema, {
    parent: "sites/bench/virtualServices/writes",
    realServerId: `rs${k}`,
    realServer: { address: addr(k), forwardMethod: ForwardMethod.NAT, port: 8080, weight: 1 },
  });

/**
 * Client process: `n` connections to the server at `port` (grpc-js channels or raw HTTP/2 sessions,
 * see --client), running jobs sent by the main process.
 */
async function clientRole(): Promise<void> {
  const port = Number(process.env.BENCH_PORT);
  const proc = Number(process.env.BENCH_PROC);
  const procs = Number(process.env.BENCH_PROCS);
  const n = Number(process.env.BENCH_CLIENTS);
  const target = `127.0.0.1:${port}`;
  let seq = 0;
  const nextWrite = () => seq++ * procs + proc; // unique across processes

  let pool: Client<typeof TopologyService>[] = [];
  let sessions: H2GrpcSession[] = [];
  // http2: every write's request body is encoded now, before any timed window (and before the main
  // process's CPU snapshots), as a load generator replaying a request file would.
  let writeBodies: Buffer[] = [];
  if (clientKind === "http2") {
    const conns = await Promise.all(Array.from({ length: Math.ceil(n / streams) }, () => H2GrpcSession.connect(target)));
    sessions = Array.from({ length: n }, (_, w) => conns[Math.floor(w / streams)]!);
    writeBodies = Array.from({ length: Number(process.env.BENCH_WRITES) }, () => grpcFrame(toBinary(CreateRealServerRequestSchema, writeRequest(nextWrite()))));
    seq = 0;
  } else {
    pool = Array.from({ length: n }, () => createClient(TopologyService, target));
    await Promise.all(pool.map((c) => c.waitForReady(60_000)));
  }

  const onJob = async (job: Job): Promise<JobResult> => {
    if (job.kind === "floor") {
      // The cheapest call the API serves: GetVirtualService of the writes' service, a read-cache hit
      // (pre-encoded response, no Postgres) — what any call costs the server, clients and kernel.
      const name = "sites/bench/virtualServices/writes";
      const body = grpcFrame(toBinary(GetVirtualServiceRequestSchema, create(GetVirtualServiceRequestSchema, { name })));
      const r = await load(n, job.ms, async (w) => {
        if (clientKind === "http2") {
          const top = scanTop(await sessions[w]!.unary(`${TOPOLOGY}/GetVirtualService`, body), 2);
          if (top.items !== 1 || top.revision === 0n) throw new Error("GetVirtualService: no service or no revision");
        } else {
          await pool[w]!.getVirtualService({ name });
        }
      });
      return { ...r, listed: 0 };
    }
    if (job.kind === "writes") {
      if (clientKind === "http2") {
        let exhausted = false;
        const r = await load(n, job.ms, async (w) => {
          const body = writeBodies[seq++];
          if (!body) return !(exhausted = true);
          const top = scanTop(await sessions[w]!.unary(`${TOPOLOGY}/CreateRealServer`, body), 2);
          if (top.items !== 1 || top.revision === 0n) throw new Error("CreateRealServer: no real server or no revision in the response");
        });
        return { ...r, listed: 0, exhausted };
      }
      const r = await load(n, job.ms, async (w) => {
        await pool[w]!.createRealServer(writeRequest(nextWrite()));
      });
      return { ...r, listed: 0 };
    }
    let listed = 0;
    if (job.decode === "count") {
      // Raw bytes: the responses are received whole but not decoded into messages — only their top
      // level is walked (items counted, revision read), as a load generator in C would. See --decode.
      const getReq = toBinary(GetVirtualServiceRequestSchema, create(GetVirtualServiceRequestSchema, { name: READS_VS }));
      const listReqs = job.tokens.map((t) => toBinary(ListRealServersRequestSchema, create(ListRealServersRequestSchema, { parent: READS_VS, pageSize: 100, pageToken: t })));
      let call: (w: number, path: string, req: number) => Promise<Buffer>; // req: -1 = Get, else the List page
      let close = () => {};
      if (clientKind === "http2") {
        const getBody = grpcFrame(getReq);
        const listBodies = listReqs.map(grpcFrame);
        call = (w, path, req) => sessions[w]!.unary(path, req < 0 ? getBody : listBodies[req]!);
      } else {
        const raw = Array.from({ length: n }, () => new grpc.Client(target, grpc.credentials.createInsecure()));
        const getBuf = Buffer.from(getReq);
        const listBufs = listReqs.map((b) => Buffer.from(b));
        call = (w, path, req) =>
          new Promise<Buffer>((resolve, reject) =>
            raw[w]!.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, req < 0 ? getBuf : listBufs[req]!, (err, res) => (err ? reject(err) : resolve(res!))),
          );
        close = () => raw.forEach((c) => c.close());
      }
      const r = await load(n, job.ms, async (w, i) => {
        if (i % 2 === 0) {
          const top = scanTop(await call(w, `${TOPOLOGY}/GetVirtualService`, -1), 2);
          if (top.items !== 1 || top.revision === 0n) throw new Error("GetVirtualService: no service or no revision");
        } else {
          const k = ((proc * n + w) * 7919 + i) % listReqs.length;
          const top = scanTop(await call(w, `${TOPOLOGY}/ListRealServers`, k), 3);
          if (top.revision === 0n) throw new Error("ListRealServers: no revision");
          listed += top.items;
        }
      });
      close();
      return { ...r, listed };
    }
    const r = await load(n, job.ms, async (w, i) => {
      const cl = pool[w]!;
      if (i % 2 === 0) {
        await cl.getVirtualService({ name: READS_VS });
      } else {
        const t = job.tokens[((proc * n + w) * 7919 + i) % job.tokens.length]!;
        const page = await cl.listRealServers({ parent: READS_VS, pageSize: 100, pageToken: t });
        listed += page.realServers.length;
      }
    });
    return { ...r, listed };
  };
  process.on("message", (job: Job | "exit") => {
    if (job === "exit") {
      for (const c of pool) c.close();
      for (const s of new Set(sessions)) s.close();
      process.disconnect();
      return;
    }
    onJob(job).then(
      (res) => process.send!({ ok: true, res }),
      (err: unknown) => process.send!({ ok: false, err: String((err as Error)?.stack ?? err) }),
    );
  });
  process.send!("ready");
}

interface ClientProc {
  child: ChildProcess;
  run(job: Job): Promise<JobResult>;
}

async function startClientProcs(port: number): Promise<ClientProc[]> {
  const procs = Array.from({ length: clientProcs }, (_, i) => {
    const n = Math.floor(clients / clientProcs) + (i < clients % clientProcs ? 1 : 0);
    const child = fork(import.meta.filename, ["--role", "client", "--client", clientKind, "--decode", decode, "--streams", String(streams)], {
      env: {
        ...process.env,
        BENCH_PORT: String(port),
        BENCH_PROC: String(i),
        BENCH_PROCS: String(clientProcs),
        BENCH_CLIENTS: String(n),
        BENCH_WRITES: String(Math.ceil((seconds * WRITES_PER_S_BUDGET) / clientProcs)),
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const ready = new Promise<void>((resolve, reject) => {
      child.once("message", (m) => (m === "ready" ? resolve() : reject(new Error(`client ${i}: ${JSON.stringify(m)}`))));
      child.once("exit", (code) => reject(new Error(`client process ${i} exited (${code})`)));
    });
    const cp: ClientProc = {
      child,
      run: (job) =>
        new Promise((resolve, reject) => {
          child.once("message", (m: { ok: boolean; res?: JobResult; err?: string }) => (m.ok ? resolve(m.res!) : reject(new Error(m.err))));
          child.send(job);
        }),
    };
    return { cp, ready };
  });
  await Promise.all(procs.map((p) => p.ready));
  return procs.map((p) => p.cp);
}

/** http2 writes encoded in advance per second of the window, all processes together (pgbench: ≈ 14 000 TPS here). */
const WRITES_PER_S_BUDGET = 10_000;

/** Runs one job on every client process at once; merged latencies (sorted) and the longest elapsed. */
async function runAll(procs: ClientProc[], job: (i: number) => Job): Promise<JobResult> {
  const rs = await Promise.all(procs.map((p, i) => p.run(job(i))));
  return {
    lat: rs.flatMap((r) => r.lat).sort((a, b) => a - b),
    elapsedMs: Math.max(...rs.map((r) => r.elapsedMs)),
    listed: rs.reduce((s, r) => s + r.listed, 0),
    exhausted: rs.some((r) => r.exhausted),
  };
}

async function pgbench(): Promise<number> {
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
  const serverArgs = args["server-args"] ? args["server-args"].split(/\s+/).filter(Boolean) : [];
  const child = spawn(process.execPath, [...serverArgs, "--import", "tsx", join(root, "services/controlplane/main.ts")], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, LVSFLEET_DESIRED_BUCKET: bucket, LVSFLEET_GRPC_ADDR: `127.0.0.1:${port}`, LVSFLEET_LOG_LEVEL: "warn", LVSFLEET_DB_POOL_SIZE: String(clients + 4) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  let procs: ClientProc[] = [];
  const stopServer = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  };
  try {
    const c = createClient(TopologyService, `127.0.0.1:${port}`);
    await c.waitForReady(60_000);
    await c.createSite({ siteId: "bench", site: {} });
    const mkVs = async (id: string, port: number) =>
      c.createVirtualService({
        parent: "sites/bench",
        virtualServiceId: id,
        virtualService: { protocol: Protocol.TCP, address: "192.0.2.10", port, scheduler: "wlc" },
      });
    await mkVs("writes", 80);
    const op = createClient(OperatorService, `127.0.0.1:${port}`);
    procs = await startClientProcs(port);

    const dbName = new URL(db.url).pathname.slice(1);
    const cpu = () => cpuSnapshot(child.pid!, procs.map((p) => p.child.pid!), dbName);

    // --- writes -------------------------------------------------------------------------------------
    const w0 = cpu();
    const writes = only === "reads" ? noResult : await runAll(procs, () => ({ kind: "writes", ms: seconds * 1000 }));
    const writesPerS = (writes.lat.length / writes.elapsedMs) * 1000;
    const writeCpu = cpuPerOp(w0, cpu(), writes.lat.length);
    // Writes per transaction, read back from the database: CreateRealServer audit rows per distinct
    // xid (group commit puts concurrent creates of a site in one transaction, store/group-commit.ts).
    const perCommit = await db.pool.query<{ rows: number; xids: number }>(
      "SELECT count(*)::int AS rows, count(DISTINCT xid)::int AS xids FROM audit_log WHERE operation = 'CreateRealServer'",
    );
    const writesPerCommit = perCommit.rows[0]!.xids > 0 ? perCommit.rows[0]!.rows / perCommit.rows[0]!.xids : NaN;
    if (writes.exhausted) console.warn(`writes: the ${WRITES_PER_S_BUDGET}/s pre-encoded requests ran out before the deadline; the window was shorter`);

    // --- pgbench reference (server idle meanwhile) ---------------------------------------------------
    const tps = only === "reads" ? NaN : await pgbench();

    // --- the floor: the cheapest call the API serves, same clients ---------------------------------
    // A write can cost no less than this (it is a call too, plus Postgres, the outbox and the relay).
    const floor = only === "reads" ? noResult : await runAll(procs, () => ({ kind: "floor", ms: seconds * 1000 }));
    const floorPerS = (floor.lat.length / floor.elapsedMs) * 1000;

    // --- reads: a service with `reals` real servers ---------------------------------------------------
    // Filled by one import (OperatorService.ImportKeepalived: one transaction, as an operator
    // migrating a keepalived Director would) rather than 10 000 CreateRealServer calls: on a busy
    // machine those take many minutes and measure nothing. No Director carries the service, so the
    // relay has no 10 000-destination state to compile and publish during the reads.
    const conf = only === "writes" ? [] : ["virtual_server 192.0.2.10 443 {", "  lb_algo wlc", "  lb_kind NAT", "  protocol TCP"];
    for (let k = 0; conf.length && k < reals; k++) conf.push(`  real_server ${addr(k)} 8443 {`, "    weight 1", "  }");
    conf.push("}");
    if (only !== "writes") await op.importKeepalived({ parent: "sites/bench", text: conf.join("\n") + "\n", fileName: "bench.conf" }, { timeoutMs: 600_000 });
    // Page tokens of the list, so readers hit random pages, not just the first.
    const tokens = [""];
    for (let tok = ""; only !== "writes"; ) {
      const page = await c.listRealServers({ parent: READS_VS, pageSize: 100, pageToken: tok });
      if (!page.nextPageToken) break;
      tokens.push((tok = page.nextPageToken));
    }
    const r0 = cpu();
    const reads = only === "writes" ? noResult : await runAll(procs, () => ({ kind: "reads", ms: seconds * 1000, tokens, decode }));
    const readCpu = cpuPerOp(r0, cpu(), reads.lat.length);
    const readsPerS = (reads.lat.length / reads.elapsedMs) * 1000;
    if (reads.listed === 0 && only !== "writes") throw new Error("ListRealServers returned nothing");
    c.close();
    op.close();

    console.log(`writes: ${writes.lat.length} CreateRealServer in ${(writes.elapsedMs / 1000).toFixed(1)} s with ${clients} clients in ${procs.length} processes (${clientKind} client)`);
    console.log(`reads: ${reads.lat.length} Get/List over ${tokens.length} pages of ${reals} real servers`);
    console.log(`CPU ms per write: ${fmtCpu(writeCpu)}`);
    console.log(`CPU ms per read: ${fmtCpu(readCpu)}`);
    console.log(
      `api_writes_per_s=${writesPerS.toFixed(0)} pgbench_tps=${tps.toFixed(0)} ratio=${(writesPerS / tps).toFixed(2)} reads_per_s=${readsPerS.toFixed(0)} ` +
        `write_p50_ms=${percentile(writes.lat, 50).toFixed(2)} write_p99_ms=${percentile(writes.lat, 99).toFixed(2)} writes_per_commit=${writesPerCommit.toFixed(1)} ` +
        `floor_calls_per_s=${floorPerS.toFixed(0)} floor_ratio=${(floorPerS / tps).toFixed(2)} ` +
        `read_p50_ms=${percentile(reads.lat, 50).toFixed(2)} read_p99_ms=${percentile(reads.lat, 99).toFixed(2)} client=${clientKind} streams=${streams} decode=${decode} clients=${clients} client_procs=${procs.length} reals=${reals} ` +
        `write_cpu_ms_server=${writeCpu.server.toFixed(3)} write_cpu_ms_pg=${writeCpu.postgres.toFixed(3)} read_cpu_ms_server=${readCpu.server.toFixed(3)} read_cpu_ms_clients=${readCpu.clients.toFixed(3)}`,
    );
  } finally {
    for (const p of procs) {
      if (p.child.connected) p.child.send("exit");
    }
    await Promise.all(procs.map((p) => (p.child.exitCode === null && p.child.signalCode === null ? once(p.child, "exit") : undefined)));
    await stopServer();
    await db.drop();
    const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" }).catch(() => undefined);
    if (nc) {
      await new Kvm(nc).open(bucket).then((kv) => kv.destroy()).catch(() => undefined);
      await nc.close();
    }
  }
}

if (args.role === "client") await clientRole();
else await main();
