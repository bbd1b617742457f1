// Publishes AgentReport (binary protobuf) on `lvsfleet.status.<site>.<host>`: on every apply (start
// and result) and as a heartbeat every N seconds. Core NATS publish, not JetStream: a report is a
// snapshot that the next one supersedes, and while disconnected the client buffers a few of them.
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AgentPhase,
  AgentReportSchema,
  RealServerHealthSchema,
  ServiceCountersSchema,
  type AgentReport,
} from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import type { DriftRepair, KernelBackend, ObjectError, RealServerHealthSample } from "../kernel/backend.js";
import type { Log } from "../sync/log.js";

/** What the sync loop knows and the report carries. */
export interface AgentView {
  appliedRevision: bigint;
  appliedHash: string;
  seenRevision: bigint;
  phase: AgentPhase;
  errors: ObjectError[];
}

export interface ReportPublisherOptions {
  nc: NatsConnection;
  site: string;
  host: string;
  agentId: string;
  subjectPrefix: string;
  heartbeatSeconds: number;
  backend: KernelBackend;
  view(): AgentView;
  log: Log;
}

export function statusSubject(prefix: string, site: string, host: string): string {
  return `${prefix}.${site}.${host}`;
}

export class ReportPublisher {
  readonly subject: string;
  private timer: NodeJS.Timeout | undefined;
  private drift: DriftRepair[] = [];
  private closed = false;
  private offHealth: (() => void) | undefined;
  private healthQueued = false;

  constructor(private readonly o: ReportPublisherOptions) {
    this.subject = statusSubject(o.subjectPrefix, o.site, o.host);
  }

  start(): void {
    this.timer = setInterval(() => void this.heartbeat(), this.o.heartbeatSeconds * 1000);
    this.timer.unref();
    // Health transitions are reported right away, not at the next heartbeat (health/backend.ts).
    const b = this.o.backend as KernelBackend & { onHealthChange?(fn: () => void): () => void };
    this.offHealth = b.onHealthChange?.(() => void this.healthReport());
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.offHealth?.();
  }

  /** A report with health (no counters) after a transition; a burst of transitions is one report. */
  private async healthReport(): Promise<void> {
    if (this.healthQueued || !this.o.backend.health) return;
    this.healthQueued = true;
    await new Promise((r) => setImmediate(r));
    this.healthQueued = false;
    try {
      this.publish({ health: toHealth(await this.o.backend.health()) });
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "reading health failed");
    }
  }

  /** Drift repairs are reported once, with the next report. */
  addDrift(d: DriftRepair[]): void {
    this.drift.push(...d);
  }

  /** A report now (after an apply, or when the phase changes). */
  publish(extra: Partial<Pick<AgentReport, "counters" | "health">> = {}): AgentReport | undefined {
    if (this.closed || this.o.nc.isClosed()) return undefined;
    const v = this.o.view();
    const report = create(AgentReportSchema, {
      site: this.o.site,
      host: this.o.host,
      agentId: this.o.agentId,
      time: timestampFromDate(new Date()),
      appliedRevision: v.appliedRevision,
      appliedHash: v.appliedHash,
      seenRevision: v.seenRevision,
      phase: v.phase,
      errors: v.errors.map((e) => ({ object: e.object, operation: e.operation, message: e.message })),
      drift: this.drift.map((d) => ({ object: d.object, found: d.found, time: d.time ? timestampFromDate(d.time) : undefined })),
      heartbeatSeconds: Math.round(this.o.heartbeatSeconds),
      ...extra,
    });
    this.drift = [];
    try {
      this.o.nc.publish(this.subject, toBinary(AgentReportSchema, report));
    } catch (err) {
      this.o.log.debug({ err: String(err) }, "report not published");
    }
    return report;
  }

  /** Heartbeat: the plain report plus counters and health when the backend has them. */
  async heartbeat(): Promise<void> {
    const b = this.o.backend;
    if (b.takeDrift) this.addDrift(b.takeDrift());
    const extra: Partial<Pick<AgentReport, "counters" | "health">> = {};
    try {
      if (b.counters) {
        const cs = await b.counters();
        extra.counters = cs.map((c) =>
          create(ServiceCountersSchema, {
            virtualService: c.virtualService,
            totals: c.totals,
            destinations: (c.destinations ?? []).map((d) => ({ ...d, counters: d.counters })),
          }),
        );
      }
      if (b.health) {
        extra.health = toHealth(await b.health());
      }
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "reading counters/health failed; heartbeat without them");
    }
    this.publish(extra);
  }
}

function toHealth(hs: RealServerHealthSample[]) {
  return hs.map((h) => create(RealServerHealthSchema, { ...h, since: h.since ? timestampFromDate(h.since) : undefined, lastResult: h.lastResult ?? "" }));
}

export { AgentPhase };
