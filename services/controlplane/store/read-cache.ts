/**
 * The API's read cache: Get/List results kept in memory with their protobuf encoding, so a repeated
 * read costs no SQL, no `fromJson` and no `toBinary` — only the revision field is appended per call
 * (lib/grpc/encoded.ts).
 *
 * What a read promises, cached or not: it returns the revision it read, and never data older than a
 * write this process acknowledged before the read started. How:
 *
 * - **Invalidation before the acknowledgement.** The write path (db.ts) calls `invalidate()` for the
 *   written resource names right after COMMIT returns (or after a COMMIT whose outcome is unknown) and
 *   before the write returns to its caller. That drops every entry that depends on them.
 * - **No stale fill.** A miss reads Postgres; the result is kept only if no invalidation of a scope it
 *   depends on happened after the miss *started* (`seq` counter; `lastInvalidated` per scope). A read
 *   that began before a write's COMMIT therefore cannot leave pre-write data behind after it. A miss
 *   joins a fill already in flight for the same key only under the same condition, so a read never
 *   takes a result whose SQL started before a write it must see.
 * - **Other processes** (a second control plane, tools): every write NOTIFYs `lvsfleet_topology` with
 *   its revision and resource names right after its COMMIT (db.ts WriteTx.notify; entries also expire
 *   after `maxAgeMs`, in case a writer died between the two). The cache is
 *   enabled only while its LISTEN connection is up (`startListener`); on connect — and after any
 *   connection loss, when notifications may have been missed — it drops everything and starts over.
 *   Writes of other processes are seen once their notification arrives (milliseconds), not
 *   synchronously: the synchronous guarantee is per process.
 * - **Revision.** A hit returns max(revision the entry was read at, `knownRevision`): the highest
 *   revision whose write this process has seen commit (its own writes, notifications). Every such
 *   write that touched the entry would have dropped it, so the data is the same at that revision —
 *   and a caller who wrote at revision N and then reads gets a revision ≥ N, as from Postgres.
 *
 * Scopes a change of resource `sites/s/virtualServices/v/realServers/r` invalidates: the name itself,
 * its collection `coll:sites/s/virtualServices/v/realServers`, `site:s` and `kind:realServers`. A Get
 * depends on the name; a List of one collection on `coll:…`; a wildcard list inside one site
 * (`sites/s/virtualServices/-`) on `site:s`; a list across sites on `kind:…`.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";

export const TOPOLOGY_CHANNEL = "lvsfleet_topology";
/** Larger NOTIFY payloads (Postgres allows < 8000 bytes) say "everything changed" instead. */
const MAX_PAYLOAD = 7000;

interface Entry {
  value: unknown;
  deps: readonly string[];
  size: number;
  /** performance.now() when its fill started. */
  at: number;
}

interface Fill {
  start: number;
  deps: readonly string[];
  promise: Promise<unknown>;
}

export interface ReadCacheOptions {
  /** Upper bound on the cached entries' encoded bytes (oldest entries go first). */
  maxBytes?: number;
  maxEntries?: number;
  /**
   * Entries older than this are read again. Only a safety net for a lost notification (a writer
   * process that died between its COMMIT and its NOTIFY, see db.ts WriteTx.notify): every write that
   * is notified invalidates at once.
   */
  maxAgeMs?: number;
}

export interface ReadCacheStats {
  hits: number;
  misses: number;
  /** Misses whose result was not kept because a write invalidated it meanwhile. */
  discarded: number;
  invalidations: number;
  /** Whole-cache drops: listener (re)connects, oversized or unreadable notifications. */
  resets: number;
  notifications: number;
}

/** The scopes a change of resource `name` invalidates (see the header). */
export function scopesOf(name: string): string[] {
  const parts = name.split("/");
  const coll = parts.slice(0, -1).join("/");
  return [name, `coll:${coll}`, `site:${parts[1] ?? ""}`, `kind:${parts[parts.length - 2] ?? ""}`];
}

export class ReadCache {
  /** Identifies this process's notifications (its own writes were invalidated synchronously). */
  readonly origin = randomBytes(8).toString("hex");
  readonly stats: ReadCacheStats = { hits: 0, misses: 0, discarded: 0, invalidations: 0, resets: 0, notifications: 0 };
  private enabled = false;
  private seq = 0;
  /** Every scope counts as invalidated at `floor` (whole-cache drops). */
  private floor = 0;
  private readonly lastInvalidated = new Map<string, number>();
  private readonly entries = new Map<string, Entry>();
  private readonly byScope = new Map<string, Set<string>>();
  private readonly inflight = new Map<string, Fill>();
  private bytes = 0;
  private known = 0n;
  private readonly maxBytes: number;
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;

  constructor(opts: ReadCacheOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 256 << 20;
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The highest revision this process has seen committed (see the header). */
  get knownRevision(): bigint {
    return this.known;
  }

  /** The revision to report for data read at `readAt` that is still current. */
  revisionFor(readAt: bigint): bigint {
    return readAt > this.known ? readAt : this.known;
  }

  /** Turns caching on (after a clean start: nothing kept from before). */
  enable(): void {
    this.reset();
    this.enabled = true;
  }

  /** Turns caching off; reads go to Postgres until enable(). */
  disable(): void {
    this.enabled = false;
    this.reset();
  }

  /** Drops everything; fills in flight are not kept. */
  reset(): void {
    this.floor = ++this.seq;
    this.entries.clear();
    this.byScope.clear();
    this.lastInvalidated.clear();
    this.bytes = 0;
    this.stats.resets++;
  }

  /** A write of these resource names committed at `revision` (0n: unknown). */
  invalidate(names: Iterable<string>, revision = 0n): void {
    const s = ++this.seq;
    this.stats.invalidations++;
    for (const name of names) {
      for (const scope of scopesOf(name)) {
        this.lastInvalidated.set(scope, s);
        const keys = this.byScope.get(scope);
        if (keys) for (const k of [...keys]) this.drop(k);
      }
    }
    // Bounded bookkeeping: past this many scopes, forget them all and treat everything as invalidated now.
    if (this.lastInvalidated.size > 4 * this.maxEntries) this.reset();
    if (revision > this.known) this.known = revision;
  }

  /** Raises knownRevision (a read saw this revision committed). */
  observe(revision: bigint): void {
    if (revision > this.known) this.known = revision;
  }

  private validSince(deps: readonly string[], start: number): boolean {
    if (this.floor > start) return false;
    for (const d of deps) if ((this.lastInvalidated.get(d) ?? 0) > start) return false;
    return true;
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.size;
    for (const d of e.deps) {
      const set = this.byScope.get(d);
      if (set) {
        set.delete(key);
        if (set.size === 0) this.byScope.delete(d);
      }
    }
  }

  private keep(key: string, deps: readonly string[], value: unknown, size: number, at: number): void {
    this.drop(key);
    this.entries.set(key, { value, deps, size, at });
    this.bytes += size;
    for (const d of deps) {
      let set = this.byScope.get(d);
      if (!set) this.byScope.set(d, (set = new Set()));
      set.add(key);
    }
    // Oldest first (Map keeps insertion order).
    for (const k of this.entries.keys()) {
      if (this.bytes <= this.maxBytes && this.entries.size <= this.maxEntries) break;
      this.drop(k);
    }
  }

  /**
   * The value under `key`, or `fill()`'s (kept if still valid when it completes). `size` is what the
   * value counts against maxBytes. Errors are never kept.
   */
  async read<V>(key: string, deps: readonly string[], fill: () => Promise<V>, size: (v: V) => number): Promise<V> {
    if (!this.enabled) return fill();
    const hit = this.entries.get(key);
    if (hit) {
      if (performance.now() - hit.at <= this.maxAgeMs) {
        this.stats.hits++;
        return hit.value as V;
      }
      this.drop(key);
    }
    this.stats.misses++;
    const running = this.inflight.get(key);
    if (running && this.validSince(running.deps, running.start)) return running.promise as Promise<V>;
    const start = this.seq;
    const at = performance.now();
    const fl: Fill = { start, deps, promise: undefined as unknown as Promise<V> };
    fl.promise = (async () => {
      try {
        const v = await fill();
        if (this.enabled && this.validSince(deps, start)) this.keep(key, deps, v, size(v), at);
        else this.stats.discarded++;
        return v;
      } finally {
        if (this.inflight.get(key) === fl) this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, fl);
    return fl.promise as Promise<V>;
  }

  /** The NOTIFY payload for a write of `names` at `revision` (db.ts sends it with COMMIT). */
  payload(names: readonly string[], revision: bigint): string {
    const full = JSON.stringify({ o: this.origin, r: revision.toString(), n: names });
    return full.length <= MAX_PAYLOAD ? full : JSON.stringify({ o: this.origin, r: revision.toString(), all: true });
  }

  /** Applies a notification of the topology channel. */
  notified(payload: string): void {
    this.stats.notifications++;
    let msg: { o?: unknown; r?: unknown; n?: unknown; all?: unknown };
    try {
      msg = JSON.parse(payload) as typeof msg;
    } catch {
      this.reset();
      return;
    }
    if (msg.o === this.origin) return; // invalidated synchronously by our own write path
    const revision = typeof msg.r === "string" && /^\d+$/.test(msg.r) ? BigInt(msg.r) : 0n;
    if (msg.all === true || !Array.isArray(msg.n) || !msg.n.every((x) => typeof x === "string")) {
      this.reset();
      this.observe(revision);
      return;
    }
    this.invalidate(msg.n as string[], revision);
  }

  /**
   * Keeps a LISTEN connection (its own, not the pool's) and enables the cache while it is up:
   * connect → LISTEN → drop everything → enable; any error or end → disable → reconnect after
   * `retryMs`. A ping every `pingMs` finds a dead connection that never reported an error.
   */
  startListener(opts: { connectionString: string; retryMs?: number; pingMs?: number; onError?: (err: unknown) => void }): ReadCacheListener {
    const retryMs = opts.retryMs ?? 1000;
    const pingMs = opts.pingMs ?? 5000;
    let stopped = false;
    let client: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    let ping: NodeJS.Timeout | undefined;
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));

    const lost = (c: pg.Client, err?: unknown) => {
      if (client !== c) return;
      client = undefined;
      this.disable();
      if (ping) clearInterval(ping);
      if (err && !stopped) opts.onError?.(err);
      c.end().catch(() => undefined);
      if (!stopped) retry = setTimeout(connect, retryMs);
    };
    const connect = async () => {
      if (stopped) return;
      const c = new pg.Client({ connectionString: opts.connectionString, application_name: "lvsfleet-read-cache", keepAlive: true });
      client = c;
      c.on("error", (err) => lost(c, err));
      c.on("end", () => lost(c));
      c.on("notification", (n) => {
        if (client === c && n.channel === TOPOLOGY_CHANNEL) this.notified(n.payload ?? "");
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${TOPOLOGY_CHANNEL}`);
        if (client !== c || stopped) return;
        this.enable();
        resolveReady();
        ping = setInterval(() => {
          const t = setTimeout(() => lost(c, new Error("read cache listener: ping timed out")), pingMs);
          c.query("SELECT 1").then(
            () => clearTimeout(t),
            (err: unknown) => {
              clearTimeout(t);
              lost(c, err);
            },
          );
        }, pingMs);
        ping.unref();
      } catch (err) {
        lost(c, err);
      }
    };
    void connect();
    return {
      ready,
      stop: async () => {
        stopped = true;
        if (retry) clearTimeout(retry);
        if (ping) clearInterval(ping);
        this.disable();
        const c = client;
        client = undefined;
        await c?.end().catch(() => undefined);
      },
      backendPid: async () => {
        const c = client;
        if (!c) return undefined;
        return (c as unknown as { processID?: number }).processID;
      },
    };
  }
}

export interface ReadCacheListener {
  /** Resolves once the cache is first enabled. */
  ready: Promise<void>;
  /** Disables the cache and closes the connection. */
  stop(): Promise<void>;
  /** The listening backend's pid (tests terminate it to check recovery). */
  backendPid(): Promise<number | undefined>;
}
