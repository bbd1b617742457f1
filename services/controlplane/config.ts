/**
 * Control-plane configuration, from the environment only (12-factor). Defaults run everything on
 * this machine: gRPC on 127.0.0.1:50051 and an embedded Postgres under .lvsfleet/pg.
 *
 * | variable                     | default                  | meaning                                         |
 * |------------------------------|--------------------------|-------------------------------------------------|
 * | LVSFLEET_GRPC_ADDR           | 127.0.0.1:50051          | gRPC listen address (port 0 = any free port)     |
 * | DATABASE_URL                 | (embedded Postgres)      | Postgres connection string                       |
 * | LVSFLEET_DATA_DIR            | .lvsfleet                | embedded Postgres data lives in <dir>/pg         |
 * | LVSFLEET_EMBEDDED_PG_PORT    | 54329                    | port of the embedded Postgres (127.0.0.1 only)   |
 * | NATS_URL                     | nats://127.0.0.1:4222    | NATS with JetStream (distribution)               |
 * | LVSFLEET_DESIRED_BUCKET      | lvsfleet-desired         | JetStream KV bucket of per-host desired states   |
 * | LVSFLEET_LOG_LEVEL           | info                     | pino level                                       |
 * | LVSFLEET_SHUTDOWN_GRACE_MS   | 10000                    | how long SIGTERM waits for in-flight calls       |
 * | LVSFLEET_DB_POOL_SIZE        | 20                       | Postgres connections                             |
 * | LVSFLEET_GROUP_COMMIT_MAX    | 64                       | most concurrent creates sharing one transaction  |
 * |                              |                          | (group commit; 1 = every write alone)            |
 * | OTEL_*                       | (off)                    | OpenTelemetry, see otel.ts                       |
 */
import path from "node:path";

export interface Config {
  grpcAddr: string;
  /** Undefined = start the embedded Postgres. */
  databaseUrl?: string;
  dataDir: string;
  embeddedPgPort: number;
  natsUrl: string;
  /** JetStream KV bucket the relay publishes desired states to (agents watch the same one). */
  desiredBucket: string;
  logLevel: string;
  shutdownGraceMs: number;
  dbPoolSize: number;
  /** Group commit: most concurrent real-server creates in one transaction (store/group-commit.ts); 1 = off. */
  groupCommitMax: number;
}

function int(env: NodeJS.ProcessEnv, key: string, def: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${key}=${raw}: expected an integer in ${min}..${max}`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    grpcAddr: env.LVSFLEET_GRPC_ADDR || "127.0.0.1:50051",
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: path.resolve(env.LVSFLEET_DATA_DIR || ".lvsfleet"),
    embeddedPgPort: int(env, "LVSFLEET_EMBEDDED_PG_PORT", 54329, 1, 65535),
    natsUrl: env.NATS_URL || "nats://127.0.0.1:4222",
    desiredBucket: env.LVSFLEET_DESIRED_BUCKET || "lvsfleet-desired",
    logLevel: env.LVSFLEET_LOG_LEVEL || "info",
    shutdownGraceMs: int(env, "LVSFLEET_SHUTDOWN_GRACE_MS", 10_000, 0, 3_600_000),
    dbPoolSize: int(env, "LVSFLEET_DB_POOL_SIZE", 20, 1, 1000),
    groupCommitMax: int(env, "LVSFLEET_GROUP_COMMIT_MAX", 64, 1, 1000),
  };
}
