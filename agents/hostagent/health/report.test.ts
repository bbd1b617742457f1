// Health transitions reach the control plane right away: ReportPublisher (real NATS on 127.0.0.1:4222)
// publishes an AgentReport with health when a check flips, long before the next heartbeat.
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentReportSchema, type AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import { FakeBackend } from "../kernel/fake-backend.js";
import { AgentPhase, ReportPublisher } from "../report/publisher.js";
import { silentLog } from "../sync/log.js";
import { HealthCheckedBackend } from "./backend.js";
import { dest, host, service, tcpCheck } from "./fixtures.js";
import { tcpServer } from "./testing.js";

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connect({ servers: "127.0.0.1:4222" });
});
afterAll(async () => {
  await nc.close();
});

describe("health in AgentReport", () => {
  it("a transition publishes a report with the real server's health and weight", async () => {
    const rs = await tcpServer();
    const backend = new HealthCheckedBackend(new FakeBackend());
    const prefix = `test.health.${randomUUID().slice(0, 8)}`;
    const reports = new ReportPublisher({
      nc,
      site: "s1",
      host: "d1",
      agentId: "a1",
      subjectPrefix: prefix,
      heartbeatSeconds: 3600, // no heartbeat during the test: only the transition can publish
      backend,
      view: () => ({ appliedRevision: 1n, appliedHash: "h", seenRevision: 1n, phase: AgentPhase.IDLE, errors: [] }),
      log: silentLog,
    });
    const got: AgentReport[] = [];
    const sub = nc.subscribe(reports.subject, { callback: (_err, m) => void got.push(fromBinary(AgentReportSchema, m.data)) });
    await nc.flush();
    try {
      reports.start();
      await backend.apply(host([service("web", 80, [dest("127.0.0.1", rs.port, 7, "rs-a")], { check: tcpCheck({ intervalMs: 50, fall: 2, rise: 1 }) })]));
      await rs.stop();
      const started = Date.now();
      while (!got.some((r) => r.health.length > 0) && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 10));
      const report = got.find((r) => r.health.length > 0);
      expect(report?.health).toHaveLength(1);
      expect(report!.health[0]).toMatchObject({ virtualService: "web", realServer: "rs-a", address: "127.0.0.1", port: rs.port, healthy: false, weight: 0, lastResult: "connect ECONNREFUSED" });
      expect(report!.health[0]!.since).toBeDefined();

      await rs.start();
      const n = got.length;
      while (!got.slice(n).some((r) => r.health[0]?.healthy) && Date.now() - started < 6000) await new Promise((r) => setTimeout(r, 10));
      expect(got.slice(n).find((r) => r.health[0]?.healthy)?.health[0]).toMatchObject({ healthy: true, weight: 7, lastResult: "connected" });
    } finally {
      sub.unsubscribe();
      reports.close();
      await backend.close();
      await rs.stop();
    }
  });
});
