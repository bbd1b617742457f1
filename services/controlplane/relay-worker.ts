/**
 * The relay (relay/relay.ts: outbox → compile → desired_states → NATS KV) in a worker thread of the
 * control-plane process, so its compiles — a whole site's topology read and compiled after writes,
 * 10 000s of rows — never hold up the gRPC event loop. Same behaviour as calling startRelay() in the
 * main thread: leader lock, NOTIFY wake-up, polling, retries all live in startRelay; the worker only
 * owns its own small pg pool (a pool cannot cross threads) and logs through its own pino instance
 * (same JSON lines on stdout, component "relay").
 *
 *   main thread                          worker thread
 *   startRelayWorker() ──workerData────▶ pool + startRelay({ pool, natsUrl, bucket, log })
 *   stop()            ──"stop"────────▶ relay.stop() (drains), pool.end()
 *                     ◀──"stopped"─────
 *
 * Bundled into one file (the kernel e2e's esbuild bundle of main.ts) there is no module of its own to
 * start a thread from, so the relay then runs in the calling thread as before.
 *
 * A worker that dies unexpectedly (an uncaught error) is logged and started again after a second;
 * the relay's leadership is a session advisory lock, so the dead worker's lock went with its
 * connections and the new one takes over like a standby would.
 */
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { isMainThread, parentPort, threadId, Worker, workerData } from "node:worker_threads";
import pino from "pino";
import { createPool } from "./store/db.js";
import { startRelay, type RelayLog } from "./relay/index.js";

export interface RelayWorkerOptions {
  databaseUrl: string;
  natsUrl: string | string[];
  bucket: string;
  logLevel: string;
  /** Connections of the worker's own pool (compile and publish passes; the lock has its own). */
  poolSize?: number;
  /** Main-thread logger for the worker's lifecycle (start failures, crashes). */
  log: RelayLog;
  /** Delay before restarting a crashed worker (ms). */
  restartMs?: number;
}

export interface RelayWorker {
  /** Stops the relay in the worker (it drains what it is doing) and waits for the thread to end. */
  stop(): Promise<void>;
}

interface WorkerInit {
  lvsfleetRelayWorker: true;
  databaseUrl: string;
  natsUrl: string | string[];
  bucket: string;
  logLevel: string;
  poolSize: number;
}

type FromWorker = { type: "started" } | { type: "stopped" } | { type: "stopFailed"; error: string };

/**
 * The worker's entry. Under tsx (`npm start` runs `node --import tsx`), Node 20 does not hand the
 * main thread's module hooks to workers, so the worker registers tsx itself before importing this
 * TypeScript file; compiled JavaScript is imported as is.
 */
function workerSource(self: string): string {
  const tsx = self.endsWith(".ts") ? JSON.stringify(import.meta.resolve("tsx/esm/api")) : "null";
  return `(async () => {
    const tsx = ${tsx};
    if (tsx) (await import(tsx)).register();
    await import(${JSON.stringify(self)});
  })().catch((err) => { process.nextTick(() => { throw err; }); });`;
}

/** True when this module is its own file (tsx or compiled), false inside a bundle. */
function ownFile(): boolean {
  return /\/relay-worker\.(ts|js|mjs)$/.test(new URL(import.meta.url).pathname);
}

export function startRelayWorker(opts: RelayWorkerOptions): RelayWorker {
  if (!ownFile()) return inThread(opts);
  const init: WorkerInit = {
    lvsfleetRelayWorker: true,
    databaseUrl: opts.databaseUrl,
    natsUrl: opts.natsUrl,
    bucket: opts.bucket,
    logLevel: opts.logLevel,
    poolSize: opts.poolSize ?? 4,
  };
  let worker: Worker | undefined;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;

  const spawnWorker = (): void => {
    const w = new Worker(workerSource(import.meta.url), { eval: true, workerData: init, execArgv: [] });
    worker = w;
    w.on("error", (err) => opts.log.error({ err }, "relay worker failed"));
    w.on("exit", (code) => {
      if (worker === w) worker = undefined;
      if (stopping) return;
      opts.log.error({ code }, "relay worker exited unexpectedly; restarting");
      restartTimer = setTimeout(spawnWorker, opts.restartMs ?? 1000);
    });
    // The relay runs in the background; it must not keep the process alive on its own.
    w.unref();
  };
  spawnWorker();

  return {
    async stop() {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const w = worker;
      if (!w) return;
      w.ref();
      const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
      const answered = new Promise<FromWorker>((resolve) => {
        w.on("message", (m: FromWorker) => {
          if (m.type === "stopped" || m.type === "stopFailed") resolve(m);
        });
        w.once("exit", () => resolve({ type: "stopped" }));
      });
      w.postMessage("stop");
      const m = await answered;
      // It exits by itself once its connections are closed; don't wait forever on a stray handle.
      const t = setTimeout(() => void w.terminate(), 5000);
      await exited;
      clearTimeout(t);
      if (m.type === "stopFailed") throw new Error(`relay worker: ${m.error}`);
    },
  };
}

/** The bundled fallback: startRelay in this thread with a pool of its own. */
function inThread(opts: RelayWorkerOptions): RelayWorker {
  const pool = createPool(opts.databaseUrl, opts.poolSize ?? 4, (err) => opts.log.warn({ err }, "postgres connection failed"));
  const relay = startRelay({ pool, natsUrl: opts.natsUrl, bucket: opts.bucket, log: opts.log });
  return {
    async stop() {
      try {
        await (await relay).stop();
      } finally {
        await pool.end();
      }
    },
  };
}

async function runWorker(init: WorkerInit): Promise<void> {
  const log = pino({ level: init.logLevel, base: { service: "lvsfleet-controlplane", pid: process.pid } }).child({ component: "relay" });
  const pool = createPool(init.databaseUrl, init.poolSize, (err) => log.warn({ err }, "postgres connection failed"));
  // The worker is started with execArgv [] (no --cpu-prof): LVSFLEET_RELAY_CPU_PROF=<dir> profiles
  // it through the inspector instead, written at stop (bench:api's server stops it on SIGTERM).
  const profDir = process.env.LVSFLEET_RELAY_CPU_PROF;
  let profiler: Session | undefined;
  if (profDir) {
    profiler = new Session();
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  const relay = await startRelay({ pool, natsUrl: init.natsUrl, bucket: init.bucket, log });
  parentPort!.on("message", (m: unknown) => {
    if (m !== "stop") return;
    void (async () => {
      if (profiler) {
        const { profile } = await profiler.post("Profiler.stop");
        await writeFile(join(profDir!, `relay-worker.${process.pid}.${threadId}.cpuprofile`), JSON.stringify(profile)).catch(() => undefined);
      }
      let msg: FromWorker = { type: "stopped" };
      try {
        await relay.stop();
      } catch (err) {
        msg = { type: "stopFailed", error: String((err as Error)?.message ?? err) };
      }
      await pool.end().catch((err: unknown) => log.warn({ err }, "closing the relay pool failed"));
      parentPort!.postMessage(msg);
      parentPort!.close();
    })();
  });
  parentPort!.postMessage({ type: "started" } satisfies FromWorker);
}

if (!isMainThread && (workerData as Partial<WorkerInit> | undefined)?.lvsfleetRelayWorker) {
  await runWorker(workerData as WorkerInit);
}
