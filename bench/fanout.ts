/**
 * bench:fanout — API commit → agent applied, across a fleet of simulated agents.
 *
 *   npm run bench:fanout [-- --agents 1000 --rate 50 --seconds 20 --all-every 25 --agent-procs 2]
 *
 * Real parts: Postgres (a fresh database on 127.0.0.1:5432), NATS JetStream (the shared server on
 * 127.0.0.1:4222, a bucket of this run's own that is deleted at the end), the real TopologyStore with
 * the outbox hook and the real relay in this process, and `--agents` agents running the real sync
 * code (agents/hostagent/sync/agent.ts, run in `--agent-procs` child processes — bench/fanout-agents.ts
 * — so the agents do not share the relay's event loop: each has its own NATS connection, own-key KV
 * watch, state file, reports) over the recording FakeBackend. Each agent has its own NATS connection,
 * as in production (1 000 connections from one process is fine for nats-server and Node). In
 * production every agent has a host of its own; here a timeout change is 1 000 applies in the
 * agents' processes, and a one-host change waits behind all of those that share its event loop —
 * more processes shorten that queue (default 2: on this 2-core machine 1, 2, 3 and 4 were measured
 * back to back and 2 was best or level with 4 at a lower CPU cost per apply).
 *
 * Topology: one site, `--agents` Director hosts d0…, each carrying one DR service with one real
 * server. Changes at `--rate`/s for `--seconds`:
 *  - "one": the weight of one service's real server → only that service's Director changes;
 *  - "all" (every `--all-every`-th change): the site's IPVS tcp timeout → every Director changes.
 * Commit time = when the store write returned (what the API handler awaits before it answers);
 * applied time = when an agent's FakeBackend applied a revision ≥ that commit's revision (a later
 * revision includes the change). One sample per (change, affected host).
 *
 * Floor, in the same run: bare NATS KV put → watch on the same server, one watcher, a payload of the
 * size of a Director's desired state: idle before the load, and during the load (same conditions).
 * Last line: agents=… p50_ms=… p99_ms=… floor_p50_ms=… (and more).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { HostSchema, RealServerSchema, SiteSchema, VirtualServiceSchema } from "../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../gen/lvsfleet/v1/types_pb.js";
import type pg from "pg";
import { outboxHook, startRelay, type Relay, type RelayLog } from "../services/controlplane/relay/index.js";
import { createPool, TopologyStore } from "../services/controlplane/store/index.js";
import { createTestDatabase, type TestDatabase } from "../test/harness/postgres.js";

const { values: args } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    rate: { type: "string", default: "50" },
    seconds: { type: "string", default: "20" },
    "all-every": { type: "string", default: "25" },
    "agent-procs": { type: "string", default: "2" },
    nats: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
  },
});
const N = Number(args.agents);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const ALL_EVERY = Number(args["all-every"]);
const AGENT_PROCS = Math.max(1, Math.min(N, Number(args["agent-procs"])));
const NATS_URL = args.nats;
const RUN = randomBytes(4).toString("hex");
const SITE = `bench${RUN}`;
const BUCKET = `bench-fanout-${RUN}`;
const FLOOR_BUCKET = `bench-fanout-floor-${RUN}`;
const meta = (operation: string) => ({ actor: "bench", operation });

const log = (m: string) => process.stderr.write(`[${new Date().toISOString()}] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const f1 = (x: number) => x.toFixed(1);

async function pool<T>(items: T[], concurrency: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

/** Bare NATS KV put → watch latency: one key, one watcher, payloads of `size` bytes. */
async function floor(nc: NatsConnection, bucket: string, size: number, count: number, everyMs: number): Promise<number[]> {
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  const key = `floor.${RUN}`;
  const waiting = new Map<number, (t: number) => void>();
  const w = await kv.watch({ key });
  void (async () => {
    for await (const e of w) {
      const seq = e.value.length >= 4 ? new DataView(e.value.buffer, e.value.byteOffset).getUint32(0) : -1;
      waiting.get(seq)?.(performance.now());
    }
  })();
  const out: number[] = [];
  const payload = new Uint8Array(Math.max(4, size));
  for (let i = 1; i <= count; i++) {
    new DataView(payload.buffer).setUint32(0, i);
    const seen = new Promise<number>((r) => waiting.set(i, r));
    const t0 = performance.now();
    await kv.put(key, payload);
    const t1 = await Promise.race([seen, sleep(10_000).then(() => NaN)]);
    waiting.delete(i);
    if (!Number.isNaN(t1)) out.push(t1 - t0);
    await sleep(everyMs);
  }
  w.stop();
  return out;
}

const relayLog: RelayLog = {
  // LVSFLEET_BENCH_DEBUG=1: the relay's per-transaction timings on stderr.
  debug: process.env.LVSFLEET_BENCH_DEBUG ? (o, m) => log(`relay: ${m ?? ""} ${JSON.stringify(o)}`) : () => {},
  info() {},
  warn: (o, m) => log(`relay warn: ${m ?? ""} ${JSON.stringify(o)}`),
  error: (o, m) => log(`relay error: ${m ?? ""} ${JSON.stringify(o)}`),
};

let db: TestDatabase | undefined;
let pgPool: pg.Pool | undefined;
let relay: Relay | undefined;
let nc: NatsConnection | undefined;
let stateDir: string | undefined;
let children: ChildProcess[] = [];
// Per agents' process: `CPU <applies> <user µs> <system µs>` printed when it stops.
const cpuLines: Array<{ applies: number; userUs: number; systemUs: number }> = [];
// Per agent index: every apply (revision, epoch ms) the child reported, and the newest revision.
const applies: Array<Array<{ revision: bigint; at: number }>> = [];
const current: bigint[] = [];

async function main(): Promise<void> {
  log(`agents=${N} rate=${RATE}/s seconds=${SECONDS} all-every=${ALL_EVERY} nats=${NATS_URL} bucket=${BUCKET}`);
  db = await createTestDatabase();
  pgPool = createPool(db.url, 16, () => undefined);
  const store = new TopologyStore(pgPool);
  store.onWrite(outboxHook);
  relay = await startRelay({ pool: pgPool, natsUrl: NATS_URL, bucket: BUCKET, log: relayLog });
  nc = await connect({ servers: NATS_URL, name: `bench-fanout ${RUN}` });

  // Topology: N Directors, each with one DR service of one real server.
  const t0 = Date.now();
  await store.sites.create(meta("CreateSite"), SITE, create(SiteSchema, { ipvsTimeouts: { tcpSeconds: 900, tcpFinSeconds: 120, udpSeconds: 300 } }));
  const ids = Array.from({ length: N }, (_, i) => i);
  const ip = (base: string, i: number) => `${base}.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  await pool(ids, 16, async (i) => {
    await store.hosts.create(meta("CreateHost"), SITE, `d${i}`, create(HostSchema, { roles: [HostRole.DIRECTOR], addresses: [ip("198.18", i)] }));
    await store.virtualServices.create(meta("CreateVirtualService"), SITE, `vs${i}`, create(VirtualServiceSchema, {
      protocol: Protocol.TCP,
      address: ip("198.19", i),
      port: 80,
      scheduler: "wlc",
      directors: [`sites/${SITE}/hosts/d${i}`],
    }));
    await store.realServers.create(meta("CreateRealServer"), SITE, `vs${i}`, "rs", create(RealServerSchema, {
      address: ip("198.18", 4000 + i),
      port: 80,
      forwardMethod: ForwardMethod.DR,
      weight: 1,
    }));
  });
  log(`topology: ${N} directors/services/real servers in ${Date.now() - t0} ms`);

  // Agents: the real sync loop over the fake backend, in child processes so that 1 000 agents' CPU
  // (decoding, state files, reports) does not share the relay's event loop.
  const dir = await mkdtemp(join(tmpdir(), "lvsfleet-bench-fanout-"));
  stateDir = dir;
  const t1 = Date.now();
  // LVSFLEET_BENCH_CPU_PROF=<dir>: a V8 CPU profile of each agents' process, written when it exits.
  const prof = process.env.LVSFLEET_BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.LVSFLEET_BENCH_CPU_PROF}`] : [];
  const startProc = (first: number, count: number): Promise<void> => {
    const child = spawn(process.execPath, [...prof, "--import", "tsx", join(import.meta.dirname, "fanout-agents.ts"),
      "--first", String(first), "--count", String(count), "--site", SITE, "--bucket", BUCKET, "--nats", NATS_URL, "--state-dir", dir,
      // Reports on a subject of this run only: no status ingest of another test picks them up.
      "--status-prefix", `bench.${RUN}.status`], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    return new Promise<void>((resolve, reject) => {
      let buf = "";
      child.once("exit", (code) => reject(new Error(`agents process exited (${code})`)));
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === "READY") resolve();
          const m = /^A (\d+) (\d+) (\d+)$/.exec(line);
          if (m) {
            const h = Number(m[1]);
            const rev = BigInt(m[2]!);
            (applies[h] ??= []).push({ revision: rev, at: Number(m[3]) });
            if (rev > (current[h] ?? 0n)) current[h] = rev;
          }
          const c = /^CPU (\d+) (\d+) (\d+)$/.exec(line);
          if (c) cpuLines.push({ applies: Number(c[1]), userUs: Number(c[2]), systemUs: Number(c[3]) });
        }
      });
    });
  };
  // Agents d0… split evenly: process p runs [p·N/P, (p+1)·N/P).
  await Promise.all(Array.from({ length: AGENT_PROCS }, (_, p) => {
    const first = Math.floor((p * N) / AGENT_PROCS);
    return startProc(first, Math.floor(((p + 1) * N) / AGENT_PROCS) - first);
  }));
  log(`agents: ${N} started in ${Date.now() - t1} ms (${AGENT_PROCS} child process${AGENT_PROCS > 1 ? "es" : ""})`);

  // Converged baseline: one "all" change, every agent must apply it.
  const base = await store.sites.update(meta("UpdateSite"), SITE, create(SiteSchema, { ipvsTimeouts: { tcpSeconds: 901, tcpFinSeconds: 120, udpSeconds: 300 } }), { paths: ["ipvs_timeouts"] });
  const tb = Date.now();
  for (;;) {
    const behind = ids.filter((h) => (current[h] ?? 0n) < base.revision).length;
    if (behind === 0) break;
    if (Date.now() - tb > 180_000) throw new Error(`baseline: ${behind} agents did not apply revision ${base.revision} in 180 s`);
    await sleep(100);
  }
  log(`baseline revision ${base.revision} applied by all ${N} agents in ${Date.now() - tb} ms`);
  const payloadSize = (await new Kvm(nc).open(BUCKET).then((kv) => kv.get(`${SITE}.d0`)))?.value.length ?? 256;

  // Idle floor.
  const idleFloor = await floor(nc, FLOOR_BUCKET, payloadSize, 100, 5);
  log(`idle floor: p50 ${f1(pct(idleFloor, 50))} ms p99 ${f1(pct(idleFloor, 99))} ms (payload ${payloadSize} B)`);

  // Load: changes at RATE/s; the floor is measured alongside at ~10/s.
  const changes: Array<{ kind: "one" | "all"; revision: bigint; committedAt: number; hosts: number[] }> = [];
  const total = Math.round(RATE * SECONDS);
  const start = Date.now();
  const loadedFloorP = floor(nc, `${FLOOR_BUCKET}-load`, payloadSize, SECONDS * 10, 100);
  const writes: Promise<void>[] = [];
  let timeout = 901;
  const weights: number[] = [];
  let failed = 0;
  for (let k = 0; k < total; k++) {
    const due = start + (k * 1000) / RATE;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const all = ALL_EVERY > 0 && k % ALL_EVERY === ALL_EVERY - 1;
    writes.push(
      (async () => {
        try {
          if (all) {
            const w = await store.sites.update(meta("UpdateSite"), SITE, create(SiteSchema, { ipvsTimeouts: { tcpSeconds: ++timeout, tcpFinSeconds: 120, udpSeconds: 300 } }), { paths: ["ipvs_timeouts"] });
            changes.push({ kind: "all", revision: w.revision, committedAt: Date.now(), hosts: ids });
          } else {
            const h = Math.floor(Math.random() * N);
            // A weight the real server has not had: an update to the same value changes no state.
            weights[h] = (weights[h] ?? 1) + 1;
            const w = await store.realServers.update(meta("UpdateRealServer"), SITE, `vs${h}`, "rs", create(RealServerSchema, { weight: weights[h] }), { paths: ["weight"] });
            changes.push({ kind: "one", revision: w.revision, committedAt: Date.now(), hosts: [h] });
          }
        } catch (err) {
          failed++;
          if (failed <= 5) log(`write failed: ${String(err)}`);
        }
      })(),
    );
  }
  await Promise.all(writes);
  const offered = (changes.length * 1000) / (Date.now() - start);
  log(`${changes.length} changes committed (${failed} failed) at ${f1(offered)}/s`);
  const loadedFloor = await loadedFloorP;

  // Drain: every change applied everywhere it applies (or give up after 120 s).
  const maxRev = changes.reduce((m, c) => (c.revision > m ? c.revision : m), 0n);
  const td = Date.now();
  const appliedAt = (host: number, rev: bigint): number | undefined => applies[host]?.find((a) => a.revision >= rev)?.at;
  for (;;) {
    const missing = changes.reduce((n, c) => n + c.hosts.filter((h) => appliedAt(h, c.revision) === undefined).length, 0);
    if (missing === 0) break;
    if (Date.now() - td > 120_000) {
      log(`drain: ${missing} (change, host) pairs still not applied after 120 s (max revision ${maxRev})`);
      break;
    }
    await sleep(200);
  }

  const lat = { one: [] as number[], all: [] as number[] };
  let unapplied = 0;
  for (const c of changes) {
    for (const h of c.hosts) {
      const at = appliedAt(h, c.revision);
      if (at === undefined) unapplied++;
      else lat[c.kind].push(Math.max(0, at - c.committedAt));
    }
  }
  const every = [...lat.one, ...lat.all];
  if (process.env.LVSFLEET_BENCH_DEBUG) {
    // Per second of the load: how late the changes committed in it were applied (finds stalls).
    const bySecond = new Map<number, number[]>();
    for (const c of changes) {
      const sec = Math.floor((c.committedAt - start) / 1000);
      for (const h of c.hosts) {
        const at = appliedAt(h, c.revision);
        if (at !== undefined) (bySecond.get(sec) ?? bySecond.set(sec, []).get(sec)!).push(at - c.committedAt);
      }
    }
    for (const [sec, xs] of [...bySecond].sort((a, b) => a[0] - b[0])) log(`second ${sec}: p50 ${f1(pct(xs, 50))} ms max ${f1(pct(xs, 100))} ms`);
    // Each all-host change: when its first, middle and last agent applied it (the agents' burst).
    for (const c of changes.filter((x) => x.kind === "all")) {
      const xs = c.hosts.map((h) => appliedAt(h, c.revision)).filter((x) => x !== undefined).map((x) => x - c.committedAt);
      log(`all-host change at +${c.committedAt - start} ms: first ${pct(xs, 0)} ms, p50 ${pct(xs, 50)} ms, last ${pct(xs, 100)} ms`);
    }
  }
  // The agents' CPU per apply over the measured part (READY → stop), all their processes together:
  // a figure that the machine's other load disturbs less than the latencies.
  await stopAgentProcs();
  const cpu = cpuLines.reduce((t, c) => ({ applies: t.applies + c.applies, user: t.user + c.userUs, system: t.system + c.systemUs }), { applies: 0, user: 0, system: 0 });
  const cpuPerApplyUs = cpu.applies > 0 && cpuLines.length === AGENT_PROCS ? (cpu.user + cpu.system) / cpu.applies : NaN;
  log(`agents' processes: ${cpu.applies} applies, CPU user ${f1(cpu.user / 1000)} ms + system ${f1(cpu.system / 1000)} ms (${f1(cpuPerApplyUs)} µs per apply)`);
  const allChanges = changes.filter((c) => c.kind === "all").length;
  log(`one-host changes: ${lat.one.length} samples p50 ${f1(pct(lat.one, 50))} ms p99 ${f1(pct(lat.one, 99))} ms`);
  log(`all-host changes: ${allChanges} × ${N} = ${lat.all.length} samples p50 ${f1(pct(lat.all, 50))} ms p99 ${f1(pct(lat.all, 99))} ms`);
  const st = relay.stats;
  log(`relay: compiled ${st.compiled} published ${st.published} (unconfirmed ${st.unconfirmed}) bumps ${st.bumps}; sites compiled incrementally ${st.incremental}, whole ${st.full}; compile ${f1(st.compileMs)} ms, publish ${f1(st.publishMs)} ms in total; unapplied ${unapplied}`);
  log(`floor during load: p50 ${f1(pct(loadedFloor, 50))} ms p99 ${f1(pct(loadedFloor, 99))} ms (${loadedFloor.length} samples)`);

  process.stdout.write(
    `agents=${N} changes=${changes.length} rate_per_s=${f1(offered)} samples=${every.length} unapplied=${unapplied} ` +
      `p50_ms=${f1(pct(every, 50))} p99_ms=${f1(pct(every, 99))} one_p50_ms=${f1(pct(lat.one, 50))} one_p99_ms=${f1(pct(lat.one, 99))} ` +
      `all_p50_ms=${f1(pct(lat.all, 50))} all_p99_ms=${f1(pct(lat.all, 99))} ` +
      `floor_p50_ms=${f1(pct(loadedFloor, 50))} floor_p99_ms=${f1(pct(loadedFloor, 99))} idle_floor_p50_ms=${f1(pct(idleFloor, 50))} idle_floor_p99_ms=${f1(pct(idleFloor, 99))} ` +
      `agent_procs=${AGENT_PROCS} agent_cpu_us_per_apply=${f1(cpuPerApplyUs)}\n`,
  );
}

async function stopAgentProcs(): Promise<void> {
  await Promise.all(children.map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // "close", not "exit": the CPU line must have been read off the pipe.
    const exited = new Promise((r) => child.once("close", r));
    child.kill("SIGTERM");
    await exited;
  }));
}

async function cleanup(): Promise<void> {
  await stopAgentProcs();
  await relay?.stop().catch(() => undefined);
  if (nc) {
    const kvm = new Kvm(nc);
    for (const b of [BUCKET, FLOOR_BUCKET, `${FLOOR_BUCKET}-load`]) {
      await kvm.open(b).then((kv) => kv.destroy()).catch(() => undefined);
    }
    await nc.close().catch(() => undefined);
  }
  await pgPool?.end().catch(() => undefined);
  await db?.drop().catch((err: unknown) => log(`drop database: ${String(err)}`));
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
}

let code = 0;
try {
  await main();
} catch (err) {
  log(`bench:fanout failed: ${(err as Error)?.stack ?? String(err)}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
