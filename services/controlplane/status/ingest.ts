// Status ingest: subscribes to `lvsfleet.status.>` (core NATS; reports are snapshots, the next one
// supersedes a lost one), keeps the newest report per host and writes them to host_status in one
// statement per flush. Every control-plane process may ingest (the upsert is idempotent and keeps the
// newest report), so there is no leadership here.
import { EventEmitter } from "node:events";
import { fromBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { AgentReportSchema, type AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import type { RelayLog } from "../relay/relay.js";
import { StatusStore } from "./store.js";
import type pg from "pg";

export const STATUS_SUBJECT_PREFIX = "lvsfleet.status";

export interface StatusIngestOptions {
  pool: pg.Pool;
  natsUrl: string | string[];
  log?: RelayLog;
  subjectPrefix?: string;
  /** Reports are coalesced per host and written this often (ms). */
  flushMs?: number;
}

export interface StatusIngest {
  readonly store: StatusStore;
  /** Emits "change" after each flush with the hosts written ({ site, host }[]). */
  readonly events: EventEmitter;
  readonly stats: { received: number; written: number; rejected: number };
  stop(): Promise<void>;
}

const TOKEN = /^[A-Za-z0-9_-]{1,63}$/;

export async function startStatusIngest(o: StatusIngestOptions): Promise<StatusIngest> {
  const log = o.log ?? { debug() {}, info() {}, warn() {}, error() {} };
  const prefix = o.subjectPrefix ?? STATUS_SUBJECT_PREFIX;
  const store = new StatusStore(o.pool);
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const stats = { received: 0, written: 0, rejected: 0 };
  const latest = new Map<string, AgentReport>();
  /** The newest counters-bearing report per host, written with its own time. */
  const latestCounters = new Map<string, AgentReport>();
  let stopped = false;
  let nc: NatsConnection | undefined;
  let sub: Subscription | undefined;

  function onMessage(subject: string, data: Uint8Array): void {
    stats.received++;
    const [site, host] = subject.slice(prefix.length + 1).split(".");
    let r: AgentReport;
    try {
      r = fromBinary(AgentReportSchema, data);
    } catch {
      stats.rejected++;
      return;
    }
    // The subject names the host; a report claiming another host (or a malformed subject) is dropped.
    if (!site || !host || r.site !== site || r.host !== host || !TOKEN.test(site) || !TOKEN.test(host)) {
      stats.rejected++;
      return;
    }
    const key = `${site}.${host}`;
    const prev = latest.get(key);
    if (!prev || prev.agentId !== r.agentId || (r.time?.seconds ?? 0n) >= (prev.time?.seconds ?? 0n)) {
      // A report without counters does not drop the counters of one not yet written; they keep the
      // time they were read at (a drain must never take counters read before its apply as fresh).
      if (r.counters.length > 0) latestCounters.set(key, r);
      // Nor does a report without health drop the health set of one not yet written.
      if (prev && !r.healthReported && prev.healthReported && prev.agentId === r.agentId) {
        r.health = prev.health;
        r.healthReported = true;
      }
      latest.set(key, r);
    }
  }

  let flushing = Promise.resolve();
  const flush = async () => {
    if (latest.size === 0) return;
    const batch = [...latest.values()];
    const counters = [...latestCounters.values()].filter((c) => {
      const r = latest.get(`${c.site}.${c.host}`);
      return r !== undefined && r.agentId === c.agentId;
    });
    latest.clear();
    latestCounters.clear();
    try {
      await store.ingest(batch, counters);
      stats.written += batch.length;
      events.emit("change", batch.map((r) => ({ site: r.site, host: r.host })));
    } catch (err) {
      log.warn({ err: String(err) }, "status ingest failed; keeping reports for the next flush");
      for (const r of batch) if (!latest.has(`${r.site}.${r.host}`)) latest.set(`${r.site}.${r.host}`, r);
      for (const c of counters) if (!latestCounters.has(`${c.site}.${c.host}`)) latestCounters.set(`${c.site}.${c.host}`, c);
    }
  };
  const timer = setInterval(() => {
    flushing = flushing.then(flush);
  }, o.flushMs ?? 50);
  timer.unref();

  const connecting = (async () => {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        nc = await connect({
          servers: o.natsUrl,
          name: "lvsfleet-status-ingest",
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 250,
        });
        if (stopped) {
          await nc.close();
          return;
        }
        sub = nc.subscribe(`${prefix}.>`, { callback: (err, m) => (err ? undefined : onMessage(m.subject, m.data)) });
        log.info({ subject: `${prefix}.>` }, "status ingest subscribed");
        return;
      } catch (err) {
        log.warn({ err: String(err) }, "status ingest cannot reach NATS; retrying");
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random())));
      }
    }
  })();

  return {
    store,
    events,
    stats,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await connecting;
      sub?.unsubscribe();
      await nc?.close().catch(() => undefined);
      await flushing;
      await flush();
    },
  };
}
