/**
 * Per-site write lock: lets an operator's plan-then-apply (api/plan.ts) be sure that no other write
 * to the site commits between its revision check and its COMMIT.
 *
 * A transaction-scoped advisory lock keyed on the site (two-int4 key space: namespace, hashtext(site);
 * the relay's leadership lock uses the one-bigint space, so they never meet):
 *  - every write takes it SHARED for each site it touches, in an after-write hook (the first one,
 *    installed by createDatabase), i.e. after its rows and audit entries: in the COMMIT round trip
 *    (tx.defer), as the statement right before the outbox insert and COMMIT — one round trip less per
 *    write (bench:api, 4 → 3). Shared locks never conflict with each other: ordinary writes stay
 *    concurrent.
 *  - an apply takes it EXCLUSIVE, then (in a new statement, so a new READ COMMITTED snapshot) checks
 *    the site's revision. A write that already holds it shared has finished everything but COMMIT:
 *    the apply waits for that COMMIT and then sees its audit row (→ ABORTED). A write that reaches
 *    its shared lock after the apply's waits until the apply committed.
 * Two hashes colliding only serialises two sites' applies with each other's writes: harmless.
 */
import type { AfterWriteHook, HookTx, WriteRecord, WriteTx } from "./db.js";

/** "lvsf": the first key of the per-site lock. */
export const SITE_LOCK_NAMESPACE = 0x6c767366;

function sitesOf(writes: readonly WriteRecord[]): string[] {
  // Sorted: two writers touching the same sites lock them in the same order.
  const sites = new Set<string>();
  for (const w of writes) for (const c of w.changes) sites.add(c.siteId);
  return [...sites].sort();
}

/**
 * The after-write hook every write runs first: the per-site lock, shared, deferred into the COMMIT
 * round trip (it still runs before COMMIT, and before the statements hooks defer after it; what an
 * apply needs — no write commits between its check and its COMMIT without having held the lock — holds).
 */
export const shareSiteLocks: AfterWriteHook = async (tx, writes) => {
  // Once per site for the whole transaction, however many writes share it (group commit).
  const sites = sitesOf(writes);
  if (sites.length === 1) {
    tx.defer("SELECT pg_advisory_xact_lock_shared($1, hashtext($2))", [SITE_LOCK_NAMESPACE, sites[0]]);
  } else if (sites.length > 1) {
    // unnest keeps the array order (WITH ORDINALITY makes it explicit).
    tx.defer("SELECT pg_advisory_xact_lock_shared($1, hashtext(s)) FROM unnest($2::text[]) WITH ORDINALITY AS u(s, i) ORDER BY i", [SITE_LOCK_NAMESPACE, sites]);
  }
};

/**
 * Takes the site's lock exclusively inside a write transaction: returns once every other write to the
 * site that reached its shared lock has committed or rolled back; none can commit until this
 * transaction ends. Read what must not move in a later statement.
 */
export async function lockSiteExclusive(tx: HookTx, site: string): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [SITE_LOCK_NAMESPACE, site]);
}
