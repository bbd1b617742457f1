import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostSchema, RealServerSchema, SiteSchema, VirtualServiceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, HealthCheckSchema, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError } from "./errors.js";
import { applyFieldMask, settableFields } from "./fieldmask.js";
import { director, realServer, tcpService } from "./testing.js";

function invalid(fn: () => unknown): LvsfleetError {
  try {
    fn();
  } catch (e) {
    if (e instanceof LvsfleetError) return e;
    throw e;
  }
  throw new Error("did not throw");
}

const existing = () => {
  const vs = tcpService();
  vs.etag = "e1";
  vs.revision = 7n;
  vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 300, prefixLength: 24 };
  vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, rise: 4 });
  vs.schedulerFlags = ["sh-port"];
  vs.scheduler = "sh";
  return vs;
};

describe("applyFieldMask", () => {
  it("copies only the listed top-level fields, leaving the inputs alone", () => {
    const old = existing();
    const patch = create(VirtualServiceSchema, { port: 443, scheduler: "rr", address: "192.0.2.99" });
    const snapshot = structuredClone(old);
    const out = applyFieldMask(VirtualServiceSchema, old, patch, ["port", "scheduler"], "update_mask.paths");
    expect(out.port).toBe(443);
    expect(out.scheduler).toBe("rr");
    expect(out.address).toBe(old.address);
    expect(out.etag).toBe("e1");
    expect(old).toEqual(snapshot);
    out.directors.push("x");
    expect(old.directors).toEqual(snapshot.directors);
  });

  it("replaces repeated fields wholesale and clears fields unset in the patch", () => {
    const out = applyFieldMask(VirtualServiceSchema, existing(), create(VirtualServiceSchema, { directors: ["sites/fra/hosts/lb2"] }), ["directors", "scheduler_flags", "persistence"], "p");
    expect(out.directors).toEqual(["sites/fra/hosts/lb2"]);
    expect(out.schedulerFlags).toEqual([]);
    expect(out.persistence).toBeUndefined();
  });

  it("follows nested paths into singular messages", () => {
    const patch = create(VirtualServiceSchema, { persistence: { timeoutSeconds: 60 } });
    const out = applyFieldMask(VirtualServiceSchema, existing(), patch, ["persistence.timeout_seconds"], "p");
    expect(out.persistence).toMatchObject({ timeoutSeconds: 60, prefixLength: 24 });
    // an optional (explicit presence) field unset in the patch is cleared, not set to 0
    const out2 = applyFieldMask(VirtualServiceSchema, existing(), patch, ["persistence.prefix_length"], "p");
    expect(out2.persistence?.timeoutSeconds).toBe(300);
    expect(out2.persistence && "prefixLength" in out2.persistence ? out2.persistence.prefixLength : undefined).toBeUndefined();
  });

  it("creates the parent message when a nested path lands in an unset one", () => {
    const old = tcpService();
    const out = applyFieldMask(VirtualServiceSchema, old, create(VirtualServiceSchema, { sorryServer: { address: "192.0.2.5", port: 80 } }), ["sorry_server.address"], "p");
    expect(out.sorryServer).toMatchObject({ address: "192.0.2.5", port: 0 });
  });

  it("handles oneof members: setting one replaces the other, clearing the selected one unsets it", () => {
    const patch = create(VirtualServiceSchema, { healthCheck: { kind: { case: "http", value: { path: "/h" } } } });
    const out = applyFieldMask(VirtualServiceSchema, existing(), patch, ["health_check.http"], "p");
    expect(out.healthCheck?.kind).toMatchObject({ case: "http", value: { path: "/h" } });
    expect(out.healthCheck?.rise).toBe(4);
    const out2 = applyFieldMask(VirtualServiceSchema, existing(), patch, ["health_check.tcp"], "p");
    expect(out2.healthCheck?.kind.case).toBeUndefined();
    const out3 = applyFieldMask(VirtualServiceSchema, existing(), patch, ["health_check.http.path"], "p");
    expect(out3.healthCheck?.kind).toMatchObject({ case: "http", value: { path: "/h" } });
  });

  it("an empty mask or '*' replaces every settable field and keeps name, etag, revision, times", () => {
    const old = existing();
    const patch = create(VirtualServiceSchema, { name: "sites/x/virtualServices/y", etag: "zzz", revision: 99n, protocol: Protocol.UDP, address: "192.0.2.1", port: 53 });
    for (const paths of [[], ["*"]]) {
      const out = applyFieldMask(VirtualServiceSchema, old, patch, paths, "p");
      expect(out).toMatchObject({ name: old.name, etag: "e1", revision: 7n, protocol: Protocol.UDP, address: "192.0.2.1", port: 53, scheduler: "", directors: [] });
      expect(out.persistence).toBeUndefined();
      expect(out.healthCheck).toBeUndefined();
    }
    expect(settableFields(SiteSchema)).toEqual(["display_name", "ipvs_timeouts", "labels"]);
  });

  it("works for maps and enums of other resources", () => {
    const h = director();
    const out = applyFieldMask(HostSchema, h, create(HostSchema, { labels: { rack: "r1" }, roles: [] }), ["labels", "roles"], "p");
    expect(out.labels).toEqual({ rack: "r1" });
    expect(out.roles).toEqual([]);
    const rs = realServer();
    const out2 = applyFieldMask(RealServerSchema, rs, create(RealServerSchema, { forwardMethod: ForwardMethod.NAT }), ["forward_method", "weight"], "p");
    expect(out2.forwardMethod).toBe(ForwardMethod.NAT);
    expect(out2.weight).toBeUndefined();
  });

  it("rejects unknown, output-only and malformed paths — all of them, naming the mask field", () => {
    const e = invalid(() =>
      applyFieldMask(
        VirtualServiceSchema,
        existing(),
        existing(),
        ["etag", "name", "revision", "create_time", "update_time", "nope", "persistence.nope", "directors.x", "port.x", "Port", "", "a..b", "*"],
        "update_mask.paths",
      ),
    );
    expect(e.code).toBe("INVALID_ARGUMENT");
    const vs = e.details.fieldViolations ?? [];
    expect(vs.map((v) => v.field)).toEqual(Array(13).fill("update_mask.paths"));
    expect(vs.map((v) => v.reason)).toEqual([
      "OUTPUT_ONLY_FIELD",
      "OUTPUT_ONLY_FIELD",
      "OUTPUT_ONLY_FIELD",
      "OUTPUT_ONLY_FIELD",
      "OUTPUT_ONLY_FIELD",
      "UNKNOWN_FIELD",
      "UNKNOWN_FIELD",
      "INVALID_FIELD_PATH",
      "INVALID_FIELD_PATH",
      "INVALID_FIELD_PATH",
      "INVALID_FIELD_PATH",
      "INVALID_FIELD_PATH",
      "INVALID_FIELD_PATH",
    ]);
    expect(vs[5]!.description).toContain("paths[5]");
  });

  it("never throws anything but LvsfleetError, and any accepted mask leaves output-only fields as they were", () => {
    const segment = fc.oneof(fc.constantFrom(...VirtualServiceSchema.fields.map((f) => f.name), "timeout_seconds", "http", "path", "*", ""), fc.string({ maxLength: 8 }));
    const path = fc.array(segment, { minLength: 1, maxLength: 3 }).map((xs) => xs.join("."));
    fc.assert(
      fc.property(fc.array(path, { maxLength: 5 }), (paths) => {
        const old = existing();
        let out;
        try {
          out = applyFieldMask(VirtualServiceSchema, old, tcpService(), paths, "update_mask.paths");
        } catch (e) {
          expect(e).toBeInstanceOf(LvsfleetError);
          expect((e as LvsfleetError).code).toBe("INVALID_ARGUMENT");
          return;
        }
        expect(out.name).toBe(old.name);
        expect(out.etag).toBe(old.etag);
        expect(out.revision).toBe(old.revision);
      }),
      { numRuns: 2000 },
    );
  });
});
