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
  type ServiceCounters,
} from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import type { DriftRepair, KernelBackend, ObjectError, RealServerHealthSample, ServiceCountersSample } from "../kernel/backend.js";
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
  /** A report with IPVS counters this often (seconds); 0 or unset = never. */
  countersSeconds?: number;
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
  private countersTimer: NodeJS.Timeout | undefined;
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
    const cs = this.o.countersSeconds ?? 0;
    if (cs > 0 && this.o.backend.counters) {
      this.countersTimer = setInterval(() => void this.countersReport(), cs * 1000);
      this.countersTimer.unref();
    }
    // Health transitions are reported right away, not at the next heartbeat (health/backend.ts).
    const b = this.o.backend as KernelBackend & { onHealthChange?(fn: () => void): () => void };
    this.offHealth = b.onHealthChange?.(() => void this.healthReport());
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.countersTimer);
    this.offHealth?.();
  }

  /** A report with health (no counters) after a transition; a burst of transitions is one report. */
  private async healthReport(): Promise<void> {
    if (this.healthQueued || !this.o.backend.health) return;
    this.healthQueued = true;
    await new Promise((r) => setImmediate(r));
    this.healthQueued = false;
    try {
      this.publish({ health: toHealth(await this.o.backend.health()), healthReported: true });
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "reading health failed");
    }
  }

  /** Drift repairs are reported once, with the next report. */
  addDrift(d: DriftRepair[]): void {
    this.drift.push(...d);
  }

  /** A report now (after an apply, or when the phase changes). */
  publish(extra: Partial<Pick<AgentReport, "counters" | "health" | "healthReported">> = {}): AgentReport | undefined {
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

  /** Heartbeat: the plain report plus health when the backend has it (counters: countersReport). */
  async heartbeat(): Promise<void> {
    const b = this.o.backend;
    if (b.takeDrift) this.addDrift(b.takeDrift());
    const extra: Partial<Pick<AgentReport, "counters" | "health" | "healthReported">> = {};
    try {
      if (b.health) {
        extra.health = toHealth(await b.health());
        extra.healthReported = true;
      }
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "reading health failed; heartbeat without it");
    }
    this.publish(extra);
  }

  /** A report with the backend's IPVS counters (every `countersSeconds`). */
  async countersReport(): Promise<AgentReport | undefined> {
    const b = this.o.backend;
    if (!b.counters || this.closed) return undefined;
    let counters: ServiceCounters[];
    try {
      counters = toCounters(await b.counters());
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "reading IPVS counters failed");
      return undefined;
    }
    return this.publish({ counters });
  }
}

/** ServiceCountersSample (kernel/backend.ts) → lvsfleet.v1.ServiceCounters. */
export function toCounters(cs: readonly ServiceCountersSample[]): ServiceCounters[] {
  return cs.map((c) =>
    create(ServiceCountersSchema, {
      virtualService: c.virtualService,
      ipvsService: c.ipvsService ?? "",
      totals: c.totals,
      destinations: (c.destinations ?? []).map((d) => ({ ...d })),
    }),
  );
}

function toHealth(hs: RealServerHealthSample[]) {
  return hs.map((h) => create(RealServerHealthSchema, { ...h, since: h.since ? timestampFromDate(h.since) : undefined, lastResult: h.lastResult ?? "" }));
}

export { AgentPhase };
