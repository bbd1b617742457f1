// A NAT return path broken behind the agent's back reaches the control plane: the agent (real NATS
// on 127.0.0.1:4222, LinuxBackend on the in-memory kernel fakes) applied its desired state cleanly;
// someone then changes the real server's default route; the next resync finds it and every report
// says ERROR with the nat-return-path object error until a resync finds the route fixed.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { AgentPhase, AgentReportSchema, type AgentReport } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import { HostDesiredStateSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { DEFAULTS } from "../config.js";
import { startAgent } from "../sync/agent.js";
import { FakeIpvs } from "./fake-ipvs.js";
import { createFakeKernel } from "./fakes.js";
import { LinuxBackend } from "./linux-backend.js";

const NATS = "nats://127.0.0.1:4222";
let nc: NatsConnection;
let dir: string;
beforeAll(async () => {
  nc = await connect({ servers: NATS });
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-lbr-report-"));
});
afterAll(async () => {
  await nc.close();
  await rm(dir, { recursive: true, force: true });
});

it("a route changed behind the agent's back: ERROR with the nat-return-path error after the next resync, IDLE again once fixed", async () => {
  const bucket = `lvsfleet-desired-natpath-${randomUUID().slice(0, 8)}`;
  const kvm = new Kvm(nc);
  const kv = await kvm.create(bucket, { history: 1 });
  const prefix = `test.natpath.${randomUUID().slice(0, 8)}`;
  const fk = createFakeKernel();
  fk.kernel.routes.push({ family: 4, destination: "0.0.0.0/0", table: 254, protocol: 3, scope: 0, type: 1, owned: false, gateway: "198.51.100.1" });
  const linux = new LinuxBackend({ site: "s1", host: "rs1", stateDir: dir, openIpvs: async () => new FakeIpvs(), ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls, routes: fk.routes });
  const reports: AgentReport[] = [];
  const sub = nc.subscribe(`${prefix}.s1.rs1`, { callback: (_e, m) => void reports.push(fromBinary(AgentReportSchema, m.data)) });
  await nc.flush();
  const agent = await startAgent({
    config: { ...DEFAULTS, site: "s1", host: "rs1", natsServers: [NATS], bucket, statusSubjectPrefix: prefix, stateDir: dir, heartbeatSeconds: 0.1, resyncSeconds: 60, retrySeconds: 60, backoffBaseMs: 50, backoffMaxMs: 500 },
    backend: linux,
  });
  const waitFor = async (what: string, pred: (r: AgentReport) => boolean) => {
    const started = Date.now();
    for (;;) {
      const n = reports.length;
      if (n > 0 && pred(reports[n - 1]!)) return reports[n - 1]!;
      if (Date.now() - started > 10_000) throw new Error(`no report with ${what}; last: ${JSON.stringify(reports.at(-1)?.errors)} phase ${reports.at(-1)?.phase}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await kv.put(
      "s1.rs1",
      toBinary(
        HostDesiredStateSchema,
        create(HostDesiredStateSchema, {
          site: "s1",
          host: "rs1",
          revision: 1n,
          hash: "rs1-1",
          realServer: { addresses: [{ interface: "lo", address: "192.0.2.20", prefixLength: 32 }], natReturnPaths: [{ virtualService: "web", directorAddresses: ["198.51.100.1"] }] },
        }),
      ),
    );
    await waitFor("revision 1 applied, IDLE", (r) => r.appliedRevision === 1n && r.phase === AgentPhase.IDLE && r.errors.length === 0);

    fk.kernel.routes[0]!.gateway = "198.51.100.254";
    // Nothing changes until the backend looks (the sync loop does not re-apply an applied revision).
    await new Promise((r) => setTimeout(r, 300));
    expect(reports.at(-1)).toMatchObject({ phase: AgentPhase.IDLE, errors: [] });
    expect((await linux.resync())!.errors.map((e) => e.object)).toEqual(["nat-return-path web"]);
    const bad = await waitFor("the nat-return-path error", (r) => r.errors.length > 0);
    expect(bad.phase).toBe(AgentPhase.ERROR);
    expect(bad.errors.map((e) => [e.object, e.operation])).toEqual([["nat-return-path web", "check"]]);
    expect(bad.errors[0]!.message).toContain("default route via 198.51.100.254 does not go through a Director");

    fk.kernel.routes[0]!.gateway = "198.51.100.1";
    await linux.resync();
    await waitFor("IDLE without errors", (r) => r.phase === AgentPhase.IDLE && r.errors.length === 0);
  } finally {
    sub.unsubscribe();
    await agent.stop();
    await linux.close();
    await kv.destroy().catch(() => undefined);
  }
});
