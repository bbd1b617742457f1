/**
 * Fleet distribution end to end, every piece a real process: a private nats-server (JetStream, temp
 * dir, free port), a fresh Postgres database, the control plane (services/controlplane/main.ts), two
 * host agents (agents/hostagent/main.ts --kernel fake) and the CLI (bin/lvsfleet.mjs).
 *
 * A DR service on Director lb1 with real servers web1 and web2 is created through the API; the test
 * then checks what each agent applied: the agent persists the hash of the state it applied (state
 * file) — the hash of a HostDesiredState is its content — and the value under the host's key in the
 * KV bucket must be that hash with the expected content (lb1: the IPVS service with 2 destinations;
 * web1: the VIP on lo). `lvsfleet rollout wait` must exit 0, `lvsfleet hosts` must show both
 * CONVERGED, and a stopped agent must turn OFFLINE after its heartbeats stop.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { HostDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { ForwardMethod, HostRole, Protocol } from "../../gen/lvsfleet/v1/types_pb.js";
import { createClient } from "../../lib/grpc/client.js";
import { createTestDatabase, type TestDatabase } from "../harness/postgres.js";
import { freePort, PrivateNats, publishedState, waitFor } from "./fleet-harness.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SITE = "e2e1";
const HEARTBEAT_S = 1;

interface Proc {
  name: string;
  p: ChildProcess;
  out: string;
}

const procs: Proc[] = [];
let nats: PrivateNats | undefined;
let db: TestDatabase | undefined;
let stateDir: string | undefined;
let nc: NatsConnection | undefined;
let grpcAddr = "";

/** Starts a node process in its own process group (so cleanup reaches every child), keeping its output. */
function start(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const p = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const proc: Proc = { name, p, out: "" };
  const keep = (d: Buffer) => (proc.out = (proc.out + d.toString()).slice(-200_000));
  p.stdout!.on("data", keep);
  p.stderr!.on("data", keep);
  procs.push(proc);
  return proc;
}

async function stopProc(proc: Proc, signal: NodeJS.Signals = "SIGTERM", waitMs = 10_000): Promise<void> {
  const { p } = proc;
  if (!p.pid || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  try {
    process.kill(-p.pid, signal);
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(-p.pid!, "SIGKILL");
    } catch {
      // gone
    }
  }, waitMs);
  await exited;
  clearTimeout(t);
}

/** Runs the CLI to completion: exit code and output. */
function cli(args: string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = start(`cli ${args.join(" ")}`, ["bin/lvsfleet.mjs", "--addr", grpcAddr, ...args], { LVSFLEET_ADDR: grpcAddr });
  let stdout = "";
  let stderr = "";
  proc.p.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  proc.p.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    const t = setTimeout(() => void stopProc(proc, "SIGKILL"), timeoutMs);
    proc.p.once("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

function startAgentProc(host: string): Proc {
  return start(`agent ${host}`, [
    "--import",
    "tsx",
    "agents/hostagent/main.ts",
    "--kernel",
    "fake",
    "--site",
    SITE,
    "--host",
    host,
    "--nats",
    nats!.url,
    "--state-dir",
    stateDir!,
    "--heartbeat",
    String(HEARTBEAT_S),
  ]);
}

async function appliedHash(host: string): Promise<{ revision: bigint; hash: string } | undefined> {
  try {
    const f = JSON.parse(await readFile(join(stateDir!, `agent-${SITE}.${host}.json`), "utf8")) as { appliedRevision: string; appliedHash: string };
    return { revision: BigInt(f.appliedRevision), hash: f.appliedHash };
  } catch {
    return undefined;
  }
}

/** The host's state as published (its host part joined with the site part, as the agent joins them). */
async function published(host: string): Promise<HostDesiredState | undefined> {
  return publishedState(await new Kvm(nc!).open("lvsfleet-desired"), SITE, host);
}

function diagnostics(): string {
  return procs.map((p) => `--- ${p.name} (exit ${p.p.exitCode ?? p.p.signalCode ?? "running"})\n${p.out.slice(-3000)}`).join("\n");
}

beforeAll(async () => {
  nats = await PrivateNats.start();
  db = await createTestDatabase();
  stateDir = await mkdtemp(join(tmpdir(), "lvsfleet-e2e-agents-"));
  grpcAddr = `127.0.0.1:${await freePort()}`;
  const cp = start("controlplane", ["--import", "tsx", "services/controlplane/main.ts"], {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    LVSFLEET_GRPC_ADDR: grpcAddr,
    LVSFLEET_LOG_LEVEL: "info",
  });
  await waitFor("control plane serving", () => {
    if (cp.p.exitCode !== null) throw new Error(`control plane exited ${cp.p.exitCode}: ${cp.out}`);
    return cp.out.includes('"msg":"serving"');
  }, 60_000, 50);
  nc = await connect({ servers: nats.url });
}, 120_000);

afterAll(async () => {
  await nc?.close().catch(() => undefined);
  // Agents and CLIs first, the control plane last; SIGKILL whatever does not stop in time.
  for (const p of [...procs].reverse()) await stopProc(p, "SIGTERM", 5_000);
  await nats?.stop();
  await db?.drop().catch(() => undefined);
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
}, 60_000);

it("a DR service reaches the Director and both real servers; rollout wait, hosts, OFFLINE", async () => {
  const api = createClient(TopologyService, grpcAddr);
  try {
    const site = `sites/${SITE}`;
    await api.createSite({ siteId: SITE, site: {} });
    await api.createHost({ parent: site, hostId: "lb1", host: { roles: [HostRole.DIRECTOR], addresses: ["192.0.2.2"], interfaces: [{ name: "eth0", addresses: ["192.0.2.2/24"] }] } });
    for (const [h, a] of [["web1", "198.51.100.11"], ["web2", "198.51.100.12"]] as const) {
      await api.createHost({ parent: site, hostId: h, host: { roles: [HostRole.REAL_SERVER], addresses: [a], interfaces: [{ name: "eth0", addresses: [`${a}/24`] }] } });
    }
    await api.createVirtualService({
      parent: site,
      virtualServiceId: "http",
      virtualService: { protocol: Protocol.TCP, address: "203.0.113.10", port: 80, scheduler: "wrr", directors: [`${site}/hosts/lb1`] },
    });
    await api.createRealServer({
      parent: `${site}/virtualServices/http`,
      realServerId: "web1",
      realServer: { address: "198.51.100.11", port: 80, weight: 3, forwardMethod: ForwardMethod.DR, host: `${site}/hosts/web1` },
    });
    const last = await api.createRealServer({
      parent: `${site}/virtualServices/http`,
      realServerId: "web2",
      realServer: { address: "198.51.100.12", port: 80, weight: 1, forwardMethod: ForwardMethod.DR, host: `${site}/hosts/web2` },
    });
    const revision = last.revision;
    expect(revision).toBeGreaterThan(0n);

    // Agents for lb1 and web1 (web2 has none: it must be what the rollout waits for at first).
    const lb1 = startAgentProc("lb1");
    startAgentProc("web1");

    // What the agents applied = the published state with the hash they persisted.
    const lbApplied = await waitFor("lb1 applied the revision", async () => {
      const a = await appliedHash("lb1");
      return a && a.revision >= revision ? a : undefined;
    }, 60_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    const lbState = await published("lb1");
    expect(lbState?.hash).toBe(lbApplied.hash);
    const svc = lbState!.director!.services;
    expect(svc).toHaveLength(1);
    expect(svc[0]).toMatchObject({ address: "203.0.113.10", port: 80, protocol: Protocol.TCP, scheduler: "wrr" });
    expect(svc[0]!.destinations.map((d) => [d.address, d.port, d.forwardMethod, d.weight]).sort()).toEqual([
      ["198.51.100.11", 80, ForwardMethod.DR, 3],
      ["198.51.100.12", 80, ForwardMethod.DR, 1],
    ]);
    expect(lbState!.realServer?.addresses ?? []).toEqual([]);

    // web1's state last changed with its own real server (an earlier revision): the agent must hold
    // the state published for it, whatever revision that was stamped with.
    const webApplied = await waitFor("web1 applied its published state", async () => {
      const [a, p] = [await appliedHash("web1"), await published("web1")];
      return a && p && p.realServer && a.hash === p.hash ? a : undefined;
    }, 60_000, 100);
    const webState = await published("web1");
    expect(webState?.hash).toBe(webApplied.hash);
    expect(webState!.director?.services ?? []).toEqual([]);
    expect(webState!.realServer!.addresses.map((v) => [v.interface, v.address, v.prefixLength])).toEqual([["lo", "203.0.113.10", 32]]);
    expect(webState!.sysctls.filter((s) => /arp_(ignore|announce)$/.test(s.key)).length).toBeGreaterThan(0);

    // web2 has no agent yet: the rollout cannot complete, and the CLI says who is missing.
    const short = await cli(["rollout", "wait", "--revision", String(revision), "--site", SITE, "--timeout", "2s"]);
    expect(short.code, short.stdout + short.stderr).toBe(1);
    expect(short.stdout).toContain(`${SITE}/web2`);
    expect(short.stdout).not.toMatch(new RegExp(`^${SITE}/lb1 `, "m"));

    startAgentProc("web2");
    const wait = await cli(["rollout", "wait", "--revision", String(revision), "--timeout", "60s"]);
    expect(wait.code, wait.stdout + wait.stderr + diagnostics()).toBe(0);
    expect(wait.stdout).toContain(`rollout complete: 3/3 hosts at revision ${revision}`);
    expect(wait.stdout).not.toContain("\r"); // not a terminal: plain lines

    const hosts = await cli(["hosts", "--site", SITE, "--json"]);
    expect(hosts.code, hosts.stderr).toBe(0);
    const list = (JSON.parse(hosts.stdout) as { statuses: Array<{ host: string; state: string; appliedRevision?: string }> }).statuses;
    expect(list.map((s) => [s.host, s.state]).sort()).toEqual([
      ["lb1", "HOST_STATE_CONVERGED"],
      ["web1", "HOST_STATE_CONVERGED"],
      ["web2", "HOST_STATE_CONVERGED"],
    ]);
    const table = await cli(["hosts", "--site", SITE]);
    expect(table.stdout).toMatch(new RegExp(`^${SITE}/lb1\\s+CONVERGED\\s+${revision}\\s`, "m"));

    // Stop lb1's agent: after 3 missed heartbeats it is OFFLINE; the others stay CONVERGED.
    await stopProc(lb1);
    const offline = await waitFor("lb1 OFFLINE", async () => {
      const r = await cli(["hosts", "--site", SITE, "--state", "OFFLINE"]);
      return r.code === 0 && new RegExp(`^${SITE}/lb1\\s+OFFLINE\\s`, "m").test(r.stdout) ? r.stdout : undefined;
    }, 30_000, 500);
    expect(offline).not.toContain(`${SITE}/web1`);
    const converged = await cli(["hosts", "--state", "converged"]);
    expect(converged.stdout).toMatch(new RegExp(`^${SITE}/web1\\s+CONVERGED`, "m"));
    expect(converged.stdout).not.toContain(`${SITE}/lb1`);
  } finally {
    api.close();
  }
}, 240_000);
