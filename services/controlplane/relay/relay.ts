// The relay: outbox (Postgres) → per-host desired state → JetStream KV bucket `lvsfleet-desired`.
//
//   write tx ──(outboxHook: INSERT outbox, NOTIFY)──▶ outbox ──(A: compile)──▶ desired_states ──(B: put)──▶ KV <site>.<host>
//
// A. compile (Postgres only, so it keeps working while NATS is down). One REPEATABLE READ
//    transaction: take outbox rows, read in the same snapshot what they name, compile, upsert
//    desired_states for the hosts whose hash changed (one statement per site), DELETE the rows taken,
//    COMMIT — in two or three round trips (README "Round trips").
//    - Incremental: each row names one written resource (outbox.kind/resource). The relay keeps each
//      site's topology and its hosts' (revision, hash, present) from its last compile transaction,
//      re-reads only the named resources and recompiles only the hosts that read them before or
//      after (compile/incremental.ts, property-tested against a full compile). The first time, after
//      any failed transaction, for a deleted site and for rows without a resource it reads and
//      compiles the whole site. The cache is only trusted if this relay ran the previous compile
//      transaction: each one bumps relay_compile_token and reads who bumped it last (a takeover and
//      back, or a deposed leader finishing a transaction, drops the cache — fleet-relay.test.ts).
//    - Nothing is skipped: rows are consumed by DELETE in the transaction that records their
//      result, never by a cursor. A row whose transaction commits "late" (lower id or revision than
//      rows already consumed — the outbox trap) is simply still there on the next pass, and that
//      pass's snapshot contains its change. Tested with 64 concurrent writers and random commit
//      delays (test/integration/fleet-relay.test.ts).
//    - Stamped revisions only go up: a host's state is stamped with the highest revision visible in
//      the snapshot; if that is not above the revision the host already has (a lower revision that
//      committed late changed it), it gets a fresh revision from revision_seq instead, so agents —
//      which ignore anything not newer — never drop a real change.
//    - Only changed hashes are written: a change reaches exactly the hosts whose state it changes.
// B. publish: every desired_states row not yet `published` is put into the KV (idempotent; the value
//    carries revision + hash) and then marked. Puts are pipelined (publisher.ts: up to
//    putConcurrency in flight on one connection) and each counts only once its own PubAck from the
//    bucket's stream arrived; only those rows are marked. A put that is not confirmed (NATS down, a
//    lost message, an error PubAck) stays pending and is retried on the next pass, so the relay
//    catches up when NATS returns. After a takeover, and whenever the marker key
//    shows that NATS lost its data, every host's state is put again from desired_states.
//    A state above the connection's max_payload (less headroom) cannot be a KV value: it is put into
//    the Object Store bucket of the same name first (state-object.ts; every chunk confirmed), and the
//    KV value is a reference to it. The previous object of a host is kept for agents still reading
//    it; older ones are deleted once the KV points past them (README: "States above max_payload").
//
// One relay at a time: leadership is a session advisory lock on a dedicated connection. When the
// holder dies its session ends, the lock is released and a standby (polling pg_try_advisory_lock)
// takes over. A leader whose lock connection fails stops relaying at once.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { create, toBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { HostDesiredStateSchema, SiteDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import {
  compileHosts,
  compileSite,
  compileSitePart,
  desiredStateKey,
  hashDesiredState,
  emptySitePart,
  hostPart,
  MutableTopology,
  SITE_PART,
  resourceKind,
  type ResourceKind,
  type ResourceRef,
  type SiteTopology,
} from "../compile/index.js";
import { guardPoolClients } from "../store/db.js";
import { OUTBOX_CHANNEL } from "./outbox.js";
import { PipelinedPublisher } from "./publisher.js";
import { inlineLimit, objectHostKey, objectStoreDigest, packStateObject } from "./state-object.js";
import { loadSiteTopology, outboxResources, outboxResourcesSql, type Resource } from "./topology.js";

export const DESIRED_BUCKET = "lvsfleet-desired";
/** "lvsfleet" in ASCII: the advisory lock key of the relay leadership. */
export const RELAY_LOCK_KEY = 0x6c7673666c656574n;
/**
 * Marker key in the bucket: the leader's epoch. It has no dot, so it can never be a `<site>.<host>`
 * key, and agents (which watch their own key only) never see it. Missing or foreign = NATS lost data
 * (or another relay led in between): republish everything.
 */
export const MARKER_KEY = "relay-epoch";

export interface RelayLog {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

const silent: RelayLog = { debug() {}, info() {}, warn() {}, error() {} };

export interface RelayOptions {
  pool: pg.Pool;
  natsUrl: string | string[];
  log?: RelayLog;
  bucket?: string;
  /** Connection settings of the dedicated lock connection; default: the pool's. */
  lockConnection?: pg.ClientConfig;
  lockKey?: bigint;
  /** Fallback poll of the outbox when no NOTIFY arrives (ms). */
  pollMs?: number;
  /** How often a standby retries the lock (ms). */
  lockRetryMs?: number;
  /** How often the leader checks the marker key (ms). */
  markerCheckMs?: number;
  /** Outbox rows per compile transaction. */
  batchSize?: number;
  /**
   * Adaptive coalescing: when the previous batch ended less than this ago (writes keep coming), wait
   * this long before taking the next one, so it gathers more rows. 0 = never. A write after a quiet
   * spell never waits. Default: LVSFLEET_RELAY_COALESCE_MS or 5 (bench:api, back-to-back batches
   * of 4–5 writes: relay-worker CPU 0.74 → 0.17 ms per write; bench:fanout at 50 changes/s: batches
   * are never that close, p50 unchanged).
   */
  coalesceMs?: number;
  /** KV puts in flight at most (pipelined; each confirmed by its own PubAck). */
  putConcurrency?: number;
  /**
   * Largest state put inline as a KV value (bytes); larger ones go to the Object Store with a
   * reference in the KV. Default: 15/16 of the server's max_payload. Tests set it low.
   */
  inlineMaxBytes?: number;
  /** Deflate (zlib) state objects; default true. */
  deflateObjects?: boolean;
  /** State bytes one publish batch reads at most besides `batchSize` rows (at least one row); default 64 MiB. */
  publishBatchBytes?: number;
}

export interface RelayStats {
  /** desired_states rows written (hosts whose state changed). */
  compiled: number;
  /** KV puts the stream confirmed (PubAck). */
  published: number;
  /** KV puts sent but not confirmed (error PubAck, no responders, timeout): left pending, put again. */
  unconfirmed: number;
  /** Full republishes (takeover, NATS data loss). */
  republishes: number;
  /** Times this relay became leader. */
  leaderships: number;
  /** Stamps taken from revision_seq because a late commit changed an already stamped host. */
  bumps: number;
  /** Sites compiled incrementally (only the written resources re-read, only their hosts compiled). */
  incremental: number;
  /** Sites compiled whole (first time, cache dropped, a site-level write, very large writes). */
  full: number;
  /** Times the cache was dropped because another relay compiled in between (relay_compile_token). */
  cacheDrops: number;
  /** Time spent in compile transactions and in publishing (ms). */
  compileMs: number;
  publishMs: number;
  /** State objects put into the Object Store (one per state above the inline limit, unless already there). */
  objectsPut: number;
  /** Superseded state objects deleted. */
  objectsDeleted: number;
}

export interface Relay {
  readonly id: string;
  isLeader(): boolean;
  readonly stats: RelayStats;
  /** Resolves when this relay is leader and has nothing left to compile or publish. */
  idle(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

class Waker {
  private resolve: (() => void) | undefined;
  private pending = false;
  wake(): void {
    this.pending = true;
    this.resolve?.();
  }
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((r) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.resolve = undefined;
        self.pending = false;
        r();
      }
      this.resolve = done;
    });
  }
}

/** What the relay knows a host's desired_states row holds. */
interface HostState {
  revision: bigint;
  hash: string;
  present: boolean;
}

/**
 * A site as of this relay's last committed compile transaction: its topology and its hosts'
 * desired_states (revision, hash, present). Valid only while no other relay compiled (the token).
 */
interface SiteCache {
  topo: MutableTopology;
  states: Map<string, HostState>;
}

function uniqueRefs(rows: ReadonlyArray<{ kind: ResourceKind; resource: string }>): ResourceRef[] {
  const m = new Map<string, ResourceKind>();
  for (const r of rows) m.set(r.resource, r.kind);
  return [...m].map(([name, kind]) => ({ kind, name }));
}

/** The re-read resources of one site: each ref's current row, or undefined (deleted). */
function rereadOf(written: ReadonlyMap<string, ReadonlyMap<string, Resource>>, site: string, refs: readonly ResourceRef[]): Map<string, Resource | undefined> {
  const have = written.get(site);
  const out = new Map<string, Resource | undefined>();
  for (const r of refs) if (r.name.split("/")[1] === site) out.set(r.name, have?.get(r.name));
  return out;
}

function jitter(ms: number): number {
  return Math.floor(ms / 2 + Math.random() * ms);
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);

/** State bytes one publish batch reads at most (with several-MB Director states, 500 rows would be GBs). */
const PUBLISH_BATCH_BYTES = 64 * 1024 * 1024;
/** Object puts in flight at most (each is a sequence of confirmed chunk publishes). */
const OBJECT_PUT_CONCURRENCY = 4;
/** Under load, the lock session's liveness query runs at most this often. */
const LOCK_CHECK_MS = 250;

/** What one desired_states row is sent as: its KV value, and the object it references if any. */
type Outgoing = { ok: true; value: Uint8Array; object: string } | { ok: false; error: string };

export function emptyDesiredState(site: string, host: string): HostDesiredState {
  const ds = create(HostDesiredStateSchema, { site, host });
  ds.hash = hashDesiredState(ds);
  return ds;
}

export async function startRelay(opts: RelayOptions): Promise<Relay> {
  const relay = new RelayImpl(opts);
  relay.start();
  return relay;
}

class RelayImpl implements Relay {
  readonly id = randomUUID();
  readonly stats: RelayStats = { compiled: 0, published: 0, unconfirmed: 0, republishes: 0, leaderships: 0, bumps: 0, incremental: 0, full: 0, cacheDrops: 0, compileMs: 0, publishMs: 0, objectsPut: 0, objectsDeleted: 0 };
  private readonly log: RelayLog;
  private readonly bucket: string;
  private readonly lockKey: bigint;
  private readonly pollMs: number;
  private readonly lockRetryMs: number;
  private readonly markerCheckMs: number;
  private readonly batchSize: number;
  private readonly putConcurrency: number;
  private readonly waker = new Waker();
  private stopped = false;
  private leader = false;
  private loop: Promise<void> | undefined;
  private lockClient: pg.Client | undefined;
  private nc: NatsConnection | undefined;
  private connecting: Promise<void> | undefined;
  private kv: KV | undefined;
  private publisher: PipelinedPublisher | undefined;
  private os: ObjectStore | undefined;
  /**
   * Per `<site>.<host>`, the (revision, object) of its last two confirmed KV values, oldest first
   * (object "" = inline): the newest is what the KV points at, the other is kept for agents still
   * reading it; an object falling out of this is deleted (`doomed`).
   */
  private readonly objects = new Map<string, Array<{ revision: string; name: string }>>();
  private readonly doomed = new Set<string>();
  /** Per site, as of our last compile transaction (see SiteCache); `token` = relay_compile_token.n then. */
  private readonly cache = new Map<string, SiteCache>();
  private token = "";
  private epoch = "";
  /** False between a disconnect and the reconnect: requests then would only sit until they time out. */
  private natsUp = false;
  private republishAll = true;
  private lastMarkerCheck = 0;
  private lastLockCheck = 0;
  private lastBatchEnd = -Infinity;
  private readonly coalesceMs: number;
  /** desired_states rows were written (or a publish did not finish) since the last complete publish. */
  private unpublished = true;
  private busy = true;
  private idleWaiters: Array<() => void> = [];

  /**
   * The relay's own connections (same settings as `pool`): queued behind the API's writes in a shared
   * pool, a compile or publish waited for seconds under write load (bench:fanout).
   */
  private readonly db: pg.Pool;

  constructor(private readonly o: RelayOptions) {
    this.log = o.log ?? silent;
    const base = (o.pool as unknown as { options: pg.PoolConfig }).options;
    // pg-pool keeps `password` non-enumerable: copy it explicitly.
    this.db = new pg.Pool({ ...base, password: base.password, max: 2, application_name: "lvsfleet-relay" });
    // An idle connection that loses its server emits here; the pool replaces it on next use.
    this.db.on("error", (err) => this.log.debug({ err: String(err) }, "idle relay connection failed"));
    guardPoolClients(this.db, (err) => this.log.debug({ err: String(err) }, "relay connection failed"));
    this.bucket = o.bucket ?? DESIRED_BUCKET;
    this.lockKey = o.lockKey ?? RELAY_LOCK_KEY;
    this.pollMs = o.pollMs ?? 500;
    this.lockRetryMs = o.lockRetryMs ?? 1000;
    this.markerCheckMs = o.markerCheckMs ?? 1000;
    this.batchSize = Math.max(1, Math.floor(o.batchSize ?? 500)); // inlined into SQL: an integer
    this.putConcurrency = o.putConcurrency ?? 1024;
    this.coalesceMs = o.coalesceMs ?? Number(process.env.LVSFLEET_RELAY_COALESCE_MS ?? 5);
  }

  start(): void {
    this.loop = this.run();
  }

  isLeader(): boolean {
    return this.leader;
  }

  async idle(timeoutMs = 30_000): Promise<void> {
    if (this.leader && !this.busy) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`relay ${this.id} not idle within ${timeoutMs} ms (leader=${this.leader})`)), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.waker.wake();
    await this.loop;
    await this.connecting;
    this.publisher?.close();
    await this.nc?.close().catch(() => undefined);
    await this.db.end().catch(() => undefined);
  }

  // --- leadership ---------------------------------------------------------------------------------

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const client = new pg.Client({ ...((this.o.pool as unknown as { options: pg.ClientConfig }).options), ...this.o.lockConnection, keepAlive: true });
      let lost = false;
      client.on("error", (err) => {
        lost = true;
        if (this.leader) this.log.error({ err: String(err) }, "relay lock connection failed; stepping down");
        this.waker.wake();
      });
      client.on("end", () => {
        lost = true;
        this.waker.wake();
      });
      client.on("notification", () => this.waker.wake());
      try {
        await client.connect();
        this.lockClient = client;
        while (!this.stopped && !lost) {
          const r = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [this.lockKey.toString()]);
          if (r.rows[0]!.ok) break;
          await this.waker.wait(jitter(this.lockRetryMs));
        }
        if (this.stopped || lost) continue;
        await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
        this.leader = true;
        this.stats.leaderships++;
        this.republishAll = true;
        this.epoch = randomUUID();
        this.log.info({ relay: this.id }, "relay leadership acquired");
        failures = 0;
        await this.lead(() => lost);
      } catch (err) {
        if (!this.stopped) {
          failures++;
          this.log.warn({ err: String(err) }, "relay error");
          await this.waker.wait(jitter(Math.min(5000, 100 * 2 ** failures)));
        }
      } finally {
        if (this.leader) this.log.info({ relay: this.id }, "relay leadership released");
        this.leader = false;
        this.lockClient = undefined;
        // Closing the session releases the advisory lock.
        await client.end().catch(() => undefined);
      }
    }
  }

  private async lead(lost: () => boolean): Promise<void> {
    let failures = 0;
    while (!this.stopped && !lost()) {
      this.busy = true;
      let work = false;
      try {
        // One compile batch, then publish: under a steady stream of writes the outbox is never empty,
        // so draining it before publishing would hold every change back until the writes stop.
        if (this.coalesceMs > 0 && performance.now() - this.lastBatchEnd < this.coalesceMs) {
          await new Promise((r) => setTimeout(r, this.coalesceMs));
        }
        const taken = await this.compileBatch();
        if (taken > 0) this.lastBatchEnd = performance.now();
        if (taken > 0) work = true;
        if (this.stopped || lost()) return;
        // A batch that changed no host (a write nothing reads) has nothing to publish: skip the
        // query — unless something is still pending or the marker check is due. A pass that took no
        // rows always looks (another relay's rows, a deposed leader's late commit).
        if (taken === 0 || this.unpublished || this.republishAll || Date.now() - this.lastMarkerCheck >= this.markerCheckMs) {
          const tp = performance.now();
          const published = await this.publish(lost);
          this.stats.publishMs += performance.now() - tp;
          if (published === undefined) work = true; // NATS unavailable: keep retrying
          this.unpublished = published === undefined;
        }
        failures = 0;
      } catch (err) {
        work = true;
        failures++;
        this.log.warn({ err: String(err) }, "relay pass failed; retrying");
      }
      // A cheap liveness check of the lock session; a dead one ends leadership. At most every
      // LOCK_CHECK_MS under load (a closed socket ends it at once through the client's events).
      if (performance.now() - this.lastLockCheck >= LOCK_CHECK_MS) {
        await this.lockClient!.query("SELECT 1");
        this.lastLockCheck = performance.now();
      }
      if (!work) {
        this.busy = false;
        for (const w of this.idleWaiters.splice(0)) w();
      }
      await this.waker.wait(work ? jitter(Math.min(2000, 50 * 2 ** failures)) : this.pollMs);
    }
  }

  // --- A: outbox → desired_states ---------------------------------------------------------------------

  /** One compile transaction; returns the number of outbox rows consumed. */
  private async compileBatch(): Promise<number> {
    const c = await this.db.connect();
    let broken = false;
    const t0 = performance.now();
    // Cache updates of this transaction: applied only once it committed.
    const staged = new Map<string, SiteCache | null>();
    try {
      const tConn = performance.now() - t0;
      // BEGIN, the rows taken, and the head in one round trip (each statement's socket write and
      // wake-up cost the relay more CPU than its compile in bench:api). The simple protocol takes no
      // parameters: the batch size (an integer) and this relay's id (a UUID it made) are inlined.
      // The head: the highest revision this snapshot contains (bumped stamps are not in audit_log;
      // see below), and the cache token — who compiled last (migrations/1795720000000_relay_incremental.sql).
      // And, in the same round trip, the current rows of every resource the taken rows name (what
      // the incremental compile re-reads; topology.ts outboxResourcesSql).
      const [, taken, head, resourceRows] = (await c.query(
        `BEGIN ISOLATION LEVEL REPEATABLE READ;
         SELECT id::text AS id, site, kind, resource FROM outbox ORDER BY id LIMIT ${this.batchSize} FOR UPDATE;
         WITH prev AS (SELECT relay, n FROM relay_compile_token WHERE id = 1 FOR UPDATE),
              bump AS (INSERT INTO relay_compile_token (id, relay, n) VALUES (1, '${this.id}', 1)
                       ON CONFLICT (id) DO UPDATE SET relay = EXCLUDED.relay, n = relay_compile_token.n + 1 RETURNING n)
         SELECT (SELECT coalesce(max(revision), 0) FROM audit_log)::text AS r,
                (SELECT relay FROM prev) AS prev_relay, (SELECT n FROM prev)::text AS prev_n, (SELECT n FROM bump)::text AS n;
         ${outboxResourcesSql(this.batchSize)}`,
      )) as unknown as [
        pg.QueryResult,
        pg.QueryResult<{ id: string; site: string; kind: string | null; resource: string | null }>,
        pg.QueryResult<{ r: string; prev_relay: string | null; prev_n: string | null; n: string }>,
        pg.QueryResult,
      ];
      if (taken.rows.length === 0) {
        await c.query("ROLLBACK"); // nothing compiled: the token bump is undone
        return 0;
      }
      const rev = BigInt(head.rows[0]!.r);
      const written = outboxResources(resourceRows);
      const tHead = performance.now() - t0;
      let tRead = 0;
      let tCompile = 0;
      let tWrite = 0;
      if (head.rows[0]!.prev_relay !== this.id || head.rows[0]!.prev_n !== this.token || this.token === "") {
        // Another relay compiled since our last transaction (or this is our first): what we hold
        // may be stale.
        if (this.cache.size > 0) {
          this.stats.cacheDrops++;
          this.log.info({ relay: this.id }, "another relay compiled meanwhile; dropping the topology cache");
        }
        this.cache.clear();
      }
      const bySite = new Map<string, Array<{ kind: string | null; resource: string | null }>>();
      for (const r of taken.rows) {
        const l = bySite.get(r.site) ?? [];
        l.push(r);
        bySite.set(r.site, l);
      }
      let compiled = 0;
      let bumps = 0;
      for (const site of [...bySite.keys()].sort()) {
        const rows = bySite.get(site)!;
        const cached = this.cache.get(site);
        let states: Map<string, HostDesiredState>;
        /** Hosts to compare: every host whose state may have changed. */
        let hosts: string[];
        let entry: SiteCache | null;
        const refs = rows.every((r) => r.resource !== null && r.kind !== null && resourceKind(r.resource) === r.kind)
          ? uniqueRefs(rows as Array<{ kind: ResourceKind; resource: string }>)
          : undefined;
        // Incremental: re-read the written resources in this snapshot, recompile the hosts that read
        // them before or after (compile/incremental.ts). A site-level write (IPVS timeouts) reads one
        // row and recompiles every host — without re-reading the site's thousands of other rows.
        let tt = performance.now();
        /** The site resource after this snapshot; undefined: the site is gone. */
        let topoSite: Pick<SiteTopology, "site"> | undefined;
        const reread = cached && refs ? rereadOf(written, site, refs) : undefined;
        tRead += performance.now() - tt;
        const siteGone = refs?.some((r) => r.kind === "site") && reread?.get(`sites/${site}`) === undefined;
        if (cached && refs && reread && !siteGone) {
          this.stats.incremental++;
          tt = performance.now();
          // Host parts do not read the site resource: what hosts take from it (the IPVS timeouts) is
          // the site part, compiled below for every transaction — a timeout change recompiles no host.
          // affected = hostsReading(before) ∪ hostsReading(after) (compile/incremental.ts), on the
          // cached topology changed in place: its indexes make this O(what the rows touch). In place
          // is safe because a failed transaction drops the whole cache (catch below).
          const topo = cached.topo;
          const hostRefs = refs.filter((r) => r.kind !== "site");
          const affected = new Set(topo.hostsReading(hostRefs));
          for (const [name, value] of reread) {
            const kind = resourceKind(name)!;
            if (kind === "site") topo.set("site", name, value as SiteTopology["site"]);
            else topo.set(kind, name, value as never);
          }
          for (const h of topo.hostsReading(hostRefs)) affected.add(h);
          hosts = [...affected].sort();
          states = compileHosts(topo, hosts, rev);
          topoSite = topo;
          tCompile += performance.now() - tt;
          entry = cached;
        } else {
          // Whole site: first time (or cache dropped), the site deleted, or a write of very many
          // resources.
          this.stats.full++;
          tt = performance.now();
          const topo = await loadSiteTopology(c, site);
          topoSite = topo;
          tRead += performance.now() - tt;
          tt = performance.now();
          states = topo ? compileSite(topo, rev) : new Map<string, HostDesiredState>();
          tCompile += performance.now() - tt;
          const existing = await c.query<{ host: string; revision: string; hash: string; present: boolean }>(
            "SELECT host, revision::text AS revision, hash, present FROM desired_states WHERE site = $1 ORDER BY host FOR UPDATE",
            [site],
          );
          const known = new Map(existing.rows.map((r) => [r.host, { revision: BigInt(r.revision), hash: r.hash, present: r.present }]));
          hosts = [...new Set([...states.keys(), ...known.keys()])].filter((h) => h !== SITE_PART).sort();
          entry = topo ? { topo: MutableTopology.from(topo), states: known } : null;
        }
        const known = entry?.states ?? cached?.states ?? new Map<string, HostState>();
        // What changed: host parts (the whole state without the site's timeouts) by hash, and the
        // site part (site-part.ts).
        const changed: Array<{ host: string; ds: HostDesiredState; present: boolean; floor: bigint }> = [];
        const exSite = known.get(SITE_PART);
        for (const host of hosts) {
          const present = states.has(host);
          const ex = known.get(host);
          if (!ex && !present) continue;
          const ds = hostPart(states.get(host) ?? emptyDesiredState(site, host));
          if (ex && ex.hash === ds.hash && ex.present === present) continue;
          // Stamps only go up, per part and joined (max of the two parts, which is what agents
          // compare): a new host part is stamped above its own last stamp and above the site part's.
          // The snapshot's max revision is that unless a lower revision committed late or a stamp was
          // bumped before; then it takes a fresh one from revision_seq.
          changed.push({ host, ds, present, floor: max(ex?.revision ?? 0n, exSite?.revision ?? 0n) });
        }
        const sitePart = topoSite ? compileSitePart(topoSite) : emptySitePart(site);
        const sitePresent = topoSite !== undefined;
        const siteChanged = !exSite || exSite.hash !== sitePart.hash || exSite.present !== sitePresent;
        let siteFloor = 0n;
        if (siteChanged) {
          // The site part is joined by every host: stamped above every host part, so each host's
          // joined revision rises.
          siteFloor = exSite?.revision ?? 0n;
          for (const [h, x] of known) if (h !== SITE_PART && x.revision > siteFloor) siteFloor = x.revision;
        }
        tt = performance.now();
        const needBumps = changed.filter((x) => rev <= x.floor).length + (siteChanged && rev <= siteFloor ? 1 : 0);
        const stamps = needBumps === 0 ? [] : (
          await c.query<{ r: string }>("SELECT nextval('revision_seq')::text AS r FROM generate_series(1, $1::int)", [needBumps])
        ).rows.map((x) => BigInt(x.r));
        if (siteChanged) sitePart.revision = rev <= siteFloor ? stamps.shift()! : rev;
        const siteRevision = siteChanged ? sitePart.revision : (exSite?.revision ?? 0n);
        for (const x of changed) {
          x.ds.revision = rev <= x.floor ? stamps.shift()! : rev;
          x.ds.site = site;
          x.ds.host = x.host;
          x.ds.siteRevision = siteRevision;
        }
        bumps += needBumps;
        const out: Array<{ host: string; revision: bigint; hash: string; state: Uint8Array; present: boolean }> = changed.map((x) => ({
          host: x.host,
          revision: x.ds.revision,
          hash: x.ds.hash,
          state: toBinary(HostDesiredStateSchema, x.ds),
          present: x.present,
        }));
        if (siteChanged) {
          // Each host part's revision as of this transaction: an agent joins this site part only with
          // a host part at least that new (agents/hostagent/sync/combine.ts).
          for (const [h, x] of known) if (h !== SITE_PART) sitePart.hostRevisions[h] = x.revision;
          for (const x of changed) sitePart.hostRevisions[x.host] = x.ds.revision;
          out.push({ host: SITE_PART, revision: sitePart.revision, hash: sitePart.hash, state: toBinary(SiteDesiredStateSchema, sitePart), present: sitePresent });
        }
        if (out.length > 0) {
          // One statement for every changed host of the site (a round trip per host was ≈1 s for a
          // 1 000-host site change).
          await c.query(
            `INSERT INTO desired_states (site, host, revision, hash, state, present, published, updated_at)
             SELECT $1, u.host, u.revision, u.hash, u.state, u.present, false, now()
               FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::boolean[]) AS u(host, revision, hash, state, present)
             ON CONFLICT (site, host) DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash,
               state = EXCLUDED.state, present = EXCLUDED.present, published = false, updated_at = now()`,
            [
              site,
              out.map((x) => x.host),
              out.map((x) => x.revision.toString()),
              out.map((x) => x.hash),
              out.map((x) => Buffer.from(x.state)),
              out.map((x) => x.present),
            ],
          );
        }
        // In place, like the topology: a failed transaction drops the whole cache.
        if (entry) for (const x of out) entry.states.set(x.host, { revision: x.revision, hash: x.hash, present: x.present });
        tWrite += performance.now() - tt;
        staged.set(site, entry);
        compiled += out.length;
      }
      // One round trip again; the ids are bigint::text, digits only.
      await c.query(`DELETE FROM outbox WHERE id = ANY('{${taken.rows.map((r) => r.id).join(",")}}'::bigint[]); COMMIT`);
      this.token = head.rows[0]!.n;
      for (const [site, entry] of staged) {
        if (entry) this.cache.set(site, entry);
        else this.cache.delete(site);
      }
      this.stats.compiled += compiled;
      if (compiled > 0) this.unpublished = true;
      this.stats.bumps += bumps;
      this.stats.compileMs += performance.now() - t0;
      const ms = (x: number) => Math.round(x * 10) / 10;
      this.log.debug(
        { rows: taken.rows.length, sites: bySite.size, hosts: compiled, revision: rev.toString(),
          ms: { total: ms(performance.now() - t0), connect: ms(tConn), head: ms(tHead), read: ms(tRead), compile: ms(tCompile), write: ms(tWrite) } },
        "outbox compiled",
      );
      return taken.rows.length;
    } catch (err) {
      // Whatever this transaction read or staged is void; the cache may be ahead of the database.
      this.cache.clear();
      this.token = "";
      await c.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      c.release(broken || undefined);
    }
  }

  // --- B: desired_states → KV -------------------------------------------------------------------------

  private ensureNats(): NatsConnection | undefined {
    if (this.nc && !this.nc.isClosed()) return this.nc;
    this.connecting ??= (async () => {
      try {
        this.nc = await connect({
          servers: this.o.natsUrl,
          name: `lvsfleet-relay ${this.id}`,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 250,
          timeout: 3000,
        });
        if (this.stopped) {
          await this.nc.close().catch(() => undefined);
          return;
        }
        this.kv = undefined;
        this.publisher = new PipelinedPublisher(this.nc, `KV_${this.bucket}`);
        this.natsUp = true;
        void (async () => {
          for await (const s of this.nc!.status()) {
            if (s.type === "reconnect") {
              // The server may have restarted without its data: check the marker at once.
              this.natsUp = true;
              this.kv = undefined;
              this.lastMarkerCheck = 0;
              this.waker.wake();
            } else if (s.type === "disconnect") {
              this.natsUp = false;
              this.log.warn("relay disconnected from NATS");
            }
          }
        })();
        this.log.info("relay connected to NATS");
        this.waker.wake();
      } catch (err) {
        this.log.warn({ err: String(err) }, "relay cannot reach NATS; outbox keeps filling, will catch up");
      } finally {
        this.connecting = undefined;
      }
    })();
    return undefined;
  }

  /** Opens (creating if needed) the bucket. A recreated bucket has no marker: republish follows. */
  private async bucketKv(nc: NatsConnection): Promise<KV> {
    if (this.kv) return this.kv;
    this.kv = await new Kvm(jetstream(nc, { timeout: 3000 })).create(this.bucket, { history: 1, timeout: 3000 });
    this.os = undefined;
    this.lastMarkerCheck = 0;
    return this.kv;
  }

  /** Opens (creating if needed) the Object Store bucket of the same name, for states above the inline limit. */
  private async objectStore(nc: NatsConnection): Promise<ObjectStore> {
    this.os ??= await new Objm(jetstream(nc, { timeout: 5000 })).create(this.bucket);
    return this.os;
  }

  /**
   * Each row's KV value: its state when it fits, otherwise a reference to the state put as an object
   * first. The object name is content-addressed, so an object already there (a republish) is not put
   * again — and one lost with NATS's data is.
   */
  private async outgoing(nc: NatsConnection, rows: ReadonlyArray<{ host: string; state: Buffer }>): Promise<Outgoing[]> {
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const limit = this.o.inlineMaxBytes ?? inlineLimit(maxPayload);
    const chunk = Math.min(128 * 1024, inlineLimit(maxPayload));
    const out: Outgoing[] = rows.map((r) => ({ ok: true, value: r.state, object: "" }));
    // Host parts only: the site part (one host_revisions entry per host, ≈20 bytes each) stays inline;
    // agents read it from a plain subscription (sync/watch.ts).
    const large = rows.flatMap((r, i) => (r.state.length > limit && r.host !== SITE_PART ? [i] : []));
    let next = 0;
    const worker = async () => {
      while (next < large.length) {
        const i = large[next++]!;
        try {
          const so = await packStateObject(rows[i]!.state, { deflate: this.o.deflateObjects ?? true });
          const os = await this.objectStore(nc);
          const have = await os.info(so.name);
          if (!have || have.deleted || have.size !== so.bytes.length || have.digest !== objectStoreDigest(so.sha256)) {
            await os.putBlob({ name: so.name, options: { max_chunk_size: chunk } }, so.bytes);
            this.stats.objectsPut++;
          }
          out[i] = { ok: true, value: so.reference, object: so.name };
        } catch (err) {
          out[i] = { ok: false, error: `state object: ${String((err as Error)?.message ?? err)}` };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(OBJECT_PUT_CONCURRENCY, large.length) }, worker));
    return out;
  }

  /** A host's KV value at `revision` is confirmed: objects two values back are superseded. */
  private supersede(key: string, revision: string, name: string): void {
    const kept = this.objects.get(key);
    if (!kept) {
      if (name) this.objects.set(key, [{ revision, name }]); // hosts that never had an object are not tracked
      return;
    }
    if (kept.at(-1)?.revision !== revision || kept.at(-1)?.name !== name) kept.push({ revision, name });
    while (kept.length > 2) {
      const old = kept.shift()!;
      if (old.name && !kept.some((k) => k.name === old.name)) this.doomed.add(old.name);
    }
    if (kept.every((k) => !k.name)) this.objects.delete(key);
  }

  private async deleteSuperseded(): Promise<void> {
    if (this.doomed.size === 0 || !this.os) return;
    for (const name of [...this.doomed]) {
      const key = objectHostKey(name);
      if (key && this.objects.get(key)?.some((k) => k.name === name)) {
        this.doomed.delete(name); // current again (cannot happen with content-addressed names; cheap to check)
        continue;
      }
      try {
        await this.os.delete(name);
        this.doomed.delete(name);
        this.stats.objectsDeleted++;
      } catch (err) {
        this.log.debug({ object: name, err: String(err) }, "state object not deleted; will retry");
        return;
      }
    }
  }

  /**
   * After a full republish: the objects that no KV value of this relay points at are another
   * leader's (a takeover) or left over from a crash. Per host the newest of them is kept as the
   * previous value (an agent may still read it), the rest deleted.
   */
  private async sweepObjects(nc: NatsConnection): Promise<void> {
    let os: ObjectStore;
    try {
      os = this.os ?? (await new Objm(jetstream(nc, { timeout: 5000 })).open(this.bucket));
    } catch {
      return; // no object store: nothing was ever offloaded
    }
    const byHost = new Map<string, Array<{ name: string; mtime: string }>>();
    for (const info of await os.list()) {
      const key = objectHostKey(info.name);
      if (!key || info.deleted) continue;
      const l = byHost.get(key) ?? [];
      l.push({ name: info.name, mtime: info.mtime });
      byHost.set(key, l);
    }
    for (const [key, infos] of byHost) {
      const kept = this.objects.get(key) ?? [];
      const others = infos.filter((o) => !kept.some((k) => k.name === o.name)).sort((a, b) => b.mtime.localeCompare(a.mtime));
      if (kept.length < 2 && others.length > 0) {
        kept.unshift({ revision: "", name: others.shift()!.name });
        this.objects.set(key, kept);
      }
      for (const o of others) this.doomed.add(o.name);
    }
    this.os = os;
    await this.deleteSuperseded();
  }

  /** Publishes what is pending; undefined when NATS is unavailable (retry later). */
  private async publish(lost: () => boolean): Promise<number | undefined> {
    const nc = this.ensureNats();
    if (!nc || nc.isClosed() || !this.natsUp) return undefined;
    let kv: KV;
    try {
      kv = await this.bucketKv(nc);
      if (Date.now() - this.lastMarkerCheck >= this.markerCheckMs) {
        const m = await kv.get(MARKER_KEY);
        this.lastMarkerCheck = Date.now();
        const value = m && m.operation === "PUT" ? m.string() : "";
        if (value !== this.epoch && !this.republishAll) {
          this.log.warn({ found: value || null }, "NATS lost the desired states (marker missing); republishing every host");
          this.republishAll = true;
        }
      }
    } catch (err) {
      this.kv = undefined;
      this.log.debug({ err: String(err) }, "KV unavailable");
      return undefined;
    }
    const all = this.republishAll;
    let n = 0;
    let after: [string, string] = ["", ""];
    for (;;) {
      if (lost() || this.stopped) return n;
      type Row = { site: string; host: string; revision: string; state: Buffer; n: string };
      // Up to batchSize rows and about PUBLISH_BATCH_BYTES of state (at least one row); `n` = rows
      // before the byte cut.
      const batch = (where: string) => `
        SELECT site, host, revision, state, n FROM (
          SELECT site, host, revision::text AS revision, state, count(*) OVER () AS n,
                 sum(octet_length(state)) OVER (ORDER BY site, host) - octet_length(state) AS before
            FROM (SELECT site, host, revision, state FROM desired_states WHERE ${where} ORDER BY site, host LIMIT $1) d) x
         WHERE before < $2 ORDER BY site, host`;
      const r = all
        ? await this.db.query<Row>(batch("(site, host) > ($3, $4)"), [this.batchSize, this.o.publishBatchBytes ?? PUBLISH_BATCH_BYTES, after[0], after[1]])
        : await this.db.query<Row>(batch("NOT published"), [this.batchSize, this.o.publishBatchBytes ?? PUBLISH_BATCH_BYTES]);
      if (r.rows.length === 0) break;
      const tSel = performance.now();
      // States above the inline limit: their object first, confirmed, then the reference as the KV value.
      const values = await this.outgoing(nc, r.rows);
      const sent = values.flatMap((v, i) => (v.ok ? [i] : []));
      const acks = await this.publisher!.publish(
        sent.map((i) => ({ subject: `$KV.${this.bucket}.${desiredStateKey(r.rows[i]!.site, r.rows[i]!.host)}`, data: (values[i] as { value: Uint8Array }).value })),
        { window: this.putConcurrency, timeoutMs: 5000 },
      );
      const results = values.map((v) => (v.ok ? undefined : v)) as Array<{ ok: boolean; error?: string } | undefined>;
      sent.forEach((i, j) => (results[i] = acks[j]!));
      // Only what the stream confirmed is marked, and only the revision that was put: a newer one
      // compiled meanwhile stays pending. Unconfirmed puts stay pending and go again next pass.
      const ok = r.rows.filter((_, i) => results[i]!.ok);
      this.stats.published += ok.length;
      const tPut = performance.now();
      if (ok.length > 0) {
        await this.db.query(
          `UPDATE desired_states d SET published = true
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS p(site, host, revision)
            WHERE d.site = p.site AND d.host = p.host AND d.revision = p.revision`,
          [ok.map((x) => x.site), ok.map((x) => x.host), ok.map((x) => x.revision)],
        );
      }
      for (let i = 0; i < r.rows.length; i++) {
        const v = values[i]!;
        if (results[i]!.ok && v.ok) this.supersede(desiredStateKey(r.rows[i]!.site, r.rows[i]!.host), r.rows[i]!.revision, v.object);
      }
      await this.deleteSuperseded();
      this.log.debug({ puts: r.rows.length, ms: { put: Math.round(tPut - tSel), mark: Math.round(performance.now() - tPut) } }, "published");
      if (ok.length < r.rows.length) {
        const failed = results.find((x) => !x!.ok) as { error: string };
        this.stats.unconfirmed += r.rows.length - ok.length;
        this.kv = undefined;
        this.log.warn({ unconfirmed: r.rows.length - ok.length, of: r.rows.length, err: failed.error }, "KV puts not confirmed; will retry");
        return undefined;
      }
      n += r.rows.length;
      const last = r.rows[r.rows.length - 1]!;
      after = [last.site, last.host];
      if (r.rows.length === Number(last.n) && r.rows.length < this.batchSize) break;
    }
    if (all) {
      try {
        await kv.put(MARKER_KEY, this.epoch);
      } catch (err) {
        this.kv = undefined;
        return undefined;
      }
      this.republishAll = false;
      this.lastMarkerCheck = Date.now();
      this.stats.republishes++;
      await this.sweepObjects(nc).catch((err) => this.log.warn({ err: String(err) }, "sweep of unreferenced state objects failed"));
      this.log.info({ hosts: n }, "republished every host's desired state");
    }
    return n;
  }
}
