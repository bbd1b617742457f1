// The write side of the transactional outbox: an after-write hook of the store's write path
// (store/db.ts) that records, inside the write transaction, which resources of which sites changed —
// one row per (site, resource), so the relay re-reads and recompiles only what they can affect. The
// rows commit or roll back with the change itself; the relay (relay.ts) turns them into per-host
// desired states and publishes them. The NOTIFY is sent right after COMMIT, so it wakes the relay
// when the rows are visible (the relay also polls, in case a notification is missed).
import type { AfterWriteHook } from "../store/index.js";

export const OUTBOX_CHANNEL = "lvsfleet_outbox";

/** More resources than this in one write of one site: one row "recompile the whole site" instead. */
export const OUTBOX_MAX_RESOURCES_PER_SITE = 256;

export const outboxHook: AfterWriteHook = async (tx, writes) => {
  // One row per (write, site, resource), each with its write's revision; one statement for all the
  // writes of the transaction (several under group commit).
  const revisions: string[] = [];
  const sites: string[] = [];
  const kinds: Array<string | null> = [];
  const resources: Array<string | null> = [];
  for (const record of writes) {
    const bySite = new Map<string, Map<string, string>>(); // site → resource name → kind
    for (const c of record.changes) {
      let m = bySite.get(c.siteId);
      if (!m) bySite.set(c.siteId, (m = new Map()));
      m.set(c.resourceName, c.kind);
    }
    const revision = record.revision.toString();
    for (const site of [...bySite.keys()].sort()) {
      const m = bySite.get(site)!;
      if (m.size > OUTBOX_MAX_RESOURCES_PER_SITE) {
        revisions.push(revision);
        sites.push(site);
        kinds.push(null);
        resources.push(null);
        continue;
      }
      for (const [name, kind] of [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
        revisions.push(revision);
        sites.push(site);
        kinds.push(kind);
        resources.push(name);
      }
    }
  }
  if (sites.length === 0) return;
  // No round trip of its own: the insert rides in the COMMIT round trip (tx.defer) and commits or rolls
  // back with the write; the wake-up NOTIFY goes right after COMMIT (tx.notify — a NOTIFY inside the
  // transaction would make every write's commit queue on Postgres's database-wide notify lock through
  // its WAL flush). A lost wake-up (writer died in between) is caught by the relay's polling.
  tx.defer(
    `INSERT INTO outbox (revision, site, kind, resource)
     SELECT v, s, k, r FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(v, s, k, r)`,
    [revisions, sites, kinds, resources],
  );
  tx.notify(OUTBOX_CHANNEL, writes.at(-1)!.revision.toString());
};
