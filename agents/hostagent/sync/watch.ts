// Watches this host's own key (`<site>.<host>`, the host part of its desired state) and the site's
// shared key (`<site>._site`, the site part) in the JetStream KV bucket, joins the two
// (combine.ts) and hands every whole desired state to `onState`.
//  - the own key: one single-key KV watch (an ordered consumer; fine on nats-server 2.9, where a
//    multi-filter consumer would need 2.10);
//  - the site key: a plain subscription to its subject `$KV.<bucket>.<site>._site` (every put is a
//    message on it) plus a get of the key whenever the host watch (re)starts and on every resync.
//    Every agent of the site shares that key: 1 000 agents each with a second consumer on it made
//    the server spend its time creating and feeding consumers (JetStream API timeouts at start, a
//    timeout change took seconds to reach them all — bench:fanout), while one message to 1 000
//    subscribers is plain NATS fan-out. A put missed while disconnected is caught by the get that
//    follows every reconnect; an older value arriving late is dropped by the join (newest wins).
//
// What makes it robust:
//  - the watch starts with the key's last value (KV "LastValue"), so a (re)started watch always
//    delivers the current state, wherever the agent was before;
//  - after every reconnect the watch is torn down and made again: a server that restarted (or lost
//    its data and had the bucket recreated by the relay) has none of the old consumer state;
//  - a periodic get of the key (resync) backs the watch up in case a push consumer stalled silently;
//  - every retry waits a jittered backoff so a fleet does not reconnect in lockstep.
// A host part too large for one NATS message arrives as a reference (`state_object`): the part is
// fetched from the Object Store bucket named like the KV bucket and checked (state-object.ts) before
// it is joined; a missing or corrupt object is retried with backoff and reported through onSyncError,
// never joined. The same reference seen again (resync) is not fetched again.
// Ordering/"never older" is the caller's job (sync/agent.ts): this module only delivers.
import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { DesiredStateJoin } from "./combine.js";
import { decodeSitePartFor } from "./site-part-codec.js";
import { jitteredBackoff, sleep } from "./backoff.js";
import type { Log } from "./log.js";
import { fetchStateObject, MAX_STATE_BYTES, unpackStateObject } from "./state-object.js";
import type { ObjectError } from "../kernel/backend.js";

export interface DesiredStateWatchOptions {
  nc: NatsConnection;
  bucket: string;
  site: string;
  host: string;
  onState(state: HostDesiredState): void;
  resyncMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  log: Log;
  /** The host part could not be fetched (an error to report), or undefined once it could again. */
  onSyncError?(error: ObjectError | undefined): void;
  /** How long reading one state object may take (ms); default 5 s + 1 ms per KB (a floor of 1 MB/s). */
  objectTimeoutMs?: number;
}

type Iter = Awaited<ReturnType<KV["watch"]>>;

/** Key of the site part (`<site>._site`; host ids start with a letter, so no host has it). */
export const SITE_PART = "_site";

export class DesiredStateWatch {
  /** The host part's key. */
  readonly key: string;
  /** The site part's key. */
  readonly siteKey: string;
  private readonly stop = new AbortController();
  private readonly iters = new Map<string, Iter>();
  private readonly join = new DesiredStateJoin();
  private kv: KV | undefined;
  private os: ObjectStore | undefined;
  /** Newest host part handed to the join: a reference to it or an older one is not fetched again. */
  private hostRevision = 0n;
  /** The reference being fetched (retried until it succeeds or a newer host part supersedes it). */
  private fetching: HostDesiredState | undefined;
  private loops: Promise<void>[] = [];
  private siteSub: Subscription | undefined;
  private statusLoop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** False between a disconnect and the reconnect: requests then only sit until they time out. */
  private connected = true;

  constructor(private readonly o: DesiredStateWatchOptions) {
    // Site and host are single subject tokens (validated in config.ts), so this is one exact key.
    this.key = `${o.site}.${o.host}`;
    this.siteKey = `${o.site}.${SITE_PART}`;
  }

  start(): void {
    this.loops = [this.watchLoop(this.key)];
    this.siteSub = this.o.nc.subscribe(`$KV.${this.o.bucket}.${this.siteKey}`, {
      callback: (err, msg) => {
        if (err || this.stop.signal.aborted) return;
        // Deletes and purges carry a KV-Operation header and no value: not a state.
        if (msg.headers?.get("KV-Operation")) return;
        this.deliverValue(this.siteKey, msg.data);
      },
    });
    this.statusLoop = this.watchStatus();
    // First resync at a random point of the period: agents started together (a fleet restart, the
    // bench's 1 000) would otherwise all send their two gets in the same instant, every period.
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = setInterval(() => void this.resync(), this.o.resyncMs);
      this.resyncTimer.unref();
      void this.resync();
    }, Math.random() * this.o.resyncMs);
    this.resyncTimer.unref();
  }

  async close(): Promise<void> {
    this.stop.abort();
    clearTimeout(this.resyncTimer); // the first (a timeout) or the periodic one (an interval): either clears both
    for (const it of this.iters.values()) it.stop();
    this.siteSub?.unsubscribe();
    await Promise.all(this.loops);
    // The status iterator ends when the connection closes (the caller owns the connection).
  }

  /** Tear the watch down and make it again (after a reconnect or a failed resync). */
  restart(): void {
    for (const it of this.iters.values()) it.stop();
  }

  /** Reads both keys directly; delivers what is present. */
  async resync(): Promise<void> {
    if (this.stop.signal.aborted || !this.connected) return;
    try {
      const kv = this.kv ?? (await new Kvm(this.o.nc).open(this.o.bucket));
      const [host, site] = await Promise.all([kv.get(this.key), kv.get(this.siteKey)]);
      if (site) this.deliver(site);
      if (host) this.deliver(host);
    } catch (err) {
      this.o.log.debug({ err: String(err) }, "resync failed; rewatching");
      this.restart();
    }
  }

  private deliver(e: KvEntry): void {
    // Deletes/purges carry no state; a removed host gets an empty HostDesiredState instead.
    if (e.operation !== "PUT") return;
    this.deliverValue(e.key, e.value);
  }

  private deliverValue(key: string, value: Uint8Array): void {
    if (value.length === 0) return;
    const e = { key, value };
    let whole: HostDesiredState | undefined;
    try {
      if (e.key === this.siteKey) {
        const part = decodeSitePartFor(e.value, this.o.host);
        if (part.site !== this.o.site) {
          this.o.log.warn({ key: e.key, site: part.site }, "site part of another site ignored");
          return;
        }
        whole = this.join.offerSite(part);
      } else {
        const ds = fromBinary(HostDesiredStateSchema, e.value);
        if (ds.site !== this.o.site || ds.host !== this.o.host) {
          this.o.log.warn({ key: e.key, site: ds.site, host: ds.host }, "desired state for another host ignored");
          return;
        }
        if (ds.stateObject) {
          this.fetchReferenced(ds);
          return;
        }
        whole = this.offerHost(ds);
      }
    } catch (err) {
      this.o.log.warn({ key: e.key, err: String(err) }, "undecodable desired state ignored");
      return;
    }
    if (whole) this.o.onState(whole);
  }

  private offerHost(ds: HostDesiredState): HostDesiredState | undefined {
    if (ds.revision > this.hostRevision) this.hostRevision = ds.revision;
    if (this.fetching && this.fetching.revision <= ds.revision) {
      // Superseded: whatever failed about the older reference no longer matters.
      this.fetching = undefined;
      this.o.onSyncError?.(undefined);
    }
    return this.join.offerHost(ds);
  }

  private fetchReferenced(ref: HostDesiredState): void {
    if (ref.revision <= this.hostRevision) return; // joined already (a resync repeats the value)
    if (this.fetching && this.fetching.revision >= ref.revision) return; // it or a newer one is underway
    this.fetching = ref;
    void this.fetchLoop(ref);
  }

  /** Fetches the referenced host part until it is joined or superseded; each failure is reported. */
  private async fetchLoop(ref: HostDesiredState): Promise<void> {
    const name = ref.stateObject!.name;
    const size = Number(ref.stateObject!.size);
    for (let attempt = 0; !this.stop.signal.aborted && this.fetching === ref; attempt++) {
      if (!this.connected) {
        await sleep(50, this.stop.signal);
        attempt--;
        continue;
      }
      try {
        if (size > MAX_STATE_BYTES) throw new Error(`object ${name}: ${size} bytes is over the limit`);
        this.os ??= await new Objm(this.o.nc).open(this.o.bucket);
        const bytes = await fetchStateObject(this.os, name, { maxBytes: size, timeoutMs: this.o.objectTimeoutMs ?? 5000 + size / 1000 });
        const ds = await unpackStateObject(ref, bytes);
        if (this.stop.signal.aborted || this.fetching !== ref) return;
        this.o.log.debug({ object: name, bytes: size, revision: ref.revision.toString() }, "host part fetched from the object store");
        const whole = this.offerHost(ds);
        if (whole) this.o.onState(whole);
        return;
      } catch (err) {
        if (this.stop.signal.aborted || this.fetching !== ref) return;
        this.os = undefined;
        const message = String((err as Error)?.message ?? err);
        this.o.log.warn({ object: name, revision: ref.revision.toString(), err: message, attempt }, "desired state object not usable; retrying");
        this.o.onSyncError?.({ object: `desired-state ${this.key} revision ${ref.revision}`, operation: "fetch", message });
      }
      await sleep(jitteredBackoff(attempt, this.o.backoffBaseMs, this.o.backoffMaxMs), this.stop.signal);
    }
  }

  private async watchLoop(key: string): Promise<void> {
    let attempt = 0;
    while (!this.stop.signal.aborted) {
      while (!this.connected && !this.stop.signal.aborted) await sleep(50, this.stop.signal);
      try {
        if (this.o.nc.isClosed()) return;
        const kv = await new Kvm(this.o.nc).open(this.o.bucket);
        // open() only binds; the first request tells whether the bucket exists.
        await kv.status();
        const iter = await kv.watch({ key, ignoreDeletes: true });
        this.kv = kv;
        this.iters.set(key, iter);
        if (this.stop.signal.aborted) iter.stop();
        // The site part has no watch (see the top): read it now that the subscription is live, so
        // a put before it is not missed.
        void this.resync();
        let got = false;
        for await (const e of iter) {
          if (!got) {
            got = true;
            attempt = 0;
          }
          this.deliver(e);
        }
        // The iterator ended: stop(), restart() or a consumer failure. Re-check the key at once.
        if (!this.stop.signal.aborted) void this.resync();
      } catch (err) {
        if (this.stop.signal.aborted) return;
        this.o.log.debug({ err: String(err), bucket: this.o.bucket }, "watch failed; retrying");
      } finally {
        this.iters.delete(key);
      }
      if (this.stop.signal.aborted) return;
      await sleep(jitteredBackoff(attempt++, this.o.backoffBaseMs, this.o.backoffMaxMs), this.stop.signal);
    }
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.o.nc.status()) {
      if (this.stop.signal.aborted) return;
      if (s.type === "disconnect") this.connected = false;
      if (s.type === "reconnect") {
        this.connected = true;
        this.o.log.info({ server: (s as { server?: string }).server }, "reconnected to NATS; rewatching");
        this.kv = undefined;
        this.os = undefined;
        this.restart();
      }
    }
  }
}
