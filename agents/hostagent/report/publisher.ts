// Publishes AgentReport (binary protobuf) on `lvsfleet.status.<site>.<host>`: on every apply result
// (and APPLYING while a slow one runs, sync/agent.ts) and as a heartbeat every N seconds. Core NATS
// publish, not JetStream: a report is a snapshot that the next one supersedes, and while disconnected
// the client buffers a few of them.
//
// The plain report (no health, counters or drift — what every apply sends) is encoded by hand,
// byte for byte what toBinary writes (publisher.test.ts compares them on random reports): create +
// toBinary cost 11–60 µs per report, a visible share of an apply in bench:fanout (1 000 agents in a
// few processes); site, host and agent id are encoded once.
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
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
  /** Fields 1–3 (site, host, agent id) of every report, encoded. */
  private readonly head: Uint8Array;

  constructor(private readonly o: ReportPublisherOptions) {
    this.subject = statusSubject(o.subjectPrefix, o.site, o.host);
    this.head = encodeReportHead(o.site, o.host, o.agentId);
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
      this.publishWith({ health: toHealth(await this.o.backend.health()), healthReported: true });
    } catch (err) {
      this.o.log.warn({ err: String(err) }, "reading health failed");
    }
  }

  /** Drift repairs are reported once, with the next report. */
  addDrift(d: DriftRepair[]): void {
    this.drift.push(...d);
  }

  /** The plain report now (after an apply, or when the phase changes). */
  publish(): void {
    if (this.drift.length > 0) {
      this.publishWith({});
      return;
    }
    if (this.closed || this.o.nc.isClosed()) return;
    const data = encodePlainReport(this.head, this.o.view(), Date.now(), Math.round(this.o.heartbeatSeconds));
    try {
      this.o.nc.publish(this.subject, data);
    } catch (err) {
      this.o.log.debug({ err: String(err) }, "report not published");
    }
  }

  /** A report with health or counters (and the drift repairs not reported yet). */
  publishWith(extra: Partial<Pick<AgentReport, "counters" | "health" | "healthReported">>): AgentReport | undefined {
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
    if (extra.healthReported) this.publishWith(extra);
    else this.publish();
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
    return this.publishWith({ counters });
  }
}

/** Fields 1–3 of AgentReport as toBinary writes them (proto3: an empty string is not written). */
export function encodeReportHead(site: string, host: string, agentId: string): Uint8Array {
  const w = new BinaryWriter();
  if (site !== "") w.tag(1, WireType.LengthDelimited).string(site);
  if (host !== "") w.tag(2, WireType.LengthDelimited).string(host);
  if (agentId !== "") w.tag(3, WireType.LengthDelimited).string(agentId);
  return w.finish();
}

/**
 * toBinary(AgentReportSchema, …) of a report with `head` (encodeReportHead), time = nowMs, the
 * view's fields and heartbeat_seconds, and no drift, health or counters: fields in number order,
 * zero values left out (proto3), the time always present (a set message field).
 */
export function encodePlainReport(head: Uint8Array, v: AgentView, nowMs: number, heartbeatSeconds: number): Uint8Array {
  const w = new BinaryWriter();
  w.raw(head);
  // google.protobuf.Timestamp as timestampFromMs makes it.
  const seconds = Math.floor(nowMs / 1000);
  const nanos = (nowMs - seconds * 1000) * 1_000_000;
  w.tag(4, WireType.LengthDelimited).fork();
  if (seconds !== 0) w.tag(1, WireType.Varint).int64(seconds);
  if (nanos !== 0) w.tag(2, WireType.Varint).int32(nanos);
  w.join();
  if (v.appliedRevision !== 0n) w.tag(5, WireType.Varint).int64(v.appliedRevision);
  if (v.appliedHash !== "") w.tag(6, WireType.LengthDelimited).string(v.appliedHash);
  if (v.seenRevision !== 0n) w.tag(7, WireType.Varint).int64(v.seenRevision);
  if (v.phase !== 0) w.tag(8, WireType.Varint).int32(v.phase);
  for (const e of v.errors) {
    w.tag(9, WireType.LengthDelimited).fork();
    if (e.object !== "") w.tag(1, WireType.LengthDelimited).string(e.object);
    if (e.operation !== "") w.tag(2, WireType.LengthDelimited).string(e.operation);
    if (e.message !== "") w.tag(3, WireType.LengthDelimited).string(e.message);
    w.join();
  }
  if (heartbeatSeconds !== 0) w.tag(13, WireType.Varint).uint32(heartbeatSeconds);
  return w.finish();
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
