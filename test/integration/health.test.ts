// Real server health end to end on real Postgres + real NATS: a Director's agent (the real sync loop,
// HealthCheckedBackend over the FakeBackend kernel) runs TCP checks against real listeners on
// 127.0.0.1 → AgentReport.health → status ingest (real_server_health + transitions) → FleetService
// ListRealServerHealth / WatchRealServerHealth / ListHealthTransitions → `lvsfleet health`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { HealthState, HostState, type RealServerHealthStatus } from "../../gen/lvsfleet/v1/fleet_service_pb.js";
import { HealthCheckSchema, ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { HostSchema, RealServerSchema, VirtualServiceSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { RpcError } from "../../lib/grpc/status.js";
import { FakeBackend } from "../../agents/hostagent/kernel/fake-backend.js";
import { HealthCheckedBackend } from "../../agents/hostagent/health/backend.js";
import { tcpServer, type TestServer } from "../../agents/hostagent/health/testing.js";
import { startAgent, type Agent } from "../../agents/hostagent/sync/agent.js";
import { listRealServerHealth } from "../../services/controlplane/status/index.js";
import { runHealth } from "../../cli/health.js";
import { startFleetApi, type FleetApi } from "./fleet-api-fixture.js";
import { meta, waitFor } from "./fleet-harness.js";

const SITE = "hel1";
const VS = `sites/${SITE}/virtualServices/chk`;
const RS_A = `${VS}/realServers/a`;
const RS_B = `${VS}/realServers/b`;
const dur = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });

let f: FleetApi;
let a: TestServer;
let b: TestServer;
let fake: FakeBackend;
let agent: Agent | undefined;

async function health(vs = "chk"): Promise<RealServerHealthStatus[]> {
  return (await f.client.listRealServerHealth({ site: SITE, virtualService: vs })).realServers;
}

async function entry(rs: string, pred: (h: RealServerHealthStatus) => boolean, what: string, timeoutMs = 15_000): Promise<RealServerHealthStatus> {
  return waitFor(what, async () => {
    const h = (await health()).find((x) => x.realServer === rs && x.host === "hc");
    return h && pred(h) && h;
  }, timeoutMs, 50);
}

/** The weight the fake kernel holds for 127.0.0.1:port in the health-checked service. */
function kernelWeight(port: number): number | undefined {
  const svc = fake.current?.director?.services.find((s) => s.virtualService === VS);
  return svc?.destinations.find((d) => d.port === port)?.weight;
}

beforeAll(async () => {
  f = await startFleetApi({ site: SITE, name: "health", directors: 1, realServers: 2 });
  a = await tcpServer();
  b = await tcpServer();
  await f.store.hosts.create(meta("CreateHost"), SITE, "hc", create(HostSchema, {
    roles: [HostRole.DIRECTOR],
    addresses: ["192.0.2.50"],
    interfaces: [{ name: "eth0", addresses: ["192.0.2.50/24"] }],
  }));
  await f.store.virtualServices.create(meta("CreateVirtualService"), SITE, "chk", create(VirtualServiceSchema, {
    protocol: Protocol.TCP,
    address: "203.0.113.50",
    port: 80,
    scheduler: "wlc",
    directors: [`sites/${SITE}/hosts/hc`],
    healthCheck: create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, interval: dur(200), timeout: dur(150), rise: 2, fall: 2 }),
  }));
  for (const [id, srv] of [["a", a], ["b", b]] as const) {
    await f.store.realServers.create(meta("CreateRealServer"), SITE, "chk", id, create(RealServerSchema, {
      address: "127.0.0.1", port: srv.port, forwardMethod: ForwardMethod.NAT, weight: 5,
    }));
  }
  fake = new FakeBackend();
  agent = await startAgent({ config: f.fleet.configFor("hc"), backend: new HealthCheckedBackend(fake, {}) });
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await a?.stop();
  await b?.stop();
  await f?.close();
});

describe("real server health: agent checks → ingest → FleetService → CLI", () => {
  it("a TCP check against a real listener shows HEALTHY, then UNHEALTHY (weight 0) when it closes, then HEALTHY again, with transitions", async () => {
    const up = await entry(RS_A, (h) => h.state === HealthState.HEALTHY, "a HEALTHY");
    expect(up).toMatchObject({ virtualService: VS, site: SITE, address: "127.0.0.1", port: a.port, weight: 5, lastResult: "connected", hostState: HostState.CONVERGED });
    expect(up.since).toBeDefined();
    expect(up.reportTime).toBeDefined();

    // Watch from here on: the initial entries, then each change.
    const abort = new AbortController();
    const seen: Array<{ state: HealthState; initial: boolean; weight: number }> = [];
    const watching = (async () => {
      try {
        for await (const m of f.client.watchRealServerHealth({ site: SITE, virtualService: "chk" }, { signal: abort.signal })) {
          if (m.health!.realServer === RS_A && m.health!.host === "hc") seen.push({ state: m.health!.state, initial: m.initial, weight: m.health!.weight });
        }
      } catch {
        /* cancelled */
      }
    })();
    await waitFor("initial watch entry", () => seen.length > 0);

    const closedAt = Date.now();
    await a.stop();
    const down = await entry(RS_A, (h) => h.state === HealthState.UNHEALTHY, "a UNHEALTHY");
    expect(down.weight).toBe(0);
    expect(down.lastResult).toMatch(/ECONNREFUSED/);
    expect(timestampDate(down.since!).getTime()).toBeGreaterThanOrEqual(closedAt - 1000);
    expect(kernelWeight(a.port)).toBe(0);
    // The other real server is untouched.
    expect((await health()).find((x) => x.realServer === RS_B)).toMatchObject({ state: HealthState.HEALTHY, weight: 5 });

    await a.start();
    const back = await entry(RS_A, (h) => h.state === HealthState.HEALTHY, "a HEALTHY again");
    expect(back.weight).toBe(5);
    expect(timestampDate(back.since!).getTime()).toBeGreaterThan(timestampDate(down.since!).getTime());
    await waitFor("kernel weight 5 again", () => kernelWeight(a.port) === 5);

    await waitFor("watch saw down and up", () => seen.filter((s) => !s.initial).map((s) => s.state).join(",").includes(`${HealthState.UNHEALTHY},${HealthState.HEALTHY}`));
    abort.abort();
    await watching;
    expect(seen[0]).toMatchObject({ initial: true, state: HealthState.HEALTHY, weight: 5 });
    expect(seen.find((s) => s.state === HealthState.UNHEALTHY)?.weight).toBe(0);

    const tr = (await f.client.listHealthTransitions({ site: SITE, virtualService: "chk", realServer: "a", pageSize: 0 })).transitions;
    // Newest first: up again, down, first seen up.
    expect(tr.map((t) => t.state)).toEqual([HealthState.HEALTHY, HealthState.UNHEALTHY, HealthState.HEALTHY]);
    expect(tr.every((t) => t.realServer === RS_A && t.host === "hc" && t.virtualService === VS)).toBe(true);
    expect(tr[1]!.lastResult).toMatch(/ECONNREFUSED/);
    const ts = tr.map((t) => timestampDate(t.time!).getTime());
    expect(ts[0]! > ts[1]! && ts[1]! > ts[2]!).toBe(true);
  });

  it("listRealServerHealth (the plain store function) gives per real server name the state on each Director", async () => {
    await entry(RS_A, (h) => h.state === HealthState.HEALTHY, "a HEALTHY");
    const m = await listRealServerHealth(f.pool, SITE);
    expect(m.get(RS_A)).toEqual([expect.objectContaining({ director: "hc", state: "healthy", weight: 5, lastResult: "connected" })]);
    // The fixture's Director d0 runs the fake kernel without checks: never claimed healthy.
    const web0 = [...m.entries()].filter(([k]) => k.startsWith(`sites/${SITE}/virtualServices/web0/`));
    expect(web0.map(([k, v]) => [k, v.map((x) => [x.director, x.state])])).toEqual([
      [`sites/${SITE}/virtualServices/web0/realServers/r0`, [["d0", "unknown"]]],
      [`sites/${SITE}/virtualServices/web0/realServers/r1`, [["d0", "unknown"]]],
    ]);
    const onlyChk = await listRealServerHealth(f.pool, SITE, { virtualService: "chk" });
    expect([...onlyChk.keys()]).toEqual([RS_A, RS_B]);
  });

  it("heartbeats repeating the same health do not rewrite the rows; report_time is the Director's latest", async () => {
    await entry(RS_A, (h) => h.state === HealthState.HEALTHY, "a HEALTHY");
    const row = async () => (await f.pool.query<{ report_time: Date; health_time: Date }>(
      `SELECT h.report_time, s.health_time FROM real_server_health h JOIN host_status s USING (site, host) WHERE h.real_server = $1 AND h.host = 'hc'`, [RS_A])).rows[0]!;
    const before = await row();
    const later = await waitFor("two more heartbeats with health", async () => {
      const r = await row();
      return r.health_time.getTime() >= before.health_time.getTime() + 1500 && r;
    }, 15_000, 100);
    expect(later.report_time.getTime()).toBe(before.report_time.getTime());
    const api = (await health()).find((x) => x.realServer === RS_A && x.host === "hc")!;
    expect(timestampDate(api.reportTime!).getTime()).toBeGreaterThanOrEqual(later.health_time.getTime());
  });

  it("lvsfleet health prints the table like ipvsadm -Ln with a health column, and --json", async () => {
    await entry(RS_A, (h) => h.state === HealthState.HEALTHY, "a HEALTHY");
    let out = "";
    let err = "";
    const io = { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s) };
    expect(await runHealth(["health", SITE, "--vs", "chk", "--addr", f.server.address], {}, io)).toBe(0);
    expect(err).toBe("");
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toBe("Prot LocalAddress:Port");
    expect(lines[2]).toBe("TCP  203.0.113.50:80");
    expect(lines[3]).toMatch(new RegExp(`^  -> 127\\.0\\.0\\.1:${a.port}\\s+hc\\s+5\\s+healthy\\s+\\d{4}-\\d\\d-\\d\\dT\\S+\\s+connected$`));
    out = "";
    expect(await runHealth(["--addr", f.server.address, "health", SITE, "--json"], {}, io)).toBe(0);
    const parsed = JSON.parse(out) as { realServers: Array<{ realServer: string; state: string; host: string }> };
    expect(parsed.realServers.find((x) => x.realServer === RS_A && x.host === "hc")?.state).toBe("HEALTH_STATE_HEALTHY");
    expect(parsed.realServers.filter((x) => x.host === "d0").map((x) => x.state)).toEqual(["HEALTH_STATE_UNKNOWN", "HEALTH_STATE_UNKNOWN"]);
    expect(await runHealth(["health"], {}, io)).toBe(2);
    expect(err).toContain("missing <site>");
  });

  it("validates: site required, real server id needs its virtual service", async () => {
    const e1 = await f.client.listRealServerHealth({ site: "", virtualService: "" }).then(() => undefined, (err: unknown) => err);
    expect((e1 as RpcError).codeName).toBe("INVALID_ARGUMENT");
    const e2 = await f.client.listHealthTransitions({ site: SITE, virtualService: "", realServer: "a", pageSize: 0 }).then(() => undefined, (err: unknown) => err);
    expect(e2).toBeInstanceOf(RpcError);
    expect((e2 as RpcError).codeName).toBe("INVALID_ARGUMENT");
    expect((await f.client.listRealServerHealth({ site: "nowhere", virtualService: "" })).realServers).toEqual([]);
  });

  it("a real server removed from the topology leaves the health list (recorded as gone)", async () => {
    await entry(RS_B, (h) => h.state === HealthState.HEALTHY, "b HEALTHY");
    await f.store.realServers.delete(meta("DeleteRealServer"), SITE, "chk", "b");
    await waitFor("b gone", async () => !(await health()).some((x) => x.realServer === RS_B), 15_000, 50);
    const tr = (await f.client.listHealthTransitions({ site: SITE, virtualService: "", realServer: RS_B, pageSize: 10 })).transitions;
    expect(tr[0]).toMatchObject({ state: HealthState.UNSPECIFIED, host: "hc" });
    expect((await f.pool.query("SELECT count(*)::int AS n FROM real_server_health WHERE real_server = $1", [RS_B])).rows[0].n).toBe(0);
  });

  it("a real server the Director runs no check for reads NOT_CHECKED (the Director reports health)", async () => {
    await f.store.virtualServices.create(meta("CreateVirtualService"), SITE, "plain", create(VirtualServiceSchema, {
      protocol: Protocol.TCP, address: "203.0.113.51", port: 80, scheduler: "wlc", directors: [`sites/${SITE}/hosts/hc`],
    }));
    await f.store.realServers.create(meta("CreateRealServer"), SITE, "plain", "p1", create(RealServerSchema, {
      address: "127.0.0.1", port: a.port, forwardMethod: ForwardMethod.NAT, weight: 2,
    }));
    const h = await waitFor("p1 NOT_CHECKED", async () => {
      const x = (await health("plain")).find((e) => e.host === "hc");
      return x?.state === HealthState.NOT_CHECKED && x;
    }, 15_000, 50);
    expect(h).toMatchObject({ realServer: `sites/${SITE}/virtualServices/plain/realServers/p1`, ipvsService: "tcp 203.0.113.51:80", port: a.port });
    expect((await listRealServerHealth(f.pool, SITE, { virtualService: "plain" })).get(h.realServer)).toEqual([expect.objectContaining({ director: "hc", state: "not_checked" })]);
  });

  it("a Director going OFFLINE turns its entries UNKNOWN (last known state kept), never healthy", async () => {
    await entry(RS_A, (h) => h.state === HealthState.HEALTHY, "a HEALTHY");
    await agent!.stop();
    agent = undefined;
    const h = await entry(RS_A, (x) => x.state === HealthState.UNKNOWN, "a UNKNOWN after the Director stops reporting", 20_000);
    expect(h.hostState).toBe(HostState.OFFLINE);
    expect(h.lastKnownState).toBe(HealthState.HEALTHY);
    expect((await listRealServerHealth(f.pool, SITE, { virtualService: "chk" })).get(RS_A)?.[0]?.state).toBe("unknown");
  });
});
