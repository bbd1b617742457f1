/**
 * cli/run.ts with a recording stand-in for the client: paging, metadata, exit codes, error text.
 * The real server is exercised by e2e.test.ts; this covers what a small database cannot show
 * (several pages) and what must never reach a server (usage errors).
 */
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { TopologyService } from "../gen/lvsfleet/v1/topology_service_pb.js";
import { RealServerSchema, SiteSchema, VirtualServiceSchema } from "../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../gen/lvsfleet/v1/types_pb.js";
import type { CallOptions } from "../lib/grpc/client.js";
import { RpcError } from "../lib/grpc/status.js";
import { run, type TopologyClient } from "./run.js";

interface Recorded {
  method: string;
  request: Record<string, unknown>;
  opts?: CallOptions;
}

function fakeClient(handlers: Record<string, (req: Record<string, unknown>) => unknown>, calls: Recorded[], addrs: string[] = []) {
  return (addr: string): TopologyClient => {
    addrs.push(addr);
    const c: Record<string, unknown> = { close: () => undefined };
    for (const m of TopologyService.methods) {
      c[m.localName] = async (request: Record<string, unknown>, opts?: CallOptions) => {
        calls.push({ method: m.localName, request, opts });
        const h = handlers[m.localName];
        if (!h) throw new RpcError(grpc.status.UNIMPLEMENTED, `${m.name} not faked`);
        return create(m.output, h(request) as never);
      };
    }
    return c as unknown as TopologyClient;
  };
}

async function exec(argv: string[], connect: (addr: string) => TopologyClient, env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, env, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) }, connect);
  return { code, stdout, stderr };
}

describe("run", () => {
  it("follows next_page_token through every page of a List", async () => {
    const calls: Recorded[] = [];
    const all = Array.from({ length: 5 }, (_, i) => create(RealServerSchema, { name: `sites/a/virtualServices/w/realServers/r${i}`, address: `198.51.100.${i + 1}`, revision: BigInt(i) }));
    const connect = fakeClient(
      {
        listRealServers: (req) => {
          const start = Number(req.pageToken || 0);
          const page = all.slice(start, start + 2);
          return { realServers: page, nextPageToken: start + 2 < all.length ? String(start + 2) : "", revision: 9n };
        },
      },
      calls,
    );
    const { code, stdout } = await exec(["rs", "list", "a/w"], connect);
    expect(code).toBe(0);
    expect(calls.map((c) => c.request.pageToken ?? "")).toEqual(["", "2", "4"]);
    expect(calls.every((c) => c.request.parent === "sites/a/virtualServices/w")).toBe(true);
    expect(stdout.trimEnd().split("\n").slice(1).map((l) => l.split(/\s+/)[1])).toEqual(all.map((r) => r.address));
    const json = await exec(["rs", "list", "a/w", "--json"], connect);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.realServers).toHaveLength(5);
    expect(parsed.nextPageToken).toBeUndefined();
  });

  it("audit reads one page of --limit entries and says how to get the next", async () => {
    const calls: Recorded[] = [];
    const connect = fakeClient({ listAuditEntries: (req) => ({ auditEntries: [], nextPageToken: req.pageToken ? "" : "T1" }) }, calls);
    const first = await exec(["audit", "--limit", "1"], connect);
    expect(first.code).toBe(0);
    expect(first.stderr).toBe("(more entries: --page-token T1)\n");
    const next = await exec(["audit", "--limit", "1", "--page-token", "T1"], connect);
    expect(next.stderr).toBe("");
    expect(calls.map((c) => [c.request.pageSize, c.request.pageToken])).toEqual([
      [1, ""],
      [1, "T1"],
    ]);
  });

  it("sends --reason as x-lvsfleet-reason and dials --addr, LVSFLEET_ADDR or the default", async () => {
    const calls: Recorded[] = [];
    const addrs: string[] = [];
    const connect = fakeClient({ deleteSite: () => ({ revision: 12n }) }, calls, addrs);
    const r = await exec(["site", "delete", "ams1", "--reason", "decommissioned"], connect);
    expect(r).toEqual({ code: 0, stdout: "deleted (revision 12)\n", stderr: "" });
    expect(calls[0]!.opts?.metadata).toEqual({ "x-lvsfleet-reason": "decommissioned" });
    expect(calls[0]!.opts?.timeoutMs).toBeGreaterThan(0);
    await exec(["site", "delete", "ams1"], connect, { LVSFLEET_ADDR: "127.0.0.1:6000" });
    await exec(["--addr", "127.0.0.1:7000", "site", "delete", "ams1"], connect, { LVSFLEET_ADDR: "127.0.0.1:6000" });
    await exec(["site", "delete", "ams1"], connect);
    expect(addrs).toEqual(["127.0.0.1:50051", "127.0.0.1:6000", "127.0.0.1:7000", "127.0.0.1:50051"]);
    expect(calls[1]!.opts?.metadata).toEqual({});
  });

  it("list <site>: one ListRealServers per service, printed in ipvsadm order", async () => {
    const calls: Recorded[] = [];
    const connect = fakeClient(
      {
        getSite: (req) => ({ site: create(SiteSchema, { name: req.name as string }), revision: 4n }),
        listVirtualServices: () => ({
          virtualServices: [
            create(VirtualServiceSchema, { name: "sites/a/virtualServices/udp", protocol: Protocol.UDP, address: "192.0.2.1", port: 53, scheduler: "rr" }),
            create(VirtualServiceSchema, { name: "sites/a/virtualServices/tcp", protocol: Protocol.TCP, address: "192.0.2.1", port: 80, scheduler: "wlc" }),
          ],
          revision: 4n,
        }),
        listRealServers: (req) => ({
          realServers: [create(RealServerSchema, { name: `${req.parent}/realServers/x`, address: "198.51.100.1", forwardMethod: ForwardMethod.NAT, port: 8053 })],
        }),
      },
      calls,
    );
    const { code, stdout } = await exec(["list", "a"], connect);
    expect(code).toBe(0);
    expect(stdout.split("\n").slice(3)).toEqual([
      "TCP  192.0.2.1:80 wlc",
      "  -> 198.51.100.1:8053            Masq    1",
      "UDP  192.0.2.1:53 rr",
      "  -> 198.51.100.1:8053            Masq    1",
      "",
    ]);
    expect(calls.filter((c) => c.method === "listRealServers").map((c) => c.request.parent).sort()).toEqual(["sites/a/virtualServices/tcp", "sites/a/virtualServices/udp"]);
  });

  it("RPC errors: code, message, field violations on stderr, exit 1", async () => {
    const connect = fakeClient(
      {
        createRealServer: () => {
          throw new RpcError(grpc.status.INVALID_ARGUMENT, "invalid real server", [{ field: "real_server.port", description: "DR can't remap ports" }]);
        },
      },
      [],
    );
    const r = await exec(["rs", "create", "a/w/r", "--address", "198.51.100.1", "--port", "8080", "--dr"], connect);
    expect(r).toEqual({ code: 1, stdout: "", stderr: "error: INVALID_ARGUMENT: invalid real server\n  real_server.port: DR can't remap ports\n" });
  });

  it("UNAVAILABLE says where it tried and what to set", async () => {
    const connect = fakeClient(
      {
        listSites: () => {
          throw new RpcError(grpc.status.UNAVAILABLE, "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:9. Resolution note: ");
        },
      },
      [],
    );
    const r = await exec(["site", "list", "--addr", "127.0.0.1:9"], connect);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: UNAVAILABLE: cannot reach the control plane at 127.0.0.1:9 (connect ECONNREFUSED 127.0.0.1:9); is it running? (--addr, LVSFLEET_ADDR)\n");
  });

  it("usage errors exit 2 with the usage text and never dial", async () => {
    const addrs: string[] = [];
    const connect = fakeClient({}, [], addrs);
    const r = await exec(["vs", "create", "a/w", "--tcp", "192.0.2.1:80", "--persistent", "soon"], connect);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --persistent "soon": expected a non-negative integer\n\nUsage:\n {2}lvsfleet vs create/);
    const help = await exec(["rs", "--help"], connect);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage:\n {2}lvsfleet rs create/);
    expect(addrs).toEqual([]);
  });
});
