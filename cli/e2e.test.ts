/**
 * End to end: the real control plane (TopologyService over the real store) in this process, on a
 * fresh database of the shared Postgres (127.0.0.1:5432), and the CLI as a child process exactly as
 * an operator runs it (`node bin/lvsfleet.mjs …`). The first test is the README's five-minute tour,
 * command for command.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { TopologyService } from "../gen/lvsfleet/v1/topology_service_pb.js";
import { bind, startGrpcServer, type RunningServer } from "../lib/grpc/serve.js";
import { topologyService } from "../services/controlplane/api/topology-service.js";
import { createPool, TopologyStore } from "../services/controlplane/store/index.js";
import { createTestDatabase, type TestDatabase } from "../test/harness/postgres.js";
import { run } from "./run.js";

const BIN = fileURLToPath(new URL("../bin/lvsfleet.mjs", import.meta.url));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let db: TestDatabase;
let pool: pg.Pool;
let server: RunningServer;

/**
 * Runs `lvsfleet <line>` (split on spaces, '…' quoting allowed) against the test server. Async on
 * purpose: the server lives in this process and must keep answering while the child runs.
 */
function lvsfleet(line: string, extraEnv: Record<string, string> = {}): Promise<Result> {
  const args = [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, LVSFLEET_ADDR: server.address, ...extraEnv }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * The same CLI code (cli/run.ts) called in this process: for the broader tests, where spawning a
 * Node process per command (2 s each on a busy 2-core CI machine) buys nothing the tour does not
 * already show.
 */
async function inProcess(line: string): Promise<Result> {
  const args = [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  let stdout = "";
  let stderr = "";
  const code = await run(args, { LVSFLEET_ADDR: server.address }, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

/** Asserts success and returns stdout. */
async function ok(line: string, exec: (line: string) => Promise<Result> = lvsfleet): Promise<string> {
  const r = await exec(line);
  expect(r.stderr, `stderr of: lvsfleet ${line}`).toBe("");
  expect(r.code, `exit code of: lvsfleet ${line}`).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
  server = await startGrpcServer({ address: "127.0.0.1:0", services: [bind(TopologyService, topologyService(new TopologyStore(pool)))] });
});

afterAll(async () => {
  await server?.shutdown(1000);
  await pool?.end();
  await db?.drop();
});

describe("lvsfleet CLI against the real control plane", { timeout: 180_000 }, () => {
  it("the five-minute tour (README)", async () => {
    // A site, a Director, a DR service carried by that Director, two real servers.
    expect(await ok("site create ams1 --display-name Amsterdam")).toMatch(/^Name: +sites\/ams1$/m);
    expect(await ok("host create ams1/lb1 --role director --address 192.0.2.2")).toMatch(/^Roles: +director$/m);
    const vs = await ok("vs create ams1/web --tcp 192.0.2.10:80 --scheduler wlc --director lb1");
    expect(vs).toMatch(/^Service: +TCP {2}192\.0\.2\.10:80$/m);
    expect(vs).toMatch(/^Directors: +sites\/ams1\/hosts\/lb1$/m);
    expect(await ok("rs create ams1/web/rs1 --address 198.51.100.11 --port 80 --dr")).toMatch(/^Forward: +Route$/m);
    expect(await ok("rs create ams1/web/rs2 --address 198.51.100.12 --port 80 --dr --weight 2")).toMatch(/^Weight: +2$/m);

    // The listing reads like ipvsadm -Ln.
    const list = await ok("list ams1");
    const revision = /^IP Virtual Server \(lvsfleet desired state\) site ams1 revision (\d+)$/m.exec(list)?.[1];
    expect(revision).toBeDefined();
    expect(list).toBe(
      [
        `IP Virtual Server (lvsfleet desired state) site ams1 revision ${revision}`,
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight",
        "TCP  192.0.2.10:80 wlc",
        "  -> 198.51.100.11:80             Route   1",
        "  -> 198.51.100.12:80             Route   2",
        "",
      ].join("\n"),
    );

    // Only NAT may remap ports: a DR real server on 8080 behind :80 is refused, naming the field.
    const bad = await lvsfleet("rs create ams1/web/rs3 --address 198.51.100.13 --port 8080 --dr");
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toMatch(/^error: INVALID_ARGUMENT: /);
    expect(bad.stderr).toMatch(/^error: INVALID_ARGUMENT: invalid real_server\.port: DR can't remap ports/);

    // --json prints the API's protobuf JSON.
    const json = JSON.parse(await ok("--json vs get ams1/web"));
    expect(json.virtualService).toMatchObject({
      name: "sites/ams1/virtualServices/web",
      protocol: "PROTOCOL_TCP",
      address: "192.0.2.10",
      port: 80,
      scheduler: "wlc",
      directors: ["sites/ams1/hosts/lb1"],
    });
    // Nothing was written by the refused command: the revision the listing read is still current.
    expect(json.revision).toBe(revision);
  });

  it("updates with a field mask and an etag, fwmark services, audit with a reason, deletes, usage errors", async () => {
    const ok2 = (line: string) => ok(line, inProcess);
    // A firewall mark grouping 80+443 and an IPv4 fwmark service using it.
    const mark = await ok2("mark create ams1/https --mark 10 --match tcp:192.0.2.10:80,443 --match tcp:192.0.2.10:10000-20000");
    expect(mark).toMatch(/^Matches: +tcp 192\.0\.2\.10 80,443$/m);
    await ok2("vs create ams1/web-fw --fwmark 10 --scheduler rr --persistent 300 --netmask 24 --director ams1/lb1");
    await ok2("rs create ams1/web-fw/a --address 198.51.100.21 --nat --port 8080 -x 100 -y 50");
    const list = await ok2("list ams1");
    expect(list).toContain("\nFWM  10 rr persistent 300 mask 255.255.255.0\n  -> 198.51.100.21:8080           Masq    1\n");

    // update: only the flags given change (update_mask), the rest stays.
    const got = JSON.parse(await ok2("--json site get ams1"));
    const updated = await ok2(`site update ams1 --tcp-timeout 900 --etag ${got.site.etag.replaceAll('"', "")} --reason 'raise tcp timeout'`);
    expect(updated).toMatch(/^IPVS timeouts: +tcp 900 tcpfin - udp -$/m);
    expect(updated).toMatch(/^Display name: +Amsterdam$/m);
    // The old etag is stale now: ABORTED, exit 1.
    const stale = await inProcess(`site update ams1 --udp-timeout 10 --etag ${got.site.etag}`);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^error: ABORTED: /);

    // The audit log has the reason sent as x-lvsfleet-reason metadata.
    const audit = await ok2("audit --site ams1 --resource sites/ams1");
    expect(audit.split("\n")[0]).toMatch(/^REVISION +TIME +ACTOR +OPERATION +RESOURCE +REASON$/);
    expect(audit).toMatch(/UpdateSite +sites\/ams1 +raise tcp timeout$/m);
    const auditJson = JSON.parse(await ok2("--json audit --site ams1"));
    expect(auditJson.auditEntries.length).toBeGreaterThanOrEqual(9);

    // rs update: weight 0 quiesces.
    await ok2("rs update ams1/web/rs2 --weight 0");
    expect(await ok2("list ams1")).toContain("\n  -> 198.51.100.12:80             Route   0\n");

    // Tables.
    const rss = await ok2("rs list ams1/web");
    expect(rss.trimEnd().split("\n")).toHaveLength(3);
    expect(await ok2("vs list ams1")).toMatch(/^sites\/ams1\/virtualServices\/web-fw +FWM {2}10 +rr persistent 300 mask 255\.255\.255\.0 +lb1 /m);
    expect(await ok2("host list")).toMatch(/^sites\/ams1\/hosts\/lb1 +director +192\.0\.2\.2 /m);
    expect(await ok2("site list")).toMatch(/^sites\/ams1 +Amsterdam +900 - - /m);

    // Deleting a site with children needs --force.
    const busy = await inProcess("site delete ams1");
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^error: FAILED_PRECONDITION: /);
    expect(await ok2("site delete ams1 --force")).toMatch(/^deleted \(revision \d+\)$/m);
    const gone = await inProcess("list ams1");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: NOT_FOUND: /);

    // Usage errors: exit 2 with the command's usage; nothing reaches the server.
    const usage = await inProcess("vs create ams1/x --tpc 192.0.2.1:80");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^error: Unknown option '--tpc'/);
    expect(usage.stderr).toMatch(/^Usage:$/m);
    const help = await inProcess("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Commands:$/m);
  });

  it("reports an unreachable control plane clearly", async () => {
    const r = await lvsfleet("site list --addr 127.0.0.1:1");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: UNAVAILABLE: cannot reach the control plane at 127\.0\.0\.1:1 /);
  });
});
