/**
 * The control plane process: config → Postgres (DATABASE_URL, or an embedded one) → migrations →
 * gRPC (TopologyService + grpc.health.v1 + reflection). SIGTERM/SIGINT: stop accepting calls, drain
 * in-flight ones for up to LVSFLEET_SHUTDOWN_GRACE_MS (then cancel them), close the pool, stop the
 * embedded Postgres, exit 0. Logs are pino JSON on stdout.
 */
import pino from "pino";
import type pg from "pg";
import { FleetService } from "../../gen/lvsfleet/v1/fleet_service_pb.js";
import { OperatorService } from "../../gen/lvsfleet/v1/operator_service_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { operatorService } from "./api/operator.js";
import { topologyService } from "./api/topology-service.js";
import { loadConfig } from "./config.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./store/embedded-postgres.js";
import { createPool, migrate, TopologyStore } from "./store/index.js";
import type { ReadCacheListener } from "./store/read-cache.js";
import { outboxHook } from "./relay/index.js";
import { startRelayWorker, type RelayWorker } from "./relay-worker.js";
import { fleetService, startStatusIngest, type StatusIngest } from "./status/index.js";

const config = loadConfig();
const log = pino({ level: config.logLevel, base: { service: "lvsfleet-controlplane", pid: process.pid } });

let embedded: EmbeddedPostgres | undefined;
let pool: pg.Pool | undefined;
let server: RunningServer | undefined;
let relay: RelayWorker | undefined;
/** Group commit's counters (store/group-commit.ts), logged at shutdown. */
let groupStats: object | undefined;
let ingest: StatusIngest | undefined;
let readCache: ReadCacheListener | undefined;
let stopping: Promise<void> | undefined;

async function start(): Promise<void> {
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    log.info({ dataDir: config.dataDir, port: config.embeddedPgPort }, "starting embedded postgres");
    const pgLog = log.child({ component: "embedded-postgres" });
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, log: (m) => m && pgLog.debug(m) });
    databaseUrl = embedded.url;
  }
  const migLog = log.child({ component: "migrate" });
  const applied = await migrate(databaseUrl, {
    info: (m) => migLog.debug(m),
    warn: (m) => migLog.warn(m),
    error: (m) => migLog.error(m),
  });
  log.info({ applied }, "migrations applied");
  if (stopping) return;
  pool = createPool(databaseUrl, config.dbPoolSize, (err) => log.warn({ err }, "postgres connection failed"));
  const store = new TopologyStore(pool);
  store.db.groupCommitMax = config.groupCommitMax;
  groupStats = store.realServers.group.stats;
  // Transactional outbox: every topology write records which site changed; the relay (one per fleet,
  // elected by advisory lock) compiles and publishes per-host desired state to NATS. It runs in a
  // worker thread (relay-worker.ts) so its compiles never stall the API's event loop.
  store.onWrite(outboxHook);
  // Get/List served from memory with their protobuf bytes while its LISTEN connection is up
  // (store/read-cache.ts: invalidated by every write before it is acknowledged, NOTIFY across processes).
  readCache = store.startReadCache(databaseUrl, (err) => log.warn({ err }, "read cache listener lost its connection; reads go to postgres until it reconnects"));
  relay = startRelayWorker({ databaseUrl, natsUrl: config.natsUrl, bucket: config.desiredBucket, logLevel: config.logLevel, log: log.child({ component: "relay" }) });
  ingest = await startStatusIngest({ pool, natsUrl: config.natsUrl, log: log.child({ component: "status" }) });
  server = await startGrpcServer({
    address: config.grpcAddr,
    services: [
      bind(TopologyService, topologyService(store)),
      bind(OperatorService, operatorService(store)),
      bind(FleetService, fleetService({ store: ingest.store, events: ingest.events, topology: store })),
    ],
    onError: (method, err) => log.error({ method, err }, "unexpected error in handler"),
  });
  log.info({ address: server.address, port: server.port, embeddedPostgres: !!embedded, natsUrl: config.natsUrl }, "serving");
}

async function stop(signal: string): Promise<void> {
  log.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down: draining in-flight calls");
  await started.catch(() => undefined);
  if (server) await server.shutdown(config.shutdownGraceMs);
  log.info({ groupCommit: groupStats }, "grpc server stopped");
  await readCache?.stop().catch((err: unknown) => log.warn({ err }, "stopping the read cache failed"));
  await relay?.stop().catch((err: unknown) => log.warn({ err }, "stopping the relay failed"));
  await ingest?.stop().catch((err: unknown) => log.warn({ err }, "stopping status ingest failed"));
  await pool?.end().catch((err: unknown) => log.warn({ err }, "closing the pool failed"));
  if (embedded) {
    await embedded.stop().catch((err: unknown) => log.warn({ err }, "stopping embedded postgres failed"));
    log.info("embedded postgres stopped");
  }
  await (globalThis as { __lvsfleetOtelShutdown?: () => Promise<void> }).__lvsfleetOtelShutdown?.().catch(() => undefined);
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) {
      log.warn({ signal }, "already shutting down");
      return;
    }
    stopping = stop(signal).then(
      () => {
        log.info("bye");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}

const started = start();
started.catch(async (err: unknown) => {
  log.fatal({ err }, "startup failed");
  await readCache?.stop().catch(() => undefined);
  await pool?.end().catch(() => undefined);
  await embedded?.stop().catch(() => undefined);
  process.exit(1);
});
