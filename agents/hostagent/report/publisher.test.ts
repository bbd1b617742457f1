// Counters in reports: --counters-seconds (config), a counters report on its own timer, heartbeats
// without counters, 0 = off.
import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { AgentPhase, AgentReportSchema, type AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import { ConfigError, DEFAULTS, loadConfig } from "../config.js";
import type { KernelBackend, ServiceCountersSample } from "../kernel/backend.js";
import { ReportPublisher } from "./publisher.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function publisher(countersSeconds: number | undefined, counters?: () => Promise<ServiceCountersSample[]>) {
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
    view: () => ({ appliedRevision: 1n, appliedHash: "h", seenRevision: 1n, phase: AgentPhase.IDLE, errors: [] }),
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
