// The relay: outbox (Postgres) → per-host desired state → JetStream KV bucket `lvsfleet-desired`.
//
//   write tx ──(outboxHook: INSERT outbox, NOTIFY)──▶ outbox ──(A: compile)──▶ desired_states ──(B: put)──▶ KV <site>.<host>
//
// A. compile (Postgres only, so it keeps working while NATS is down). One REPEATABLE READ
//    transaction: take outbox rows, read the affected sites' topology in the same snapshot, compile,
//    upsert desired_states for the hosts whose hash changed, DELETE the rows taken, COMMIT.
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
//    carries revision + hash) and then marked. A put that fails (NATS down) is retried on the next
//    pass, so the relay catches up when NATS returns. After a takeover, and whenever the marker key
//    shows that NATS lost its data, every host's state is put again from desired_states.
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
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { compileSite, desiredStateKey, hashDesiredState } from "../compile/index.js";
import { OUTBOX_CHANNEL } from "./outbox.js";
import { loadSiteTopology } from "./topology.js";

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
  /** Concurrent KV puts. */
  putConcurrency?: number;
}

export interface RelayStats {
  /** desired_states rows written (hosts whose state changed). */
  compiled: number;
  /** KV puts that succeeded. */
  published: number;
  /** Full republishes (takeover, NATS data loss). */
  republishes: number;
  /** Times this relay became leader. */
  leaderships: number;
  /** Stamps taken from revision_seq because a late commit changed an already stamped host. */
  bumps: number;
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

function jitter(ms: number): number {
  return Math.floor(ms / 2 + Math.random() * ms);
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]!);
  });
  await Promise.all(workers);
}

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
  readonly stats: RelayStats = { compiled: 0, published: 0, republishes: 0, leaderships: 0, bumps: 0 };
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
  private epoch = "";
  /** False between a disconnect and the reconnect: requests then would only sit until they time out. */
  private natsUp = false;
  private republishAll = true;
  private lastMarkerCheck = 0;
  private busy = true;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly o: RelayOptions) {
    this.log = o.log ?? silent;
    this.bucket = o.bucket ?? DESIRED_BUCKET;
    this.lockKey = o.lockKey ?? RELAY_LOCK_KEY;
    this.pollMs = o.pollMs ?? 500;
    this.lockRetryMs = o.lockRetryMs ?? 1000;
    this.markerCheckMs = o.markerCheckMs ?? 1000;
    this.batchSize = o.batchSize ?? 500;
    this.putConcurrency = o.putConcurrency ?? 64;
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
    await this.nc?.close().catch(() => undefined);
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
        if ((await this.compileBatch()) > 0) work = true;
        if (this.stopped || lost()) return;
        const published = await this.publish(lost);
        if (published === undefined) work = true; // NATS unavailable: keep retrying
        failures = 0;
      } catch (err) {
        work = true;
        failures++;
        this.log.warn({ err: String(err) }, "relay pass failed; retrying");
      }
      // A cheap liveness check of the lock session; a dead one ends leadership.
      await this.lockClient!.query("SELECT 1");
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
    const c = await this.o.pool.connect();
    let broken = false;
    try {
      await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
      const taken = await c.query<{ id: string; site: string }>(
        "SELECT id::text AS id, site FROM outbox ORDER BY id LIMIT $1 FOR UPDATE",
        [this.batchSize],
      );
      if (taken.rows.length === 0) {
        await c.query("COMMIT");
        return 0;
      }
      // The highest revision this snapshot contains (bumped stamps are not in audit_log; see below).
      const rev = BigInt((await c.query<{ r: string }>("SELECT coalesce(max(revision), 0)::text AS r FROM audit_log")).rows[0]!.r);
      const sites = [...new Set(taken.rows.map((r) => r.site))].sort();
      let compiled = 0;
      let bumps = 0;
      for (const site of sites) {
        const topo = await loadSiteTopology(c, site);
        const states = topo ? compileSite(topo, rev) : new Map<string, HostDesiredState>();
        const existing = new Map(
          (
            await c.query<{ host: string; revision: string; hash: string; present: boolean }>(
              "SELECT host, revision::text AS revision, hash, present FROM desired_states WHERE site = $1 ORDER BY host FOR UPDATE",
              [site],
            )
          ).rows.map((r) => [r.host, r]),
        );
        const hosts = [...new Set([...states.keys(), ...existing.keys()])].sort();
        for (const host of hosts) {
          const present = states.has(host);
          const ds = states.get(host) ?? emptyDesiredState(site, host);
          const ex = existing.get(host);
          if (!ex && !present) continue;
          if (ex && ex.hash === ds.hash && ex.present === present) continue;
          let stamp = rev;
          if (ex && stamp <= BigInt(ex.revision)) {
            // A change committed after this host was stamped at a revision ≥ the snapshot's max
            // (a lower revision committed late, or an earlier bump): take a new, higher revision.
            stamp = BigInt((await c.query<{ r: string }>("SELECT nextval('revision_seq')::text AS r")).rows[0]!.r);
            bumps++;
          }
          ds.revision = stamp;
          ds.site = site;
          ds.host = host;
          await c.query(
            `INSERT INTO desired_states (site, host, revision, hash, state, present, published, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, false, now())
             ON CONFLICT (site, host) DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash,
               state = EXCLUDED.state, present = EXCLUDED.present, published = false, updated_at = now()`,
            [site, host, stamp.toString(), ds.hash, Buffer.from(toBinary(HostDesiredStateSchema, ds)), present],
          );
          compiled++;
        }
      }
      await c.query("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [taken.rows.map((r) => r.id)]);
      await c.query("COMMIT");
      this.stats.compiled += compiled;
      this.stats.bumps += bumps;
      this.log.debug({ rows: taken.rows.length, sites: sites.length, hosts: compiled, revision: rev.toString() }, "outbox compiled");
      return taken.rows.length;
    } catch (err) {
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
    this.lastMarkerCheck = 0;
    return this.kv;
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
      type Row = { site: string; host: string; revision: string; state: Buffer };
      const r = all
        ? await this.o.pool.query<Row>(
            `SELECT site, host, revision::text AS revision, state FROM desired_states
              WHERE (site, host) > ($1, $2) ORDER BY site, host LIMIT $3`,
            [after[0], after[1], this.batchSize],
          )
        : await this.o.pool.query<Row>(
            `SELECT site, host, revision::text AS revision, state FROM desired_states
              WHERE NOT published ORDER BY site, host LIMIT $1`,
            [this.batchSize],
          );
      if (r.rows.length === 0) break;
      try {
        await mapLimit(r.rows, this.putConcurrency, async (row) => {
          await kv.put(desiredStateKey(row.site, row.host), row.state);
          this.stats.published++;
        });
      } catch (err) {
        this.kv = undefined;
        this.log.warn({ err: String(err) }, "KV put failed; will retry");
        return undefined;
      }
      // Only the revision that was put is marked: a newer one compiled meanwhile stays pending.
      await this.o.pool.query(
        `UPDATE desired_states d SET published = true
           FROM unnest($1::text[], $2::text[], $3::bigint[]) AS p(site, host, revision)
          WHERE d.site = p.site AND d.host = p.host AND d.revision = p.revision`,
        [r.rows.map((x) => x.site), r.rows.map((x) => x.host), r.rows.map((x) => x.revision)],
      );
      n += r.rows.length;
      const last = r.rows[r.rows.length - 1]!;
      after = [last.site, last.host];
      if (r.rows.length < this.batchSize) break;
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
      this.log.info({ hosts: n }, "republished every host's desired state");
    }
    return n;
  }
}
