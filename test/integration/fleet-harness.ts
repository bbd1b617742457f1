// Helpers for the fleet-distribution tests (test/integration/fleet-*.test.ts): a private
// nats-server with JetStream on a free port in a temp dir (for kill / restart / wipe), unique names
// on the shared server, and polling.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

export const SHARED_NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
export const NATS_SERVER_BIN = process.env.LVSFLEET_NATS_SERVER ?? "/usr/sbin/nats-server";

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString("hex")}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect({ port, host: "127.0.0.1" });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A nats-server with JetStream of our own, on a fixed free port, storing in a temp dir. */
export class PrivateNats {
  private proc: ChildProcess | undefined;
  private restarting: Promise<unknown> | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateNats> {
    const dir = await mkdtemp(join(tmpdir(), "lvsfleet-nats-"));
    const n = new PrivateNats(await freePort(), dir);
    await n.startProcess();
    return n;
  }

  async startProcess(): Promise<void> {
    const p = spawn(NATS_SERVER_BIN, ["-js", "-sd", join(this.dir, "js"), "-a", "127.0.0.1", "-p", String(this.port)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    p.stderr!.on("data", (d) => (stderr = (stderr + String(d)).slice(-64_000)));
    p.once("exit", (code, signal) => {
      if (this.proc !== p) return;
      // Debian's nats-server 2.9.10 occasionally segfaults right after a restart on a wiped store when
      // the machine is loaded (clients rushing back). Like its systemd unit (Restart=on-failure), start
      // it again: the system under test must cope with that too.
      this.proc = undefined;
      const panic = stderr.slice(Math.max(0, stderr.indexOf("[signal")), stderr.indexOf("[signal") + 600);
      process.stderr.write(`private nats-server on ${this.port} exited unexpectedly (${code ?? signal}); restarting it\n${panic}\n`);
      this.restarting = this.startProcess().catch((err) => process.stderr.write(`restart failed: ${String(err)}\n`));
    });
    this.proc = p;
    await waitFor(`nats-server on ${this.port}`, async () => {
      if (p.exitCode !== null) throw new Error(`nats-server exited ${p.exitCode}: ${stderr}`);
      return (await portOpen(this.port)) && stderr.includes("Server is ready");
    }, 15_000, 20);
  }

  /** SIGKILL (no clean shutdown) and wait for the exit. */
  async kill(): Promise<void> {
    await this.restarting;
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.startProcess();
  }

  /** Kill, delete the JetStream store, start again: the server comes back knowing nothing. */
  async wipeAndRestart(): Promise<void> {
    await this.kill();
    await rm(join(this.dir, "js"), { recursive: true, force: true });
    await this.startProcess();
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

// --- a fleet: topology in a real store, agents in-process with the fake backend --------------------

import { create } from "@bufbuild/protobuf";
import { mkdtemp as mkdtempFs } from "node:fs/promises";
import type pg from "pg";
import { HostSchema, RealServerSchema, SiteSchema, VirtualServiceSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { DEFAULTS, type AgentConfig } from "../../agents/hostagent/config.js";
import { FakeBackend } from "../../agents/hostagent/kernel/fake-backend.js";
import { startAgent, type Agent } from "../../agents/hostagent/sync/agent.js";
import { fromBinary } from "@bufbuild/protobuf";
import type { KV } from "@nats-io/kv";
import { HostDesiredStateSchema, SiteDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { joinDesiredState, joinedHash } from "../../agents/hostagent/sync/combine.js";
import { compileSite, compileSitePart, emptySitePart, hostPart, SITE_PART } from "../../services/controlplane/compile/index.js";
import { emptyDesiredState, loadSiteTopology } from "../../services/controlplane/relay/index.js";
import type { TopologyStore } from "../../services/controlplane/store/index.js";

export const meta = (operation: string) => ({ actor: "test", operation });

export interface FleetShape {
  site: string;
  directors: string[];
  realServers: string[];
  /** vs id → { director, real server host ids } */
  services: Map<string, { director: string; rsHosts: string[]; vip: string }>;
}

/**
 * `nDirectors` Directors and `nRealServers` real-server hosts; one DR virtual service per real
 * server pair, carried by Directors round robin. Every real-server host serves one service.
 */
export async function buildFleet(store: TopologyStore, site: string, nDirectors: number, nRealServers: number): Promise<FleetShape> {
  await store.sites.create(meta("CreateSite"), site, create(SiteSchema, {}));
  const directors: string[] = [];
  const realServers: string[] = [];
  for (let i = 0; i < nDirectors; i++) {
    const id = `d${i}`;
    directors.push(id);
    await store.hosts.create(meta("CreateHost"), site, id, create(HostSchema, {
      roles: [HostRole.DIRECTOR],
      addresses: [`192.0.2.${10 + i}`],
      interfaces: [{ name: "eth0", addresses: [`192.0.2.${10 + i}/24`] }],
    }));
  }
  for (let i = 0; i < nRealServers; i++) {
    const id = `r${i}`;
    realServers.push(id);
    await store.hosts.create(meta("CreateHost"), site, id, create(HostSchema, {
      roles: [HostRole.REAL_SERVER],
      addresses: [`198.51.100.${10 + i}`],
      interfaces: [{ name: "eth0", addresses: [`198.51.100.${10 + i}/24`] }],
    }));
  }
  const services = new Map<string, { director: string; rsHosts: string[]; vip: string }>();
  for (let i = 0; i * 2 < nRealServers; i++) {
    const vsId = `web${i}`;
    const director = directors[i % nDirectors]!;
    const vip = `203.0.113.${1 + i}`;
    await store.virtualServices.create(meta("CreateVirtualService"), site, vsId, create(VirtualServiceSchema, {
      protocol: Protocol.TCP,
      address: vip,
      port: 80,
      scheduler: "wlc",
      directors: [`sites/${site}/hosts/${director}`],
    }));
    const rsHosts = realServers.slice(i * 2, i * 2 + 2);
    for (const h of rsHosts) {
      await store.realServers.create(meta("CreateRealServer"), site, vsId, h, create(RealServerSchema, {
        address: `198.51.100.${10 + Number(h.slice(1))}`,
        port: 80,
        forwardMethod: ForwardMethod.DR,
        weight: 1,
        host: `sites/${site}/hosts/${h}`,
      }));
    }
    services.set(vsId, { director, rsHosts, vip });
  }
  return { site, directors, realServers, services };
}

export async function setWeight(store: TopologyStore, site: string, vsId: string, rsId: string, weight: number): Promise<bigint> {
  const w = await store.realServers.update(meta("UpdateRealServer"), site, vsId, rsId, create(RealServerSchema, { weight }), { paths: ["weight"] });
  return w.revision;
}

/**
 * The oracle: per host, the hash an agent reports once it applied the current topology — the join
 * of its host part and the site part (agents/hostagent/sync/combine.ts) — from a full compile of
 * the database, independent of the relay's incremental cache.
 */
export async function expectedHashes(pool: pg.Pool, site: string, hosts: string[]): Promise<Map<string, string>> {
  const { host, site: sitePart } = await expectedParts(pool, site, hosts);
  return new Map(hosts.map((h) => [h, joinedHash(host.get(h)!, sitePart)]));
}

/** The oracle's parts: each host part's hash (desired_states.hash, the KV host value) and the site part's. */
export async function expectedParts(pool: pg.Pool, site: string, hosts: string[]): Promise<{ host: Map<string, string>; site: string }> {
  const c = await pool.connect();
  try {
    const topo = await loadSiteTopology(c, site);
    const states = topo ? compileSite(topo, 0n) : new Map();
    return {
      host: new Map(hosts.map((h) => [h, hostPart(states.get(h) ?? emptyDesiredState(site, h)).hash])),
      site: (topo ? compileSitePart(topo) : emptySitePart(site)).hash,
    };
  } finally {
    c.release();
  }
}

/** What the KV holds for a host, joined as its agent joins it: undefined while a part is missing. */
export async function publishedState(kv: KV, site: string, host: string): Promise<HostDesiredState | undefined> {
  const [h, p] = await Promise.all([kv.get(`${site}.${host}`), kv.get(`${site}.${SITE_PART}`)]);
  if (!h || h.operation !== "PUT") return undefined;
  return joinDesiredState(fromBinary(HostDesiredStateSchema, h.value), p && p.operation === "PUT" ? fromBinary(SiteDesiredStateSchema, p.value) : undefined);
}

export interface FleetAgent {
  host: string;
  backend: FakeBackend;
  agent: Agent;
  config: AgentConfig;
}

export class AgentFleet {
  readonly agents = new Map<string, FleetAgent>();
  private constructor(
    readonly site: string,
    readonly natsUrl: string,
    readonly bucket: string,
    readonly stateRoot: string,
    readonly overrides: Partial<AgentConfig>,
  ) {}

  static async create(site: string, natsUrl: string, bucket: string, overrides: Partial<AgentConfig> = {}): Promise<AgentFleet> {
    return new AgentFleet(site, natsUrl, bucket, await mkdtempFs(join(tmpdir(), "lvsfleet-fleet-")), overrides);
  }

  configFor(host: string): AgentConfig {
    return {
      ...DEFAULTS,
      site: this.site,
      host,
      natsServers: [this.natsUrl],
      bucket: this.bucket,
      stateDir: join(this.stateRoot, host),
      heartbeatSeconds: 2,
      resyncSeconds: 1,
      retrySeconds: 0.2,
      backoffBaseMs: 50,
      backoffMaxMs: 400,
      ...this.overrides,
    };
  }

  async start(host: string, backend = new FakeBackend()): Promise<FleetAgent> {
    const config = this.configFor(host);
    const agent = await startAgent({ config, backend });
    const a = { host, backend, agent, config };
    this.agents.set(host, a);
    return a;
  }

  async startAll(hosts: string[]): Promise<void> {
    await Promise.all(hosts.map((h) => this.start(h)));
  }

  async stop(host: string): Promise<FleetAgent> {
    const a = this.agents.get(host)!;
    await a.agent.stop();
    return a;
  }

  /** Waits until every running agent's kernel (fake) holds the oracle's state. */
  async converged(pool: pg.Pool, timeoutMs = 20_000): Promise<Map<string, string>> {
    const hosts = [...this.agents.keys()];
    const want = await expectedHashes(pool, this.site, hosts);
    await waitFor(
      "every agent converged",
      () => {
        const behind = hosts.filter((h) => this.agents.get(h)!.backend.current?.hash !== want.get(h));
        return behind.length === 0 ? true : undefined;
      },
      timeoutMs,
      50,
    ).catch((err: Error) => {
      const behind = hosts.filter((h) => this.agents.get(h)!.backend.current?.hash !== want.get(h));
      throw new Error(`${err.message}; behind: ${behind.slice(0, 10).join(", ")} (${behind.length})`);
    });
    return want;
  }

  /** Every agent only ever applied strictly increasing revisions. */
  assertMonotonic(): void {
    for (const [host, a] of this.agents) {
      const revs = a.backend.applies.map((x) => x.revision);
      for (let i = 1; i < revs.length; i++) {
        if (!(revs[i]! > revs[i - 1]!)) throw new Error(`${host} applied ${revs[i]} after ${revs[i - 1]}`);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.agent.stop()));
    await rm(this.stateRoot, { recursive: true, force: true });
  }
}
