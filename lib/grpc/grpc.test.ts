import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { TopologyService } from "../../gen/lvsfleet/v1/topology_service_pb.js";
import { LvsfleetError } from "../../services/controlplane/domain/errors.js";
import { createClient } from "./client.js";
import { startGrpcServer, bind, type RunningServer } from "./serve.js";
import { RpcError } from "./status.js";
import type { ServiceImpl } from "./server.js";

// A TopologyService whose handlers exercise the adapter: metadata in, errors out.
function testImpl(): ServiceImpl<typeof TopologyService> {
  const impl: Record<string, unknown> = {};
  for (const m of TopologyService.methods) {
    impl[m.localName] = async () => {
      throw new LvsfleetError("UNIMPLEMENTED", `${m.name} not in this test`);
    };
  }
  impl.getSite = async (req: { name: string }, ctx: { metadata: Record<string, string> }) => {
    if (req.name === "sites/bad")
      throw LvsfleetError.invalid([
        { field: "name", description: "no such thing", reason: "BAD_NAME" },
        { field: "other", description: "also bad" },
      ]);
    if (req.name === "sites/crash") throw new Error("secret internal detail");
    if (req.name === "sites/busy") throw LvsfleetError.failedPrecondition("has children", [{ type: "CHILDREN", subject: "sites/busy", description: "3 services" }]);
    return { site: { name: req.name, displayName: ctx.metadata["x-lvsfleet-reason"] ?? "" }, revision: 7n };
  };
  // Cancellation as a handler sees it (ctx.signal is made on first use): "sites/late" looks only
  // after the client has gone, "sites/early" listens from the start.
  impl.getVirtualService = async (req: { name: string }, ctx: { signal: AbortSignal }) => {
    if (req.name === "early") {
      const s = ctx.signal;
      await new Promise<void>((r) => s.addEventListener("abort", () => r(), { once: true }));
      cancelSeen.push("early");
    } else {
      await clientGone;
      await new Promise((r) => setTimeout(r, 50));
      cancelSeen.push(ctx.signal.aborted ? "late aborted" : "late not aborted");
    }
    return {};
  };
  return impl as ServiceImpl<typeof TopologyService>;
}

const cancelSeen: string[] = [];
let markClientGone: () => void = () => undefined;
const clientGone = new Promise<void>((r) => (markClientGone = r));

describe("lib/grpc over a real port", () => {
  let srv: RunningServer;
  const errors: unknown[] = [];
  beforeAll(async () => {
    srv = await startGrpcServer({ address: "127.0.0.1:0", services: [bind(TopologyService, testImpl())], onError: (_m, e) => errors.push(e) });
  });
  afterAll(async () => srv.shutdown(1000));

  it("round-trips a unary call with metadata", async () => {
    const c = createClient(TopologyService, srv.address);
    const res = await c.getSite({ name: "sites/ams1" }, { metadata: { "x-lvsfleet-reason": "why not" } });
    expect(res.site?.name).toBe("sites/ams1");
    expect(res.site?.displayName).toBe("why not");
    expect(res.revision).toBe(7n);
    c.close();
  });

  it("maps LvsfleetError to INVALID_ARGUMENT with every BadRequest field violation", async () => {
    const c = createClient(TopologyService, srv.address);
    const err = await c.getSite({ name: "sites/bad" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    const e = err as RpcError;
    expect(e.codeName).toBe("INVALID_ARGUMENT");
    expect(e.fieldViolations).toEqual([
      { field: "name", description: "no such thing", reason: "BAD_NAME" },
      { field: "other", description: "also bad", reason: undefined },
    ]);
    c.close();
  });

  it("maps preconditions and hides internal errors", async () => {
    const c = createClient(TopologyService, srv.address);
    const pre = (await c.getSite({ name: "sites/busy" }).catch((e: unknown) => e)) as RpcError;
    expect(pre.codeName).toBe("FAILED_PRECONDITION");
    expect(pre.preconditionViolations[0]?.subject).toBe("sites/busy");
    const internal = (await c.getSite({ name: "sites/crash" }).catch((e: unknown) => e)) as RpcError;
    expect(internal.codeName).toBe("INTERNAL");
    expect(internal.message).not.toContain("secret");
    expect(errors.some((x) => (x as Error).message === "secret internal detail")).toBe(true);
    c.close();
  });

  it("a handler's signal aborts when the client cancels, whether it looked before or only after", async () => {
    const c = createClient(TopologyService, srv.address);
    const early = new AbortController();
    const late = new AbortController();
    const calls = [c.getVirtualService({ name: "early" }, { signal: early.signal }).catch(() => "cancelled"), c.getVirtualService({ name: "late" }, { signal: late.signal }).catch(() => "cancelled")];
    await new Promise((r) => setTimeout(r, 100));
    early.abort();
    late.abort();
    expect(await Promise.all(calls)).toEqual(["cancelled", "cancelled"]);
    markClientGone();
    for (let i = 0; i < 100 && cancelSeen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(cancelSeen.sort()).toEqual(["early", "late aborted"]);
    c.close();
  });

  it("serves grpc.health.v1 Check and Watch", async () => {
    const h = createClient(Health, srv.address);
    expect((await h.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await h.check({ service: "lvsfleet.v1.TopologyService" })).status).toBe(ServingStatus.SERVING);
    const unknown = (await h.check({ service: "nope" }).catch((e: unknown) => e)) as RpcError;
    expect(unknown.codeName).toBe("NOT_FOUND");
    const ac = new AbortController();
    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const r of h.watch({ service: "x.Y" }, { signal: ac.signal })) {
        seen.push(r.status);
        if (seen.length === 1) srv.health.set("x.Y", ServingStatus.SERVING);
        if (seen.length === 2) ac.abort();
      }
    })();
    await watching;
    expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING]);
    h.close();
  });

  for (const [version, desc] of [
    ["v1", ServerReflection],
    ["v1alpha", ServerReflectionAlpha],
  ] as const) {
    it(`serves reflection ${version}: list services and the file of a method`, async () => {
      const r = createClient(desc as typeof ServerReflection, srv.address);
      async function* reqs() {
        yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
        yield create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "lvsfleet.v1.TopologyService.CreateVirtualService" } });
        yield create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "lvsfleet.v1.NoSuch" } });
      }
      const out = [];
      for await (const res of r.serverReflectionInfo(reqs())) out.push(res);
      expect(out).toHaveLength(3);
      const list = out[0]!.messageResponse;
      expect(list.case).toBe("listServicesResponse");
      const names = list.case === "listServicesResponse" ? list.value.service.map((s) => s.name) : [];
      expect(names).toEqual(expect.arrayContaining(["lvsfleet.v1.TopologyService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]));
      const files = out[1]!.messageResponse;
      expect(files.case).toBe("fileDescriptorResponse");
      const protos = files.case === "fileDescriptorResponse" ? files.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b)) : [];
      expect(protos[0]?.name).toBe("lvsfleet/v1/topology_service.proto");
      expect(protos[0]?.service[0]?.method.map((m) => m.name)).toContain("CreateVirtualService");
      // Dependencies travel with it, so a client can resolve every type.
      expect(protos.map((p) => p.name)).toEqual(expect.arrayContaining(["lvsfleet/v1/topology.proto", "google/protobuf/field_mask.proto"]));
      expect(out[2]!.messageResponse.case).toBe("errorResponse");
      r.close();
    });
  }

  it("drains in-flight calls on shutdown", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const impl = testImpl() as unknown as Record<string, unknown>;
    impl.getSite = async () => {
      await gate;
      return { site: { name: "sites/slow" }, revision: 1n };
    };
    const s2 = await startGrpcServer({ address: "127.0.0.1:0", services: [bind(TopologyService, impl as ServiceImpl<typeof TopologyService>)] });
    const c = createClient(TopologyService, s2.address);
    const pending = c.getSite({ name: "sites/slow" });
    await new Promise((r) => setTimeout(r, 100));
    const stopping = s2.shutdown(5000);
    setTimeout(release, 100);
    expect((await pending).site?.name).toBe("sites/slow");
    await stopping;
    c.close();
  });
});
