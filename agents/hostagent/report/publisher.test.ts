// Counters in reports: --counters-seconds (config), a counters report on its own timer, heartbeats
// without counters, 0 = off.
import { create, fromBinary, isFieldSet, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "@nats-io/transport-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AgentPhase, AgentReportSchema, ObjectErrorSchema, type AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import { ConfigError, DEFAULTS, loadConfig } from "../config.js";
import type { KernelBackend, ServiceCountersSample } from "../kernel/backend.js";
import { encodePlainReport, encodeReportHead, ReportPublisher, type AgentView } from "./publisher.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function publisher(countersSeconds: number | undefined, counters?: () => Promise<ServiceCountersSample[]>, view?: () => AgentView) {
  const sent: AgentReport[] = [];
  const nc = { isClosed: () => false, publish: (_s: string, d: Uint8Array) => void sent.push(fromBinary(AgentReportSchema, d)) } as unknown as NatsConnection;
  const backend: KernelBackend = { apply: async () => ({ errors: [] }), ...(counters ? { counters } : {}) };
  const p = new ReportPublisher({
    nc,
    site: "s1",
    host: "d1",
    agentId: "a1",
    subjectPrefix: "lvsfleet.status",
    heartbeatSeconds: 60,
    countersSeconds,
    backend,
    view: view ?? (() => ({ appliedRevision: 1n, appliedHash: "h", seenRevision: 1n, phase: AgentPhase.IDLE, errors: [] })),
    log: silent,
  });
  return { p, sent };
}

const sample: ServiceCountersSample[] = [
  { virtualService: "sites/s1/virtualServices/web", ipvsService: "tcp 192.0.2.1:80", totals: { connections: 7n, inBytes: 700n }, destinations: [{ realServer: "rs", address: "198.51.100.1", port: 80, counters: { connections: 7n }, activeConnections: 2, inactiveConnections: 1 }] },
];

describe("counters reports", () => {
  it("every countersSeconds a report with the backend's counters; heartbeats carry none", async () => {
    const { p, sent } = publisher(0.04, async () => sample);
    p.start();
    try {
      await new Promise((r) => setTimeout(r, 220));
      await p.heartbeat();
    } finally {
      p.close();
    }
    const withCounters = sent.filter((r) => r.counters.length > 0);
    expect(withCounters.length).toBeGreaterThanOrEqual(2);
    const c = withCounters[0]!.counters[0]!;
    expect(c.ipvsService).toBe("tcp 192.0.2.1:80");
    expect(c.totals).toMatchObject({ connections: 7n, inBytes: 700n });
    expect(c.destinations[0]).toMatchObject({ realServer: "rs", activeConnections: 2, inactiveConnections: 1 });
    expect(sent[sent.length - 1]!.counters).toEqual([]); // the heartbeat
  });

  it("countersSeconds 0 (or unset) sends no counters; a failing read sends nothing", async () => {
    for (const cs of [0, undefined]) {
      let reads = 0;
      const { p, sent } = publisher(cs, async () => (reads++, sample));
      p.start();
      await new Promise((r) => setTimeout(r, 60));
      await p.heartbeat();
      p.close();
      expect(reads).toBe(0);
      expect(sent.every((r) => r.counters.length === 0)).toBe(true);
    }
    const { p, sent } = publisher(10, async () => Promise.reject(new Error("netlink gone")));
    expect(await p.countersReport()).toBeUndefined();
    expect(sent).toEqual([]);
  });
});

describe("the plain report, encoded by hand", () => {
  const str = fc.oneof(fc.constant(""), fc.string({ maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 8 }));
  const rev = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: (1n << 63n) - 1n }));
  it("is byte for byte toBinary(create(AgentReportSchema, …)) for random reports", () => {
    fc.assert(
      fc.property(
        fc.record({ site: str, host: str, agentId: str }),
        fc.record({
          appliedRevision: rev,
          appliedHash: str,
          seenRevision: rev,
          phase: fc.constantFrom(AgentPhase.UNSPECIFIED, AgentPhase.IDLE, AgentPhase.APPLYING, AgentPhase.ERROR),
          errors: fc.array(fc.record({ object: str, operation: str, message: str }), { maxLength: 3 }),
        }),
        // Epoch ms: before 1970, whole seconds and now-ish.
        fc.oneof(fc.integer({ min: -1e12, max: 4e12 }), fc.integer({ min: 0, max: 4e9 }).map((s) => s * 1000)),
        fc.oneof(fc.constant(0), fc.nat(100_000)),
        (who, v, nowMs, hb) => {
          const got = encodePlainReport(encodeReportHead(who.site, who.host, who.agentId), v, nowMs, hb);
          const want = toBinary(AgentReportSchema, create(AgentReportSchema, { ...who, ...v, time: timestampFromMs(nowMs), heartbeatSeconds: hb }));
          expect(Buffer.from(got).toString("hex")).toBe(Buffer.from(want).toString("hex"));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("covers every field of AgentReport and ObjectError but the ones a plain report never has", () => {
    // A field added to the schema must be added to encodePlainReport (or be one a plain report leaves
    // out); otherwise plain reports would drop it silently while publishWith() sends it.
    const notPlain = new Set(["drift", "health", "counters", "healthReported"]);
    const full = create(AgentReportSchema, {
      site: "s", host: "h", agentId: "a", time: timestampFromMs(1_500), appliedRevision: 7n, appliedHash: "x", seenRevision: 8n,
      phase: AgentPhase.ERROR, errors: [{ object: "o", operation: "p", message: "m" }], heartbeatSeconds: 9,
    });
    const unset = AgentReportSchema.fields.filter((f) => !notPlain.has(f.localName) && !isFieldSet(full, f));
    expect(unset.map((f) => f.localName)).toEqual([]);
    const e = full.errors[0]!;
    expect(ObjectErrorSchema.fields.filter((f) => !isFieldSet(e, f)).map((f) => f.localName)).toEqual([]);
    const v: AgentView = { appliedRevision: 7n, appliedHash: "x", seenRevision: 8n, phase: AgentPhase.ERROR, errors: full.errors };
    expect(fromBinary(AgentReportSchema, encodePlainReport(encodeReportHead("s", "h", "a"), v, 1_500, 9))).toEqual(full);
  });

  it("a publisher sends it after an apply; drift goes out once, with the next report", () => {
    let v: AgentView = { appliedRevision: 41n, appliedHash: "h41", seenRevision: 42n, phase: AgentPhase.ERROR, errors: [{ object: "service tcp 192.0.2.1:80", operation: "add", message: "EEXIST" }] };
    const { p, sent } = publisher(undefined, undefined, () => v);
    const t0 = Date.now();
    p.publish();
    expect(sent[0]).toMatchObject({ site: "s1", host: "d1", agentId: "a1", appliedRevision: 41n, seenRevision: 42n, phase: AgentPhase.ERROR, heartbeatSeconds: 60, drift: [] });
    expect(sent[0]!.errors).toEqual([expect.objectContaining({ object: "service tcp 192.0.2.1:80", operation: "add", message: "EEXIST" })]);
    expect(Number(sent[0]!.time!.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000 - 1000);
    p.addDrift([{ object: "address lo 192.0.2.1/32", found: "missing" }]);
    v = { ...v, appliedRevision: 42n, phase: AgentPhase.IDLE, errors: [] };
    p.publish();
    p.publish();
    expect(sent.map((r) => r.drift.map((d) => d.object))).toEqual([[], ["address lo 192.0.2.1/32"], []]);
    expect(sent.map((r) => r.appliedRevision)).toEqual([41n, 42n, 42n]);
  });
});

describe("agent config: --counters-seconds", () => {
  const base = ["--site", "s1", "--host", "d1"];
  it("defaults to 10; flag > env > file; 0 = off; fractions allowed; negative rejected", () => {
    expect(DEFAULTS.countersSeconds).toBe(10);
    expect(loadConfig(base, {}).countersSeconds).toBe(10);
    expect(loadConfig(base, { LVSFLEET_COUNTERS_SECONDS: "2.5" }).countersSeconds).toBe(2.5);
    expect(loadConfig([...base, "--counters-seconds", "0"], { LVSFLEET_COUNTERS_SECONDS: "3" }).countersSeconds).toBe(0);
    expect(() => loadConfig([...base, "--counters-seconds=-1"], {})).toThrow(ConfigError);
    expect(() => loadConfig([...base, "--counters-seconds", "soon"], {})).toThrow(/counters-seconds/);
  });
});
