// IPVS counters end to end on real Postgres + real NATS: agents with the FakeBackend (deterministic
// counters, kernel/fake-backend.ts) report counters every --counters-seconds → the status ingest
// stores the latest per Director (host_counters) → FleetService.GetStats / WatchStats → `lvsfleet
// stats` prints them like `ipvsadm -Ln --stats --exact`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import type { NatsConnection } from "@nats-io/transport-node";
import { FleetService, type DirectorStats } from "../../gen/lvsfleet/v1/fleet_service_pb.js";
import type { Client } from "../../lib/grpc/client.js";
import type { RunningServer } from "../../lib/grpc/serve.js";
import { RpcError } from "../../lib/grpc/status.js";
import type { TopologyStore } from "../../services/controlplane/store/index.js";
import type { Relay } from "../../services/controlplane/relay/index.js";
import type { StatusIngest } from "../../services/controlplane/status/index.js";
import { runStats } from "../../cli/stats.js";
import type { TestDatabase } from "../harness/postgres.js";
import { startFleetApi, type FleetApi } from "./fleet-api-fixture.js";
import { AgentFleet, waitFor, type FleetShape } from "./fleet-harness.js";

const SITE = "sto2";
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

/** GetStats once every Director reported counters of its converged state. */
async function allStats(): Promise<DirectorStats[]> {
  return waitFor("counters of both Directors", async () => {
    const r = await client.getStats({ site: SITE, virtualService: "" });
    return r.directors.length === 2 && r.directors.every((d) => d.services.length === 1 && d.services[0]!.destinations.length === 2) && r.directors;
  });
}

let fixture: FleetApi | undefined;

beforeAll(async () => {
  fixture = await startFleetApi({ site: SITE, name: "stats", directors: 2, realServers: 4, poolSize: 10, agent: { countersSeconds: 0.25 } });
  ({ t, pool, store, bucket, prefix, fleet, shape, relay, ingest, server, client, nc } = fixture);
});

afterAll(async () => {
  await fixture?.close();
});

describe("IPVS counters: agent → ingest → GetStats / WatchStats → lvsfleet stats", () => {
  it("GetStats returns each Director's services with totals and per real server counters and connections", async () => {
    const ds = await allStats();
    expect(ds.map((d) => d.host)).toEqual(["d0", "d1"]);
    for (const [i, d] of ds.entries()) {
      expect(d.site).toBe(SITE);
      expect(d.time).toBeDefined();
      const s = d.services[0]!;
      const vs = `web${i}`;
      const { director, vip } = shape.services.get(vs)!;
      expect(director).toBe(d.host);
      expect(s.virtualService).toBe(`sites/${SITE}/virtualServices/${vs}`);
      expect(s.ipvsService).toBe(`tcp ${vip}:80`);
      // FakeBackend: service 0 of this Director, destination j → connections 100 + j + 1.
      expect(s.totals).toMatchObject({ connections: 203n, inPackets: 2030n, outPackets: 1624n, inBytes: 203000n, outBytes: 812000n });
      expect(s.destinations.map((x) => [x.address, x.port, x.counters?.connections, x.activeConnections, x.inactiveConnections])).toEqual([
        [`198.51.100.${10 + 2 * i}`, 80, 101n, 1, 0],
        [`198.51.100.${11 + 2 * i}`, 80, 102n, 2, 1],
      ]);
      expect(s.destinations.map((x) => x.realServer)).toEqual([
        `sites/${SITE}/virtualServices/${vs}/realServers/r${2 * i}`,
        `sites/${SITE}/virtualServices/${vs}/realServers/r${2 * i + 1}`,
      ]);
    }
    // Real servers have no IPVS services: no counters rows for them.
    expect((await pool.query("SELECT host FROM host_counters WHERE site = $1 ORDER BY host", [SITE])).rows.map((r) => r.host)).toEqual(["d0", "d1"]);
  });

  it("GetStats narrows to one virtual service (id or full name) and validates the site", async () => {
    await allStats();
    const byId = await client.getStats({ site: SITE, virtualService: "web1" });
    expect(byId.directors.map((d) => [d.host, d.services.map((s) => s.virtualService)])).toEqual([["d1", [`sites/${SITE}/virtualServices/web1`]]]);
    const byName = await client.getStats({ site: SITE, virtualService: `sites/${SITE}/virtualServices/web0` });
    expect(byName.directors.map((d) => d.host)).toEqual(["d0"]);
    expect((await client.getStats({ site: SITE, virtualService: "nope" })).directors).toEqual([]);
    expect((await client.getStats({ site: "other", virtualService: "" })).directors).toEqual([]);
    const e = await client.getStats({ site: "", virtualService: "" }).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).codeName).toBe("INVALID_ARGUMENT");
  });

  it("WatchStats sends the site's counters, then each newer report as it is ingested", async () => {
    await allStats();
    const abort = new AbortController();
    const got: Array<{ host: string; initial: boolean; time: bigint; nanos: number }> = [];
    const watching = (async () => {
      try {
        for await (const m of client.watchStats({ site: SITE, virtualService: "" }, { signal: abort.signal })) {
          got.push({ host: m.director!.host, initial: m.initial, time: m.director!.time!.seconds, nanos: m.director!.time!.nanos });
        }
      } catch {
        /* cancelled */
      }
    })();
    await waitFor("initial + 2 updates per Director", () => {
      const init = got.filter((g) => g.initial);
      const upd = got.filter((g) => !g.initial);
      return init.length === 2 && ["d0", "d1"].every((h) => upd.filter((u) => u.host === h).length >= 2);
    }, 15_000);
    abort.abort();
    await watching;
    expect(got.filter((g) => g.initial).map((g) => g.host).sort()).toEqual(["d0", "d1"]);
    // Updates of one Director are newer each time.
    for (const h of ["d0", "d1"]) {
      const ts = got.filter((g) => g.host === h).map((g) => g.time * 1_000_000_000n + BigInt(g.nanos));
      for (let i = 1; i < ts.length; i++) expect(ts[i]! > ts[i - 1]!).toBe(true);
    }
  });

  it("`lvsfleet stats <site>` prints per Director like ipvsadm -Ln --stats; --json has the API response", async () => {
    await allStats();
    let out = "";
    let err = "";
    const io = { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s) };
    expect(await runStats(["stats", SITE, "--addr", server.address], {}, io)).toBe(0);
    expect(err).toBe("");
    const blocks = out.split("\n\n");
    expect(blocks).toHaveLength(2);
    const lines = blocks[0]!.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^Director d0 \(counters read \d{4}-\d\d-\d\dT/);
    expect(lines.slice(1)).toEqual([
      "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
      "  -> RemoteAddress:Port",
      "TCP  203.0.113.1:80                    203     2030     1624   203000   812000",
      "  -> 198.51.100.10:80                  101     1010      808   101000   404000",
      "  -> 198.51.100.11:80                  102     1020      816   102000   408000",
    ]);
    expect(blocks[1]).toContain("Director d1");
    expect(blocks[1]).toContain("TCP  203.0.113.2:80                    203");

    out = "";
    expect(await runStats(["--addr", server.address, "stats", SITE, "--vs", "web1", "--json"], {}, io)).toBe(0);
    const j = JSON.parse(out) as { directors: Array<{ host: string; services: Array<{ totals: { connections: string }; destinations: Array<{ activeConnections?: number }> }> }> };
    expect(j.directors.map((d) => d.host)).toEqual(["d1"]);
    expect(j.directors[0]!.services[0]!.totals.connections).toBe("203");
    expect(j.directors[0]!.services[0]!.destinations.map((d) => d.activeConnections)).toEqual([1, 2]);

    err = "";
    expect(await runStats(["stats"], {}, io)).toBe(2);
    expect(err).toContain("missing <site>");
  });
});
