/**
 * Property-based tests: every generated valid resource passes; validators never throw on hostile
 * input (random values anywhere, NaN, huge numbers, bigint, unicode, deep garbage) and always return
 * well-formed violations; targeted corruptions are reported at the right field.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { FirewallMark, Host, RealServer, Site, VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { ForwardMethod, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { corrupt, firewallMarkArb, hostArb, hostileValue, realServerArb, siteArb, virtualServiceArb } from "./arbitraries.js";
import type { FieldViolation } from "./errors.js";
import { fwmarkService, realServer, tcpService, vsContext } from "./testing.js";
import {
  normalizeFirewallMark,
  normalizeHost,
  normalizeRealServer,
  normalizeSite,
  normalizeVirtualService,
  validateFirewallMark,
  validateHost,
  validateRealServer,
  validateSite,
  validateVirtualService,
  type RealServerContext,
  type VirtualServiceContext,
} from "./validate.js";

const RUNS = { numRuns: 600 };

function wellFormed(vs: FieldViolation[], prefix: string): void {
  expect(Array.isArray(vs)).toBe(true);
  for (const v of vs) {
    expect(typeof v.field).toBe("string");
    expect(v.field === prefix || v.field.startsWith(`${prefix}.`)).toBe(true);
    expect(v.reason).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(typeof v.description).toBe("string");
    expect(v.description.length).toBeGreaterThan(0);
    expect(v.description.length).toBeLessThan(600);
  }
}

const VS_PATHS = [
  "name", "protocol", "address", "port", "fwmark", "addressFamily", "scheduler", "schedulerFlags", "persistence", "persistence.timeoutSeconds",
  "persistence.prefixLength", "onePacket", "persistenceEngine", "directors", "healthCheck", "healthCheck.kind", "healthCheck.kind.case",
  "healthCheck.kind.value", "healthCheck.kind.value.path", "healthCheck.kind.value.argv", "healthCheck.kind.value.queryName", "healthCheck.interval",
  "healthCheck.interval.seconds", "healthCheck.interval.nanos", "healthCheck.timeout", "healthCheck.rise", "healthCheck.port", "failureAction",
  "sorryServer", "sorryServer.address", "sorryServer.port", "sorryServer.forwardMethod",
] as const;
const RS_PATHS = ["name", "address", "port", "forwardMethod", "tunnel", "tunnel.type", "tunnel.port", "tunnel.checksum", "weight", "upperThreshold", "lowerThreshold", "host"] as const;
const HOST_PATHS = ["name", "roles", "addresses", "interfaces", "labels", "labels.a", "interfaces.0", "interfaces.0.name", "interfaces.0.addresses"] as const;
const FM_PATHS = ["name", "mark", "matches", "matches.0", "matches.0.destinations", "matches.0.protocol", "matches.0.ports", "matches.0.ports.0", "matches.0.ports.0.start"] as const;
const SITE_PATHS = ["name", "displayName", "labels", "labels.x", "ipvsTimeouts", "ipvsTimeouts.tcpSeconds", "ipvsTimeouts.udpSeconds"] as const;

describe("valid resources pass", () => {
  it("every generated valid VirtualService passes, normalized or not, and normalizing is idempotent", () => {
    fc.assert(
      fc.property(virtualServiceArb, ({ vs, ctx }) => {
        expect(validateVirtualService(vs, ctx, "virtual_service")).toEqual([]);
        const n = normalizeVirtualService(vs);
        expect(validateVirtualService(n, ctx, "virtual_service")).toEqual([]);
        expect(normalizeVirtualService(n)).toEqual(n);
        expect(n.scheduler).not.toBe("");
        expect(n.addressFamily).not.toBe(0);
      }),
      RUNS,
    );
  });

  it("every generated valid RealServer passes against its service, and the service still passes with it as an existing real server", () => {
    const arb = virtualServiceArb.chain(({ vs, ctx }) => fc.tuple(fc.constant(vs), fc.constant(ctx), fc.array(realServerArb(vs), { minLength: 1, maxLength: 4 })));
    fc.assert(
      fc.property(arb, ([vs, ctx, rss]) => {
        for (const rs of rss) {
          expect(validateRealServer(rs, { virtualService: vs }, "real_server")).toEqual([]);
          const n = normalizeRealServer(rs);
          expect(validateRealServer(n, { virtualService: vs }, "real_server")).toEqual([]);
          expect(normalizeRealServer(n)).toEqual(n);
        }
        expect(validateVirtualService(vs, { ...ctx, realServers: rss }, "virtual_service")).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it("every generated Site, Host and FirewallMark passes", () => {
    fc.assert(
      fc.property(siteArb, hostArb, firewallMarkArb, (s, h, m) => {
        expect(validateSite(s, "site")).toEqual([]);
        expect(validateHost(h, "host")).toEqual([]);
        expect(validateFirewallMark(m, "firewall_mark")).toEqual([]);
        expect(normalizeHost(normalizeHost(h))).toEqual(normalizeHost(h));
        expect(normalizeFirewallMark(normalizeFirewallMark(m))).toEqual(normalizeFirewallMark(m));
      }),
      RUNS,
    );
  });
});

describe("hostile input never throws", () => {
  it("validators and normalizers accept anything at all as the message and the context", () => {
    fc.assert(
      fc.property(hostileValue, hostileValue, (msg, ctx) => {
        wellFormed(validateVirtualService(msg as VirtualService, ctx as VirtualServiceContext, "vs"), "vs");
        wellFormed(validateRealServer(msg as RealServer, ctx as RealServerContext, "rs"), "rs");
        wellFormed(validateHost(msg as Host, "h"), "h");
        wellFormed(validateFirewallMark(msg as FirewallMark, "m"), "m");
        wellFormed(validateSite(msg as Site, "s"), "s");
        normalizeVirtualService(msg as VirtualService);
        normalizeRealServer(msg as RealServer);
        normalizeHost(msg as Host);
        normalizeFirewallMark(msg as FirewallMark);
        normalizeSite(msg as Site);
      }),
      { numRuns: 1500 },
    );
  });

  it("a valid VirtualService with hostile values at random paths: no throw, well-formed violations", () => {
    const arb = virtualServiceArb.chain(({ vs, ctx }) => fc.tuple(corrupt(vs, VS_PATHS), fc.constant(ctx)));
    fc.assert(
      fc.property(arb, ([vs, ctx]) => {
        wellFormed(validateVirtualService(vs, ctx, "virtual_service"), "virtual_service");
      }),
      { numRuns: 1500 },
    );
  });

  it("a valid VirtualService with a hostile context (marks, hosts, existing real servers) never throws", () => {
    const ctxArb = fc.record({ firewallMarks: fc.oneof(hostileValue, fc.array(hostileValue)), hosts: fc.oneof(hostileValue, fc.array(hostileValue)), realServers: fc.oneof(hostileValue, fc.array(hostileValue)), site: hostileValue });
    fc.assert(
      fc.property(virtualServiceArb, ctxArb, ({ vs }, ctx) => {
        wellFormed(validateVirtualService(vs, ctx as unknown as VirtualServiceContext, "virtual_service"), "virtual_service");
      }),
      RUNS,
    );
  });

  it("RealServer, Host, FirewallMark and Site with hostile values at random paths", () => {
    const rsArb = virtualServiceArb.chain(({ vs }) => fc.tuple(fc.constant(vs), realServerArb(vs).chain((rs) => corrupt(rs, RS_PATHS)), fc.oneof(hostileValue, corrupt(vs, VS_PATHS))));
    fc.assert(
      fc.property(rsArb, ([vs, rs, hostileVs]) => {
        wellFormed(validateRealServer(rs, { virtualService: vs }, "real_server"), "real_server");
        wellFormed(validateRealServer(realServer(), { virtualService: hostileVs as VirtualService, host: hostileVs as never }, "real_server"), "real_server");
      }),
      RUNS,
    );
    fc.assert(
      fc.property(hostArb.chain((h) => corrupt(h, HOST_PATHS)), firewallMarkArb.chain((m) => corrupt(m, FM_PATHS)), siteArb.chain((s) => corrupt(s, SITE_PATHS)), (h, m, s) => {
        wellFormed(validateHost(h, "host"), "host");
        wellFormed(validateFirewallMark(m, "firewall_mark"), "firewall_mark");
        wellFormed(validateSite(s, "site"), "site");
      }),
      RUNS,
    );
  });
});

describe("targeted corruptions are reported at the right field", () => {
  it("a port outside 0..65535 (any number, NaN, bigint, string) is PORT_OUT_OF_RANGE at .port", () => {
    const badPort = fc.oneof(fc.integer({ min: 65536 }), fc.integer({ max: -1 }), fc.constantFrom(NaN, Infinity, 1.5, "80", 80n, null));
    fc.assert(
      fc.property(virtualServiceArb, badPort, ({ vs, ctx }, port) => {
        fc.pre(!vs.fwmark);
        const out = validateVirtualService({ ...vs, port } as unknown as VirtualService, ctx, "virtual_service");
        expect(out.map((v) => `${v.field} ${v.reason}`)).toContain("virtual_service.port PORT_OUT_OF_RANGE");
      }),
      RUNS,
    );
  });

  it("a scheduler outside the IPVS list is UNKNOWN_SCHEDULER, and only that for an otherwise valid flag-free service", () => {
    fc.assert(
      fc.property(virtualServiceArb, fc.string({ minLength: 1, maxLength: 12 }), ({ vs, ctx }, sched) => {
        fc.pre(!["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "twos"].includes(sched));
        const out = validateVirtualService({ ...vs, scheduler: sched, schedulerFlags: [] }, ctx, "virtual_service");
        expect(out.map((v) => `${v.field} ${v.reason}`)).toEqual(["virtual_service.scheduler UNKNOWN_SCHEDULER"]);
      }),
      RUNS,
    );
  });

  it("a DR or TUN real server with a port other than 0 and the service port is PORT_REMAP_NOT_ALLOWED; NAT with the same port is fine", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.constantFrom(ForwardMethod.DR, ForwardMethod.TUN), (svcPort, rsPort, fwd) => {
        const vs = { ...tcpService(), port: svcPort };
        const rs = { ...realServer(), port: rsPort, forwardMethod: fwd };
        const got = validateRealServer(rs, { virtualService: vs }, "rs").map((v) => `${v.field} ${v.reason}`);
        expect(got).toEqual(rsPort === svcPort ? [] : ["rs.port PORT_REMAP_NOT_ALLOWED"]);
        expect(validateRealServer({ ...rs, forwardMethod: ForwardMethod.NAT }, { virtualService: vs }, "rs")).toEqual([]);
      }),
      RUNS,
    );
  });

  it("mixed address families are refused unless TUN, for every pair of generated addresses", () => {
    const arb = virtualServiceArb.chain(({ vs, ctx }) => fc.tuple(fc.constant(vs), fc.constant(ctx), realServerArb(vs)));
    fc.assert(
      fc.property(arb, ([vs]) => {
        const v6svc = normalizeVirtualService(vs).addressFamily === 2;
        const rs = { ...realServer(), address: v6svc ? "192.0.2.7" : "2001:db8::7", port: 0, forwardMethod: ForwardMethod.NAT };
        const got = validateRealServer(rs, { virtualService: vs }, "rs").map((v) => `${v.field} ${v.reason}`);
        expect(got).toEqual(["rs.address ADDRESS_FAMILY_MISMATCH"]);
        expect(validateRealServer({ ...rs, forwardMethod: ForwardMethod.TUN }, { virtualService: vs }, "rs")).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("one_packet on a non-UDP address service is always refused; on UDP or fwmark it never is", () => {
    fc.assert(
      fc.property(fc.constantFrom(Protocol.TCP, Protocol.SCTP, Protocol.UDP), fc.boolean(), (protocol, useFwmark) => {
        const vs = useFwmark ? { ...fwmarkService(), onePacket: true } : { ...tcpService(), protocol, onePacket: true };
        const got = validateVirtualService(vs, vsContext(), "vs").map((v) => `${v.field} ${v.reason}`);
        expect(got).toEqual(!useFwmark && protocol !== Protocol.UDP ? ["vs.one_packet ONE_PACKET_REQUIRES_UDP"] : []);
      }),
    );
  });
});
