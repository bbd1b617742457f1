// The write side of the transactional outbox: an after-write hook of the store's write path
// (store/db.ts) that records, inside the write transaction, which sites' topology changed. The row
// commits or rolls back with the change itself; the relay (relay.ts) turns it into per-host desired
// states and publishes them. NOTIFY is delivered at COMMIT only, so it wakes the relay exactly when
// the row becomes visible (the relay also polls, in case a notification is missed).
import type { AfterWriteHook } from "../store/index.js";

export const OUTBOX_CHANNEL = "lvsfleet_outbox";

export const outboxHook: AfterWriteHook = async (tx, record) => {
  const sites = [...new Set(record.changes.map((c) => c.siteId))].sort();
  if (sites.length === 0) return;
  await tx.query(
    `INSERT INTO outbox (revision, site) SELECT $1::bigint, s FROM unnest($2::text[]) AS s`,
    [record.revision.toString(), sites],
  );
  await tx.query(`SELECT pg_notify($1, $2)`, [OUTBOX_CHANNEL, record.revision.toString()]);
};
