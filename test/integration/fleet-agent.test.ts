// The host agent against the real NATS: own-key watch, never older, resume after restart, reports,
// and the lvsfleet-agent binary. Desired states are put straight into a per-file bucket (the relay
// has its own tests).
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { HostDesiredStateSchema, type HostDesiredState } from "../../gen/lvsfleet/v1/desired_state_pb.js";
import { AgentPhase, AgentReportSchema, type AgentReport } from "../../gen/lvsfleet/v1/agent_report_pb.js";
import { DEFAULTS, loadConfig, ConfigError, type AgentConfig } from "../../agents/hostagent/config.js";
import { FakeBackend } from "../../agents/hostagent/kernel/fake-backend.js";
import { startAgent, type Agent } from "../../agents/hostagent/sync/agent.js";
import { SHARED_NATS_URL, uniqueName, waitFor } from "./fleet-harness.js";

const SITE = "t1";
let nc: NatsConnection;
let kv: KV;
let bucket: string;
let stateRoot: string;
const agents: Agent[] = [];

function desired(host: string, revision: bigint, weight = 1): HostDesiredState {
  return create(HostDesiredStateSchema, {
    site: SITE,
    host,
    revision,
    hash: `h-${host}-${revision}-${weight}`,
    sysctls: [{ key: "net.ipv4.ip_forward", value: String(weight) }],
  });
}

async function put(ds: HostDesiredState): Promise<void> {
  await kv.put(`${ds.site}.${ds.host}`, toBinary(HostDesiredStateSchema, ds));
}

function config(host: string, extra: Partial<AgentConfig> = {}): AgentConfig {
  return {
    ...DEFAULTS,
    site: SITE,
    host,
    natsServers: [SHARED_NATS_URL],
    bucket,
    stateDir: join(stateRoot, host),
    heartbeatSeconds: 1,
    resyncSeconds: 2,
    retrySeconds: 0.2,
    backoffBaseMs: 50,
    backoffMaxMs: 500,
    ...extra,
  };
}

async function agent(host: string, backend = new FakeBackend(), extra: Partial<AgentConfig> = {}) {
  const a = await startAgent({ config: config(host, extra), backend });
  agents.push(a);
  return { a, backend };
}

/** Collects the reports of one host. */
async function reportsOf(host: string): Promise<{ list: AgentReport[]; stop(): void }> {
  const list: AgentReport[] = [];
  const sub = nc.subscribe(`lvsfleet.status.${SITE}.${host}`, {
    callback: (_e, m) => {
      list.push(fromBinary(AgentReportSchema, m.data));
    },
  });
  await nc.flush();
  return { list, stop: () => sub.unsubscribe() };
}

beforeAll(async () => {
  nc = await connect({ servers: SHARED_NATS_URL });
  bucket = uniqueName("lvsfleet-desired-t");
  kv = await new Kvm(nc).create(bucket, { history: 1 });
  stateRoot = await mkdtemp(join(tmpdir(), "lvsfleet-agent-"));
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await kv?.destroy().catch(() => undefined);
  await nc?.close();
  await rm(stateRoot, { recursive: true, force: true });
});

describe("host agent", () => {
  it("applies only its own key", async () => {
    const one = await agent("own-a");
    const two = await agent("own-b");
    await put(desired("own-a", 10n));
    await one.backend.waitFor((x) => x.revision === 10n);
    await put(desired("own-b", 11n));
    await two.backend.waitFor((x) => x.revision === 11n);
    // Give a stray delivery time to arrive before asserting nothing else came.
    await new Promise((r) => setTimeout(r, 200));
    expect(one.backend.applies.map((x) => [x.desired.host, x.revision])).toEqual([["own-a", 10n]]);
    expect(two.backend.applies.map((x) => [x.desired.host, x.revision])).toEqual([["own-b", 11n]]);
  });

  it("never applies an older or the same revision", async () => {
    const { backend } = await agent("mono");
    await put(desired("mono", 5n));
    await backend.waitFor((x) => x.revision === 5n);
    await put(desired("mono", 3n));
    await put(desired("mono", 5n, 2));
    await put(desired("mono", 6n));
    await backend.waitFor((x) => x.revision === 6n);
    expect(backend.applies.map((x) => x.revision)).toEqual([5n, 6n]);
  });

  it("gets the latest state after being offline during 100 changes, and persists it", async () => {
    const host = "offline";
    let { a, backend } = await agent(host);
    await put(desired(host, 1n));
    await backend.waitFor((x) => x.revision === 1n);
    await a.stop();
    for (let r = 2n; r <= 101n; r++) await put(desired(host, r, Number(r)));
    ({ a, backend } = await agent(host));
    await backend.waitFor((x) => x.revision === 101n);
    // applied() moves once the state file is written.
    await waitFor("revision 101 persisted", () => a.applied().revision === 101n);
    await new Promise((r) => setTimeout(r, 200));
    // One apply: the newest; the 99 states in between were never handed to the kernel.
    expect(backend.applies.map((x) => x.revision)).toEqual([101n]);
    expect(backend.current?.sysctls[0]?.value).toBe("101");
    const file = JSON.parse(await readFile(join(stateRoot, host, `agent-${SITE}.${host}.json`), "utf8"));
    expect(file).toMatchObject({ site: SITE, host, appliedRevision: "101" });
    // Restarted once more on the same state dir: revision 101 is not applied again.
    await a.stop();
    ({ a, backend } = await agent(host));
    expect(a.applied().revision).toBe(101n);
    await put(desired(host, 101n));
    await new Promise((r) => setTimeout(r, 300));
    expect(backend.applies).toEqual([]);
    await put(desired(host, 102n));
    await backend.waitFor((x) => x.revision === 102n);
  });

  it("reports applies, errors and heartbeats as AgentReport on lvsfleet.status.<site>.<host>", async () => {
    const host = "rep";
    const reports = await reportsOf(host);
    const backend = new FakeBackend();
    backend.failWith = [{ object: "address lo 192.0.2.1/32", operation: "add", message: "EPERM" }];
    const { a } = await agent(host, backend);
    await put(desired(host, 7n));
    const err = await waitFor("an ERROR report", () => reports.list.find((r) => r.phase === AgentPhase.ERROR));
    expect(err.errors).toEqual([expect.objectContaining({ object: "address lo 192.0.2.1/32", operation: "add", message: "EPERM" })]);
    expect(err.appliedRevision).toBe(0n);
    expect(err.seenRevision).toBe(7n);
    expect(err.agentId).toBe(a.agentId);
    // The kernel recovers: the retry succeeds without a new publish.
    backend.failWith = undefined;
    const ok = await waitFor("an applied report", () => reports.list.find((r) => r.appliedRevision === 7n && r.phase === AgentPhase.IDLE));
    expect(ok.appliedHash).toBe(`h-${host}-7-1`);
    expect(ok.errors).toEqual([]);
    expect(backend.applies.length).toBeGreaterThanOrEqual(2);
    // Heartbeats keep coming with nothing to apply, and say how often they come.
    const n = reports.list.length;
    const hb = await waitFor("two more reports", () => reports.list.length >= n + 2 && reports.list.at(-1), 5_000);
    expect(hb.heartbeatSeconds).toBe(1);
    expect(hb.appliedRevision).toBe(7n);
    reports.stop();
  });

  it("reports APPLYING only for an apply still running after applyingReportMs; a fast apply sends just its result", async () => {
    const host = "slow";
    const reports = await reportsOf(host);
    const backend = new FakeBackend();
    backend.delayMs = 700;
    // Heartbeats far apart: every report here comes from an apply.
    const a = await startAgent({ config: config(host, { heartbeatSeconds: 60 }), backend, applyingReportMs: 150 });
    agents.push(a);
    await waitFor("the start report", () => reports.list.length > 0);
    const t0 = Date.now();
    await put(desired(host, 3n));
    const applying = await waitFor("an APPLYING report", () => reports.list.find((r) => r.phase === AgentPhase.APPLYING));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(applying).toMatchObject({ seenRevision: 3n, appliedRevision: 0n });
    await waitFor("revision 3 reported applied", () => reports.list.find((r) => r.appliedRevision === 3n && r.phase === AgentPhase.IDLE));
    const n = reports.list.length;
    backend.delayMs = 0;
    await put(desired(host, 4n));
    await waitFor("revision 4 reported applied", () => reports.list.find((r) => r.appliedRevision === 4n && r.phase === AgentPhase.IDLE));
    await new Promise((r) => setTimeout(r, 300));
    expect(reports.list.slice(n).map((r) => [r.phase, r.appliedRevision])).toEqual([[AgentPhase.IDLE, 4n]]);
    reports.stop();
  });

  it("configuration: flags over env over file, and clear errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lvsfleet-cfg-"));
    const file = join(dir, "agent.json");
    await import("node:fs/promises").then((fs) => fs.writeFile(file, JSON.stringify({ site: "fs", host: "fh", heartbeatSeconds: 9, stateDir: "/x" })));
    const fromFile = loadConfig(["--config", file], {});
    expect(fromFile).toMatchObject({ site: "fs", host: "fh", heartbeatSeconds: 9, stateDir: "/x", natsServers: ["nats://127.0.0.1:4222"] });
    const fromEnv = loadConfig(["--config", file], { LVSFLEET_SITE: "es", NATS_URL: "nats://a:1,nats://b:2" });
    expect(fromEnv).toMatchObject({ site: "es", host: "fh", natsServers: ["nats://a:1", "nats://b:2"] });
    const fromFlags = loadConfig(["--config", file, "--site", "xs", "--host", "xh", "--heartbeat", "2"], { LVSFLEET_SITE: "es" });
    expect(fromFlags).toMatchObject({ site: "xs", host: "xh", heartbeatSeconds: 2 });
    expect(fromFlags.kernel).toBe("linux");
    expect(loadConfig(["--config", file], { LVSFLEET_KERNEL: "fake" }).kernel).toBe("fake");
    expect(loadConfig(["--config", file, "--kernel", "fake"], { LVSFLEET_KERNEL: "linux" }).kernel).toBe("fake");
    expect(() => loadConfig(["--config", file, "--kernel", "bsd"], {})).toThrow(/kernel must be linux or fake/);
    expect(loadConfig(["--config", file], {}).bucket).toBe("lvsfleet-desired");
    expect(loadConfig(["--config", file], { LVSFLEET_DESIRED_BUCKET: "envb" }).bucket).toBe("envb");
    expect(loadConfig(["--config", file, "--bucket", "flagb"], { LVSFLEET_DESIRED_BUCKET: "envb" }).bucket).toBe("flagb");
    expect(() => loadConfig([], {})).toThrow(ConfigError);
    expect(() => loadConfig(["--site", "a.b", "--host", "h"], {})).toThrow(/subject token/);
    expect(() => loadConfig(["--site", "a", "--host", "h", "--heartbeat", "0"], {})).toThrow(/positive/);
    await rm(dir, { recursive: true, force: true });
  });

  it("runs as npx lvsfleet-agent and stops on SIGTERM", async () => {
    const host = "bin";
    const reports = await reportsOf(host);
    const stateDir = join(stateRoot, "bin-state");
    const child = spawn(process.execPath, ["bin/lvsfleet-agent.mjs", "--kernel", "fake", "--site", SITE, "--host", host, "--bucket", bucket, "--heartbeat", "1"], {
      env: { ...process.env, NATS_URL: SHARED_NATS_URL, LVSFLEET_STATE_DIR: stateDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d) => (out += String(d)));
    child.stderr!.on("data", (d) => (out += String(d)));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await waitFor("a report from the agent process", () => reports.list.length > 0, 20_000);
      await put(desired(host, 42n));
      const r = await waitFor("revision 42 applied by the process", () => reports.list.find((x) => x.appliedRevision === 42n), 10_000);
      expect(r.host).toBe(host);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const file = JSON.parse(await readFile(join(stateDir, `agent-${SITE}.${host}.json`), "utf8"));
      expect(file.appliedRevision).toBe("42");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      reports.stop();
    }
    expect(out).toContain("agent started");
  });
});
