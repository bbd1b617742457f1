/**
 * A fresh database per test file on the shared Postgres (127.0.0.1:5432, trust, user postgres), so
 * test files run in parallel without seeing each other's rows. Migrated with the real migrations.
 *
 *   const pg = await createTestDatabase();   // in beforeAll
 *   ... pg.url, pg.pool ...
 *   await pg.drop();                          // in afterAll
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { migrate } from "../../services/controlplane/store/migrate.js";

export const ADMIN_URL = process.env.LVSFLEET_TEST_PG_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool on the test database, for assertions (counting rows etc.). */
  pool: pg.Pool;
  drop(): Promise<void>;
}

function urlFor(database: string): string {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `lvsfleet_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = urlFor(name);
  await migrate(url);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on("error", () => undefined);
  let dropped = false;
  return {
    name,
    url,
    pool,
    async drop() {
      if (dropped) return;
      dropped = true;
      await pool.end();
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        // WITH (FORCE) ends stray sessions (e.g. a server pool a failed test left open).
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
