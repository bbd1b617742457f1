// Pipelined JetStream publishing for the relay: many KV puts in flight, every one confirmed.
//
// A KV put is a JetStream publish to `$KV.<bucket>.<key>`; the stream answers on the reply subject
// with a PubAck `{"stream":"KV_<bucket>","seq":N}` once the message is stored (or with an error /
// a 503 "no responders" status). nats.js's kv.put() does that as one request per key and awaits it;
// each request allocates a request object, a timer and an Error (for its stack), and a caller awaiting
// one put at a time pays a round trip per key. Measured: ≈850 puts/s at 64 in flight
// (docs/benchmarks.md, "Fleet fan-out").
//
// Here one wildcard subscription `<inbox>.*` receives every PubAck; each publish carries reply
// `<inbox>.<n>`; a batch resolves when each of its messages has its own PubAck naming the expected
// stream, and reports per message what happened. Nothing is inferred: a message counts as stored only
// when its own PubAck says so; a missing PubAck (server died, message dropped) is a timeout, an error
// PubAck or a 503 is a failure — either way that message is reported as not stored and the caller
// (relay.ts) leaves its desired state unpublished, to be put again on the next pass. Puts are
// idempotent (the value carries its revision; agents ignore anything not newer), so re-putting a
// message that did land but whose PubAck was lost is harmless.
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";

export interface PublishItem {
  subject: string;
  data: Uint8Array;
}

/** Per item: the stream sequence it was stored at, or why it was not confirmed. */
export type PublishResult = { ok: true; seq: number } | { ok: false; error: string };

export interface PublishBatchOptions {
  /** Messages in flight at most (one window is published, then its PubAcks awaited). */
  window?: number;
  /** How long a window waits for its PubAcks before the missing ones count as failed (ms). */
  timeoutMs?: number;
}

interface Pending {
  index: number;
  window: Window;
}

interface Window {
  results: PublishResult[];
  outstanding: number;
  done: () => void;
}

const decoder = new TextDecoder();

export class PipelinedPublisher {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private next = 0;
  private readonly pending = new Map<number, Pending>();

  /** `stream` = the stream every message must land in (`KV_<bucket>`); anything else is a failure. */
  constructor(
    private readonly nc: NatsConnection,
    private readonly stream: string,
  ) {
    this.prefix = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (err, msg) => (err ? undefined : this.onReply(msg)) });
  }

  close(): void {
    this.sub.unsubscribe();
    for (const p of this.pending.values()) this.settle(p, { ok: false, error: "publisher closed" });
    this.pending.clear();
  }

  /**
   * Publishes every item (in order, on one connection: the stream stores them in this order) and
   * resolves with one result per item once each is confirmed or has failed. Never rejects.
   */
  async publish(items: readonly PublishItem[], opts: PublishBatchOptions = {}): Promise<PublishResult[]> {
    const window = Math.max(1, opts.window ?? 1024);
    const timeoutMs = opts.timeoutMs ?? 5000;
    const out: PublishResult[] = new Array(items.length);
    for (let start = 0; start < items.length; start += window) {
      const slice = items.slice(start, start + window);
      const res = await this.publishWindow(slice, timeoutMs);
      for (let i = 0; i < res.length; i++) out[start + i] = res[i]!;
    }
    return out;
  }

  private publishWindow(items: readonly PublishItem[], timeoutMs: number): Promise<PublishResult[]> {
    return new Promise<PublishResult[]>((resolve) => {
      const ids: number[] = [];
      let timer: NodeJS.Timeout | undefined;
      const w: Window = {
        results: new Array(items.length),
        outstanding: items.length,
        done: () => {
          clearTimeout(timer);
          resolve(w.results);
        },
      };
      if (items.length === 0) return w.done();
      timer = setTimeout(() => {
        for (const id of ids) {
          const p = this.pending.get(id);
          if (!p) continue;
          this.pending.delete(id);
          this.settle(p, { ok: false, error: `no PubAck within ${timeoutMs} ms` });
        }
      }, timeoutMs);
      for (let i = 0; i < items.length; i++) {
        const id = this.next++;
        ids.push(id);
        this.pending.set(id, { index: i, window: w });
        try {
          this.nc.publish(items[i]!.subject, items[i]!.data, { reply: `${this.prefix}${id}` });
        } catch (err) {
          // Closed connection, bad subject: this message was not sent.
          this.pending.delete(id);
          this.settle({ index: i, window: w }, { ok: false, error: String((err as Error)?.message ?? err) });
        }
      }
    });
  }

  private settle(p: Pending, r: PublishResult): void {
    p.window.results[p.index] = r;
    if (--p.window.outstanding === 0) p.window.done();
  }

  private onReply(msg: Msg): void {
    const id = Number(msg.subject.slice(this.prefix.length));
    const p = this.pending.get(id);
    if (!p) return; // timed out already, or not ours
    this.pending.delete(id);
    this.settle(p, this.parseAck(msg));
  }

  private parseAck(msg: Msg): PublishResult {
    // A status message (503 no responders: no stream listens on the subject) has no body.
    if (msg.headers && msg.headers.code >= 300) return { ok: false, error: `status ${msg.headers.code} ${msg.headers.description}` };
    let ack: { stream?: string; seq?: number; error?: { code?: number; err_code?: number; description?: string } };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
    } catch {
      return { ok: false, error: "undecodable PubAck" };
    }
    if (ack.error) return { ok: false, error: `JetStream ${ack.error.err_code ?? ack.error.code}: ${ack.error.description ?? ""}` };
    if (ack.stream !== this.stream || typeof ack.seq !== "number") return { ok: false, error: `PubAck from stream ${String(ack.stream)}, expected ${this.stream}` };
    return { ok: true, seq: ack.seq };
  }
}
