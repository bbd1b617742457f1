// Drain end to end on real Postgres + real NATS + FleetService over a real gRPC port: two Directors
// (agents with the fake kernel) carry one virtual service; their IPVS counters report as ActiveConn
// of the drained real server the number of TCP connections open to a real listener on 127.0.0.1
// (the test opens and closes them). DrainRealServer writes draining (compiled weight 0, configured
// weight kept), waits for ActiveConn 0 from counters read after each Director applied the drain, then
// deletes; the deadline leaves it drained; undrain restores the weight; `lvsfleet drain --wait`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { createServer, connect, type Server, type Socket } from "node:net";
import { DrainPhase, type DrainRealServerResponse } from "../../gen/lvsfleet/v1/fleet_service_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { HostSchema, RealServerSchema, VirtualServiceSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { FakeBackend } from "../../agents/hostagent/kernel/fake-backend.js";
import type { ServiceCountersSample } from "../../agents/hostagent/kernel/backend.js";
import { RpcError } from "../../lib/grpc/status.js";
import { runDrain } from "../../cli/drain.js";
import { startFleetApi, type FleetApi } from "./fleet-api-fixture.js";
import { meta, waitFor } from "./fleet-harness.js";

const SITE = "drn1";
const VS = `sites/${SITE}/virtualServices/shop`;
const rsName = (id: string) => `${VS}/realServers/${id}`;

/** A real listener on 127.0.0.1 and the client connections the test holds open to it. */
class Backend {
  server!: Server;
  clients: Socket[] = [];
  accepted = 0;
  async start(): Promise<void> {
    this.server = createServer((c) => {
      this.accepted++;
      c.on("close", () => this.accepted--);
      c.on("error", () => undefined);
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
  }
  get port(): number {
    return (this.server.address() as { port: number }).port;
  }
  async open(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const c = connect({ host: "127.0.0.1", port: this.port });
      c.on("error", () => undefined);
      await new Promise<void>((r) => c.once("connect", () => r()));
      this.clients.push(c);
    }
    await waitFor(`${n} accepted`, () => this.accepted >= this.clients.length);
  }
  async closeAll(): Promise<void> {
    for (const c of this.clients) c.destroy();
    this.clients = [];
    await waitFor("connections closed", () => this.accepted === 0);
  }
  async stop(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Real server id → its listener: ActiveConn = connections open to it right now. */
const listeners = new Map<string, Backend>();

/** The fake kernel, with ActiveConn of each destination taken from the real listener it stands for. */
class ConnCountingBackend extends FakeBackend {
  override async counters(): Promise<ServiceCountersSample[]> {
    const cs = await super.counters();
    for (const s of cs) {
      for (const d of s.destinations ?? []) {
        const l = listeners.get(d.realServer.split("/").pop()!);
        d.activeConnections = l ? l.accepted : 0;
        d.inactiveConnections = 0;
      }
    }
    return cs;
  }
}

let f: FleetApi;
const kernels = new Map<string, ConnCountingBackend>();

function kernelWeight(host: string, rs: string): number | undefined {
  const svc = kernels.get(host)!.current?.director?.services.find((s) => s.virtualService === VS);
  return svc?.destinations.find((d) => d.realServer === rsName(rs))?.weight;
}

async function addRealServer(id: string, n: number, weight: number): Promise<Backend> {
  const b = new Backend();
  await b.start();
  listeners.set(id, b);
  await f.store.realServers.create(meta("CreateRealServer"), SITE, "shop", id, create(RealServerSchema, {
    address: `198.51.100.${100 + n}`, port: 80, forwardMethod: ForwardMethod.DR, weight,
  }));
  await waitFor(`${id} on both Directors`, () => ["x0", "x1"].every((h) => kernelWeight(h, id) === weight), 20_000);
  return b;
}

async function collect(stream: AsyncIterable<DrainRealServerResponse>, into: DrainRealServerResponse[]): Promise<void> {
  for await (const m of stream) into.push(m);
}

beforeAll(async () => {
  f = await startFleetApi({ site: SITE, name: "drain", directors: 1, realServers: 2, agent: { countersSeconds: 0.2 } });
  for (const [i, h] of ["x0", "x1"].entries()) {
    await f.store.hosts.create(meta("CreateHost"), SITE, h, create(HostSchema, {
      roles: [HostRole.DIRECTOR], addresses: [`192.0.2.${60 + i}`], interfaces: [{ name: "eth0", addresses: [`192.0.2.${60 + i}/24`] }],
    }));
  }
  await f.store.virtualServices.create(meta("CreateVirtualService"), SITE, "shop", create(VirtualServiceSchema, {
    protocol: Protocol.TCP, address: "203.0.113.60", port: 80, scheduler: "wlc",
    directors: [`sites/${SITE}/hosts/x0`, `sites/${SITE}/hosts/x1`],
  }));
  for (const h of ["x0", "x1"]) {
    const k = new ConnCountingBackend();
    kernels.set(h, k);
    await f.fleet.start(h, k);
  }
}, 60_000);

afterAll(async () => {
  for (const l of listeners.values()) await l.stop().catch(() => undefined);
  await f?.close();
});

describe("drain: weight 0 on every Director, wait for ActiveConn 0, then delete", () => {
  it("counters going to zero → removed; the configured weight is kept while draining; audit entries", async () => {
    const l = await addRealServer("s1", 1, 7);
    await l.open(3);
    const got: DrainRealServerResponse[] = [];
    const done = collect(f.client.drainRealServer({ name: rsName("s1"), wait: true, keep: false, deadline: { seconds: 60n, nanos: 0 } }), got);
    // Both Directors applied the drain and report the 3 open connections from fresh counters.
    await waitFor("fresh counters with 3 active on both", () => {
      const m = got[got.length - 1];
      return m?.phase === DrainPhase.WAITING && m.directors.length === 2 && m.directors.every((d) => d.applied && d.countersFresh && d.activeConnections === 3);
    }, 20_000);
    expect(got[0]).toMatchObject({ phase: DrainPhase.DRAINING });
    expect(got[0]!.realServer).toMatchObject({ draining: true, weight: 7 });
    const revision = got[0]!.revision;
    expect(revision).toBeGreaterThan(0n);
    expect(kernelWeight("x0", "s1")).toBe(0);
    expect(kernelWeight("x1", "s1")).toBe(0);
    const stored = await f.store.realServers.get(SITE, "shop", "s1");
    expect(stored.resource).toMatchObject({ draining: true, weight: 7 });
    expect(got.some((m) => m.zero)).toBe(false);

    await l.closeAll();
    await done;
    const last = got[got.length - 1]!;
    expect(last.phase).toBe(DrainPhase.REMOVED);
    expect(last.zero).toBe(true);
    expect(last.activeConnections).toBe(0);
    expect(last.deleteRevision).toBeGreaterThan(revision);
    const e = await f.store.realServers.get(SITE, "shop", "s1").then(() => undefined, (err: unknown) => err);
    expect((e as { code?: string }).code).toBe("NOT_FOUND");
    await waitFor("s1 gone from both kernels", () => ["x0", "x1"].every((h) => kernelWeight(h, "s1") === undefined), 20_000);
    const audit = await f.pool.query<{ operation: string; revision: string }>(
      `SELECT operation, revision::text FROM audit_log WHERE resource_name = $1 ORDER BY id`, [rsName("s1")]);
    expect(audit.rows.map((r) => r.operation)).toEqual(["CreateRealServer", "DrainRealServer", "DeleteRealServer"]);
    expect(BigInt(audit.rows[1]!.revision)).toBe(revision);
  });

  it("deadline → reported, not removed; undrain restores the configured weight", async () => {
    const l = await addRealServer("s2", 2, 4);
    await l.open(2);
    const got: DrainRealServerResponse[] = [];
    await collect(f.client.drainRealServer({ name: rsName("s2"), wait: true, keep: false, deadline: { seconds: 2n, nanos: 0 } }), got);
    const last = got[got.length - 1]!;
    expect(last.phase).toBe(DrainPhase.DEADLINE_EXCEEDED);
    expect(last.zero).toBe(false);
    const s2 = (await f.store.realServers.get(SITE, "shop", "s2")).resource;
    expect(s2).toMatchObject({ draining: true, weight: 4 });
    await waitFor("weight 0 on both", () => ["x0", "x1"].every((h) => kernelWeight(h, "s2") === 0));

    const u = await f.client.undrainRealServer({ name: rsName("s2") });
    expect(u.realServer).toMatchObject({ draining: false, weight: 4 });
    expect(u.revision).toBeGreaterThan(0n);
    await waitFor("weight 4 again on both", () => ["x0", "x1"].every((h) => kernelWeight(h, "s2") === 4), 20_000);
    expect((await f.client.undrainRealServer({ name: rsName("s2") })).revision).toBe(0n);
    await l.closeAll();
  });

  it("stale counters never count as zero: a Director that has not applied the drain holds the removal", async () => {
    // No connections at all: every counter already says ActiveConn 0 — but x1 applies slowly.
    await addRealServer("s3", 3, 2);
    await waitFor("counters of s3 on x1", async () => {
      const st = await f.client.getStats({ site: SITE, virtualService: "shop" });
      return st.directors.find((d) => d.host === "x1")?.services[0]?.destinations.some((d) => d.realServer === rsName("s3"));
    });
    kernels.get("x1")!.delayMs = 2500;
    const started = Date.now();
    const got: DrainRealServerResponse[] = [];
    try {
      await collect(f.client.drainRealServer({ name: rsName("s3"), wait: true, keep: true, deadline: { seconds: 30n, nanos: 0 } }), got);
    } finally {
      kernels.get("x1")!.delayMs = 0;
    }
    const last = got[got.length - 1]!;
    expect(last.phase).toBe(DrainPhase.DRAINED);
    // x1 was seen not applied (its old counters said 0) before the end, and the end came after its apply.
    expect(got.some((m) => m.phase === DrainPhase.WAITING && m.directors.find((d) => d.host === "x1")?.applied === false)).toBe(true);
    const x1Apply = kernels.get("x1")!.applies.find((a) => a.revision >= got[0]!.revision)!;
    expect(x1Apply.at).toBeGreaterThanOrEqual(started);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    // keep: still there, drained.
    expect((await f.store.realServers.get(SITE, "shop", "s3")).resource).toMatchObject({ draining: true, weight: 2 });
  });

  it("lvsfleet drain --wait prints progress lines and the result; bad names are INVALID_ARGUMENT", async () => {
    const l = await addRealServer("s4", 4, 3);
    await l.open(1);
    let out = "";
    let err = "";
    const io = { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), isTTY: false };
    const running = runDrain(["drain", `${SITE}/shop/s4`, "--wait", "--deadline", "60s", "--addr", f.server.address], {}, io);
    await waitFor("a progress line with 1 active", () => out.includes("2 active connections (x0 1 active, x1 1 active)"), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}; printed: ${out}${err}`);
    });
    await l.closeAll();
    expect(await running).toBe(0);
    expect(err).toBe("");
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/draining at revision \d+: waiting for its Directors$/);
    expect(lines[lines.length - 1]).toMatch(new RegExp(`^${rsName("s4")} drained in \\d+s and deleted at revision \\d+$`));
    // Non-TTY: one line per change, never a carriage return.
    expect(out).not.toContain("\r");

    const e = await f.client.drainRealServer({ name: "sites/x/oops", wait: false, keep: false })[Symbol.asyncIterator]().next().then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).codeName).toBe("INVALID_ARGUMENT");
    expect(await runDrain(["drain", "nope"], {}, io)).toBe(2);
    expect(await runDrain(["undrain", `${SITE}/shop/missing`, "--addr", f.server.address], {}, io)).toBe(1);
    expect(err).toContain("NOT_FOUND");
  });
});
