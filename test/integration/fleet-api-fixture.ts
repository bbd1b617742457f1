/**
 * The fixture the FleetService tests share: a fresh database with the outbox hook, the real relay and
 * status ingest on the shared NATS (a bucket and a status subject prefix of the test file's own),
 * FleetService over a real gRPC port, and an AgentFleet (fake backend) that has converged.
 */
import type pg from "pg";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { FleetService } from "../../gen/lvsfleet/v1/fleet_service_pb.js";
import type { AgentConfig } from "../../agents/hostagent/config.js";
import { createClient, type Client } from "../../lib/grpc/client.js";
import { bind, startGrpcServer, type RunningServer } from "../../lib/grpc/serve.js";
import { createPool, TopologyStore } from "../../services/controlplane/store/index.js";
import { outboxHook, startRelay, type Relay } from "../../services/controlplane/relay/index.js";
import { fleetService, startStatusIngest, type StatusIngest } from "../../services/controlplane/status/index.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";
import { AgentFleet, buildFleet, SHARED_NATS_URL, uniqueName, type FleetShape } from "./fleet-harness.js";

export interface FleetApi {
  t: TestDatabase;
  pool: pg.Pool;
  store: TopologyStore;
  bucket: string;
  prefix: string;
  fleet: AgentFleet;
  shape: FleetShape;
  relay: Relay;
  ingest: StatusIngest;
  server: RunningServer;
  client: Client<typeof FleetService>;
  nc: NatsConnection;
  close(): Promise<void>;
}

export async function startFleetApi(o: {
  site: string;
  /** Names the bucket and subject prefix, e.g. "status". */
  name: string;
  directors: number;
  realServers: number;
  poolSize?: number;
  agent?: Partial<AgentConfig>;
}): Promise<FleetApi> {
  const t = await createTestDatabase();
  const pool = createPool(t.url, o.poolSize ?? 10);
  const store = new TopologyStore(pool);
  store.onWrite(outboxHook);
  const bucket = uniqueName(`lvsfleet-desired-${o.name}`);
  const prefix = `${uniqueName(o.name.slice(0, 1)).replace("-", "")}.lvsfleet.status`;
  const nc = await connect({ servers: SHARED_NATS_URL });
  const shape = await buildFleet(store, o.site, o.directors, o.realServers);
  const relay = await startRelay({ pool, natsUrl: SHARED_NATS_URL, bucket, pollMs: 100 });
  const ingest = await startStatusIngest({ pool, natsUrl: SHARED_NATS_URL, subjectPrefix: prefix, flushMs: 20 });
  const server = await startGrpcServer({
    address: "127.0.0.1:0",
    services: [bind(FleetService, fleetService({ store: ingest.store, events: ingest.events, pollMs: 100, topology: store }))],
  });
  const client = createClient(FleetService, server.address);
  const fleet = await AgentFleet.create(o.site, SHARED_NATS_URL, bucket, { statusSubjectPrefix: prefix, heartbeatSeconds: 1, ...o.agent });
  await fleet.startAll([...shape.directors, ...shape.realServers]);
  await fleet.converged(pool);
  return {
    t, pool, store, bucket, prefix, fleet, shape, relay, ingest, server, client, nc,
    async close() {
      client.close();
      await server.shutdown(1000);
      await fleet.close();
      await ingest.stop();
      await relay.stop();
      await new Kvm(nc).open(bucket).then((kv) => kv.destroy()).catch(() => undefined);
      await nc.close();
      await pool.end();
      await t.drop();
    },
  };
}
