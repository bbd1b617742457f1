// A Director state larger than the server's max_payload, on a real nats-server started with
// `max_payload: 65536` (temp dir, free port; the shared server is never touched) and the real
// Postgres (a database of this file). The relay takes its inline limit from the connection (no
// override): the state goes to the Object Store in chunks below max_payload, the agent applies it.
// Then NATS loses its data: the relay re-puts the object with everything else.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { HostDesiredStateSchema } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { RealServerSchema, VirtualServiceSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { createBulk } from "../../services/controlplane/store/bulk.js";
import { outboxHook, startRelay, type Relay } from "../../services/controlplane/relay/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";
import { AgentFleet, buildFleet, freePort, meta, NATS_SERVER_BIN, setWeight, waitFor, type FleetShape } from "./fleet-harness.js";

const SITE = "cdg1";
const BUCKET = "lvsfleet-desired";
const MAX_PAYLOAD = 65_536;
let dir: string;
let port: number;
let server: ChildProcess | undefined;
let t: TestDatabase;
let pool: pg.Pool;
let store: TopologyStore;
let fleet: AgentFleet;
let shape: FleetShape;
let relay: Relay;

const url = () => `nats://127.0.0.1:${port}`;

async function startServer(): Promise<void> {
  const p = spawn(NATS_SERVER_BIN, ["-c", join(dir, "nats.conf"), "-js", "-sd", join(dir, "js"), "-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  p.stderr!.on("data", (d) => (stderr += String(d)));
  server = p;
  await waitFor("nats-server ready", () => {
    if (p.exitCode !== null) throw new Error(`nats-server exited ${p.exitCode}: ${stderr}`);
    return stderr.includes("Server is ready");
  });
}

async function killServer(): Promise<void> {
  const p = server;
  server = undefined;
  if (!p || p.exitCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGKILL");
  await exited;
}

async function withNats<T>(fn: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url() });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

/** d0's KV value, decoded, and the object it references (name, size, chunks). */
async function d0Object(): Promise<{ name: string; size: number; chunks: number; stateSize: bigint }> {
  return withNats(async (nc) => {
    const e = await (await new Kvm(nc).open(BUCKET)).get(`${SITE}.d0`);
    const ref = fromBinary(HostDesiredStateSchema, e!.value);
    const info = await (await new Objm(nc).open(BUCKET)).info(ref.stateObject!.name);
    return { name: info!.name, size: info!.size, chunks: info!.chunks, stateSize: ref.stateObject!.stateSize };
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-nats-small-"));
  port = await freePort();
  await writeFile(join(dir, "nats.conf"), `max_payload: ${MAX_PAYLOAD}\n`);
  await startServer();
  t = await createTestDatabase();
  pool = createPool(t.url, 20);
  store = new TopologyStore(pool);
  store.onWrite(outboxHook);
  shape = await buildFleet(store, SITE, 2, 4);
  // d0: 120 NAT services × 10 real servers (≈ 120 KB of state, about twice max_payload).
  await createBulk(
    store.db,
    meta("ImportIpvsadm"),
    SITE,
    Array.from({ length: 120 }, (_, i) => ({
      id: `big${i}`,
      label: `line ${i}`,
      virtualService: create(VirtualServiceSchema, { protocol: Protocol.TCP, address: `198.18.200.${i + 1}`, port: 443, scheduler: "wlc", directors: [`sites/${SITE}/hosts/d0`] }),
      realServers: Array.from({ length: 10 }, (_, j) => ({
        id: `rs${j}`,
        label: `line ${i}.${j}`,
        realServer: create(RealServerSchema, { address: `198.18.${i}.${j + 1}`, port: 8443, forwardMethod: ForwardMethod.NAT, weight: 1 }),
      })),
    })),
    { field: "text" },
  );
  // Not deflated, so the object really is larger than max_payload and travels in several chunks.
  relay = await startRelay({ pool, natsUrl: url(), bucket: BUCKET, pollMs: 100, lockRetryMs: 200, markerCheckMs: 300, deflateObjects: false });
  fleet = await AgentFleet.create(SITE, url(), BUCKET);
});

afterAll(async () => {
  await relay?.stop();
  await fleet?.close();
  await killServer();
  await rm(dir, { recursive: true, force: true });
  await pool?.end();
  await t?.drop();
});

describe(`nats-server with max_payload ${MAX_PAYLOAD}`, () => {
  it("a Director state larger than max_payload converges (object in chunks, reference in the KV)", async () => {
    expect(await withNats(async (nc) => nc.info!.max_payload)).toBe(MAX_PAYLOAD);
    await fleet.startAll([...shape.directors, ...shape.realServers]);
    const want = await fleet.converged(pool, 30_000);
    const o = await d0Object();
    expect(o.stateSize).toBeGreaterThan(BigInt(MAX_PAYLOAD));
    expect(o.size).toBe(Number(o.stateSize));
    expect(o.chunks).toBeGreaterThan(1);
    const applied = fleet.agents.get("d0")!.backend.current!;
    expect(applied.hash).toBe(want.get("d0"));
    expect(applied.director!.services.length).toBe(121);
    expect(relay.stats.unconfirmed).toBe(0);
  });

  it("a change converges", async () => {
    const before = (await d0Object()).name;
    const rev = await setWeight(store, SITE, "big99", "rs9", 42);
    await fleet.agents.get("d0")!.backend.waitFor((x) => x.revision >= rev, 20_000);
    await fleet.converged(pool);
    expect((await d0Object()).name).not.toBe(before);
  });

  it("NATS loses its data: the relay re-puts the object with every key; a change after it converges", async () => {
    const put = relay.stats.objectsPut;
    const republishes = relay.stats.republishes;
    const applies = fleet.agents.get("d0")!.backend.applies.length;
    await killServer();
    await rm(join(dir, "js"), { recursive: true, force: true });
    await startServer();
    await waitFor("a full republish", () => relay.stats.republishes > republishes, 30_000);
    expect(relay.stats.objectsPut).toBe(put + 1);
    const o = await d0Object();
    expect(o.chunks).toBeGreaterThan(1);
    // Same revisions come back: nothing is applied again.
    await fleet.converged(pool);
    expect(fleet.agents.get("d0")!.backend.applies.length).toBe(applies);
    const rev = await setWeight(store, SITE, "big5", "rs5", 17);
    await fleet.agents.get("d0")!.backend.waitFor((x) => x.revision >= rev, 20_000);
    await fleet.converged(pool);
    fleet.assertMonotonic();
  });
});
