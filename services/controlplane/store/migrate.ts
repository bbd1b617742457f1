import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";

/** migrations/ at the repository root, independent of the process's working directory. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../../migrations", import.meta.url));

export interface MigrateLogger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/**
 * Applies every pending migration (node-pg-migrate, plain SQL files in migrations/) in one
 * transaction. Safe to run from several processes at once: node-pg-migrate holds an advisory lock,
 * and we wait for it rather than fail.
 */
export async function migrate(databaseUrl: string, logger?: MigrateLogger): Promise<string[]> {
  const quiet: MigrateLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const log = logger ?? quiet;
  const ran = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: "up",
    migrationsTable: "pgmigrations",
    singleTransaction: true,
    checkOrder: true,
    advisoryLockMode: "wait",
    logger: { ...log, debug: () => undefined },
  });
  return ran.map((m) => m.name);
}
