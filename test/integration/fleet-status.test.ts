// Status ingest and FleetService over a real gRPC port: agents (fake backend) report on the shared
// NATS under a subject prefix of this file; the control plane derives CONVERGED / APPLYING / ERROR /
// OFFLINE and waits for rollouts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import type { NatsConnection } from "@nats-io/transport-node";
import { FleetService, HostState, type HostStatus } from "../../gen/lvsfleet/v1/fleet_service_pb.js";
import { AgentPhase } from "../../gen/lvsfleet/v1/agent_report_pb.js";
import type { Client } from "../../lib/grpc/client.js";
import type { RunningServer } from "../../lib/grpc/serve.js";
import { RpcError } from "../../lib/grpc/status.js";
import type { TopologyStore } from "../../services/controlplane/store/index.js";
import type { Relay } from "../../services/controlplane/relay/index.js";
import type { StatusIngest } from "../../services/controlplane/status/index.js";
import type { TestDatabase } from "../harness/postgres.js";
import { startFleetApi, type FleetApi } from "./fleet-api-fixture.js";
import { AgentFleet, setWeight, waitFor, type FleetShape } from "./fleet-harness.js";

const SITE = "lon3";
let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let bucket: string;
let prefix: string;
let fleet: AgentFleet;
let shape: FleetShape;
let relay: Relay;
let ingest: StatusIngest;
let server: RunningServer;
let client: Client<typeof FleetService>;
let nc: NatsConnection;

async function statuses(): Promise<HostStatus[]> {
  return (await client.listHostStatuses({ site: SITE, pageSize: 1000 })).statuses;
}

async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(RpcError);
  return e as RpcError;
}

let fixture: FleetApi | undefined;

beforeAll(async () => {
  fixture = await startFleetApi({ site: SITE, name: "status", directors: 2, realServers: 6, poolSize: 20 });
  ({ t, pool, store, bucket, prefix, fleet, shape, relay, ingest, server, client, nc } = fixture);
});

afterAll(async () => {
  await fixture?.close();
});

describe("status ingest and FleetService", () => {
  it("every host CONVERGED with its applied revision and hash", async () => {
    const list = await waitFor("8 converged hosts", async () => {
      const s = await statuses();
      return s.length === 8 && s.every((x) => x.state === HostState.CONVERGED) && s;
    });
    for (const s of list) {
      const a = fleet.agents.get(s.host)!;
      expect(s.appliedHash).toBe(a.backend.current!.hash);
      expect(s.appliedRevision).toBe(a.backend.current!.revision);
      expect(s.desiredHash).toBe(s.appliedHash);
      expect(s.agentId).toBe(a.agent.agentId);
      expect(s.heartbeatSeconds).toBe(1);
    }
    const one = await client.getHostStatus({ site: SITE, host: "d0" });
    expect(one.status?.host).toBe("d0");
    // Pagination walks every host once.
    const p1 = await client.listHostStatuses({ site: SITE, pageSize: 5 });
    const p2 = await client.listHostStatuses({ site: SITE, pageSize: 5, pageToken: p1.nextPageToken });
    expect([...p1.statuses, ...p2.statuses].map((s) => s.host)).toEqual(list.map((s) => s.host));
    expect(p2.nextPageToken).toBe("");
  });

  it("WaitForRollout returns once the affected hosts applied the revision", async () => {
    const [vsId, svc] = [...shape.services.entries()][0]!;
    const rev = await setWeight(store, SITE, vsId, svc.rsHosts[0]!, 9);
    const r = await client.waitForRollout({ revision: rev, site: SITE, timeout: { seconds: 20n } });
    expect(r.complete).toBe(true);
    expect(r.totalHosts).toBe(8);
    // Complete means the Director's kernel (fake) really has the new weight.
    const dest = fleet.agents.get(svc.director)!.backend.current!.director!.services.flatMap((s) => s.destinations);
    expect(dest.find((d) => d.realServer.endsWith(`/${svc.rsHosts[0]}`))?.weight).toBe(9);
  });

  it("ERROR with the object errors; rollout reports who has not; recovers", async () => {
    const [vsId, svc] = [...shape.services.entries()][1]!;
    const bad = fleet.agents.get(svc.director)!;
    bad.backend.failWith = [{ object: "ipvs-service tcp 203.0.113.2:80", operation: "update", message: "ENOMEM" }];
    const rev = await setWeight(store, SITE, vsId, svc.rsHosts[0]!, 11);
    const err = await waitFor("ERROR state", async () => {
      const s = (await client.getHostStatus({ site: SITE, host: svc.director })).status!;
      return s.state === HostState.ERROR && s;
    });
    expect(err.errors[0]).toMatchObject({ object: "ipvs-service tcp 203.0.113.2:80", message: "ENOMEM" });
    expect(err.phase).toBe(AgentPhase.ERROR);
    const onlyErrors = await client.listHostStatuses({ site: SITE, states: [HostState.ERROR] });
    expect(onlyErrors.statuses.map((s) => s.host)).toEqual([svc.director]);
    const r = await client.waitForRollout({ revision: rev, site: SITE, timeout: { seconds: 1n } });
    expect(r.complete).toBe(false);
    expect(r.pending.map((p) => p.host)).toEqual([svc.director]);
    expect(r.doneHosts).toBe(7);
    bad.backend.failWith = undefined;
    const ok = await client.waitForRollout({ revision: rev, site: SITE, hosts: [svc.director], timeout: { seconds: 20n } });
    expect(ok).toMatchObject({ complete: true, totalHosts: 1, doneHosts: 1 });
  });

  it("WatchHostStatuses streams the initial statuses, then changes", async () => {
    const ac = new AbortController();
    const seen: Array<{ host: string; state: HostState; initial: boolean; desired: bigint }> = [];
    const [vsId, svc] = [...shape.services.entries()][2]!;
    let rev = 0n;
    const reader = (async () => {
      for await (const m of client.watchHostStatuses({ site: SITE }, { signal: ac.signal })) {
        seen.push({ host: m.status!.host, state: m.status!.state, initial: m.initial, desired: m.status!.desiredRevision });
        if (seen.filter((s) => s.initial).length === 8 && rev === 0n) rev = await setWeight(store, SITE, vsId, svc.rsHosts[1]!, 13);
        if (rev > 0n && seen.some((s) => !s.initial && s.host === svc.director && s.state === HostState.CONVERGED && s.desired >= rev)) break;
      }
    })();
    await Promise.race([reader, new Promise((_, rej) => setTimeout(() => rej(new Error(`watch saw ${JSON.stringify(seen, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`)), 15_000))]);
    ac.abort();
    expect(seen.filter((s) => s.initial).map((s) => s.host).sort()).toEqual([...fleet.agents.keys()].sort());
    expect(seen.filter((s) => !s.initial).every((s) => s.host === svc.director)).toBe(true);
  });

  it("OFFLINE when heartbeats stop", async () => {
    const host = shape.realServers[5]!;
    await fleet.stop(host);
    const s = await waitFor("OFFLINE", async () => {
      const x = (await client.getHostStatus({ site: SITE, host })).status!;
      return x.state === HostState.OFFLINE && x;
    }, 10_000);
    expect(s.lastSeen).toBeDefined();
    const offline = await client.listHostStatuses({ site: SITE, states: [HostState.OFFLINE] });
    expect(offline.statuses.map((x) => x.host)).toEqual([host]);
  });

  it("bad requests: INVALID_ARGUMENT naming the field, NOT_FOUND for unknown hosts", async () => {
    const e1 = await rpcError(client.getHostStatus({ site: "a.b", host: "" }));
    expect(e1.fieldViolations.map((v) => v.field).sort()).toEqual(["host", "site"]);
    const e2 = await rpcError(client.getHostStatus({ site: SITE, host: "nope" }));
    expect(e2.codeName).toBe("NOT_FOUND");
    const e3 = await rpcError(client.waitForRollout({ revision: 1n, site: SITE, hosts: ["d0", "ghost"], timeout: { seconds: 5n } }));
    expect(e3.fieldViolations.map((v) => v.field)).toEqual(["hosts[1]"]);
    const e4 = await rpcError(client.waitForRollout({ revision: 0n, site: SITE }));
    expect(e4.fieldViolations.map((v) => v.field)).toEqual(["revision"]);
    const e5 = await rpcError(client.listHostStatuses({ pageToken: "garbage!" }));
    expect(e5.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
  });
});
