// A relay on its own (the control plane runs one in-process; this is for operations and for the
// crash tests): DATABASE_URL, NATS_URL, optional LVSFLEET_DESIRED_BUCKET. Prints "relay leader" on
// stdout when it holds the lock.
import pino from "pino";
import { createPool } from "../store/index.js";
import { startRelay } from "./relay.js";

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  process.stderr.write("relay: DATABASE_URL is required\n");
  process.exit(2);
}
const log = pino({ name: "lvsfleet-relay", level: process.env.LVSFLEET_LOG_LEVEL ?? "info" });
const pool = createPool(databaseUrl, 4);
const relay = await startRelay({
  pool,
  natsUrl: (process.env.NATS_URL ?? "nats://127.0.0.1:4222").split(","),
  bucket: process.env.LVSFLEET_DESIRED_BUCKET,
  log,
  pollMs: Number(process.env.LVSFLEET_RELAY_POLL_MS ?? 500),
  lockRetryMs: Number(process.env.LVSFLEET_RELAY_LOCK_RETRY_MS ?? 1000),
});
const announce = setInterval(() => {
  if (relay.isLeader()) {
    process.stdout.write("relay leader\n");
    clearInterval(announce);
  }
}, 20);
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, async () => {
    await relay.stop();
    await pool.end();
    process.exit(0);
  });
}
