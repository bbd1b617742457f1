// Watches this host's own key (`<site>.<host>`) in the JetStream KV bucket and hands every desired
// state it sees to `onState`. One filtered watch per agent: fine on nats-server 2.9 (multi-filter
// consumers need 2.10).
//
// What makes it robust:
//  - the watch starts with the key's last value (KV "LastValue"), so a (re)started watch always
//    delivers the current state, wherever the agent was before;
//  - after every reconnect the watch is torn down and made again: a server that restarted (or lost
//    its data and had the bucket recreated by the relay) has none of the old consumer state;
//  - a periodic get of the key (resync) backs the watch up in case a push consumer stalled silently;
//  - every retry waits a jittered backoff so a fleet does not reconnect in lockstep.
// Ordering/"never older" is the caller's job (sync/agent.ts): this module only delivers.
import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { jitteredBackoff, sleep } from "./backoff.js";
import type { Log } from "./log.js";

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
}

type Iter = Awaited<ReturnType<KV["watch"]>>;

export class DesiredStateWatch {
  readonly key: string;
  private readonly stop = new AbortController();
  private iter: Iter | undefined;
  private kv: KV | undefined;
  private loop: Promise<void> | undefined;
  private statusLoop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** False between a disconnect and the reconnect: requests then only sit until they time out. */
  private connected = true;

  constructor(private readonly o: DesiredStateWatchOptions) {
    // Site and host are single subject tokens (validated in config.ts), so this is one exact key.
    this.key = `${o.site}.${o.host}`;
  }

  start(): void {
    this.loop = this.watchLoop();
    this.statusLoop = this.watchStatus();
    this.resyncTimer = setInterval(() => void this.resync(), this.o.resyncMs);
    this.resyncTimer.unref();
  }

  async close(): Promise<void> {
    this.stop.abort();
    clearInterval(this.resyncTimer);
    this.iter?.stop();
    await this.loop;
    // The status iterator ends when the connection closes (the caller owns the connection).
  }

  /** Tear the watch down and make it again (after a reconnect or a failed resync). */
  restart(): void {
    this.iter?.stop();
  }

  /** Reads the key directly; delivers it if present. */
  async resync(): Promise<void> {
    if (this.stop.signal.aborted || !this.connected) return;
    try {
      const kv = this.kv ?? (await new Kvm(this.o.nc).open(this.o.bucket));
      const e = await kv.get(this.key);
      if (e) this.deliver(e);
    } catch (err) {
      this.o.log.debug({ err: String(err) }, "resync failed; rewatching");
      this.restart();
    }
  }

  private deliver(e: KvEntry): void {
    // Deletes/purges carry no state; a removed host gets an empty HostDesiredState instead.
    if (e.operation !== "PUT" || e.value.length === 0) return;
    let ds: HostDesiredState;
    try {
      ds = fromBinary(HostDesiredStateSchema, e.value);
    } catch (err) {
      this.o.log.warn({ key: e.key, err: String(err) }, "undecodable desired state ignored");
      return;
    }
    if (ds.site !== this.o.site || ds.host !== this.o.host) {
      this.o.log.warn({ key: e.key, site: ds.site, host: ds.host }, "desired state for another host ignored");
      return;
    }
    this.o.onState(ds);
  }

  private async watchLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stop.signal.aborted) {
      while (!this.connected && !this.stop.signal.aborted) await sleep(50, this.stop.signal);
      try {
        if (this.o.nc.isClosed()) return;
        const kv = await new Kvm(this.o.nc).open(this.o.bucket);
        // open() only binds; the first request tells whether the bucket exists.
        await kv.status();
        const iter = await kv.watch({ key: this.key, ignoreDeletes: true });
        this.kv = kv;
        this.iter = iter;
        if (this.stop.signal.aborted) iter.stop();
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
        this.iter = undefined;
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
        this.restart();
      }
    }
  }
}
