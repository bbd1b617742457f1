/**
 * fast-check arbitraries of VALID resources (every one must pass validation) and of hostile values,
 * for property tests here and in other packages (store round-trips, API fuzzing).
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import {
  FirewallMarkSchema,
  HostSchema,
  RealServerSchema,
  SiteSchema,
  VirtualServiceSchema,
  type FirewallMark,
  type Host,
  type RealServer,
  type Site,
  type VirtualService,
} from "../../../gen/lvsfleet/v1/topology_pb.js";
import {
  AddressFamily,
  FailureAction,
  ForwardMethod,
  HealthCheckSchema,
  HostRole,
  Protocol,
  TunnelConfigSchema,
  TunnelType,
  type HealthCheck,
} from "../../../gen/lvsfleet/v1/types_pb.js";
import { canonicalAddress, formatV6 } from "./address.js";
import { firewallMarkName, hostName, realServerName, siteName, virtualServiceName } from "./names.js";
import { DNS_QUERY_TYPES, MAX_PERSISTENCE_TIMEOUT_SECONDS, MAX_THRESHOLD, SCHEDULER_FLAGS, SCHEDULERS, type VirtualServiceContext } from "./validate.js";

export const SITE = "fra";
export const idArb = fc.stringMatching(/^[a-z]([a-z0-9-]{0,20}[a-z0-9])?$/);

const randomCase = (s: string) => fc.boolean().map((upper) => (upper ? s.toUpperCase() : s));

/** Unicast IPv4 endpoints: first octet 1..223, never 0.0.0.0/multicast/broadcast. */
export const ipv4Arb = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));

/** Global-unicast IPv6 (2000::/3) in canonical, expanded or upper-case text. */
export const ipv6Arb = fc
  .tuple(fc.integer({ min: 0x2000, max: 0x3fff }), fc.array(fc.nat(0xffff), { minLength: 7, maxLength: 7 }), fc.constantFrom("canonical", "expanded"))
  .chain(([first, rest, form]) => {
    const groups = [first, ...rest];
    const b = new Uint8Array(16);
    groups.forEach((g, i) => ((b[2 * i] = g >> 8), (b[2 * i + 1] = g & 0xff)));
    const text = form === "canonical" ? formatV6(b) : groups.map((g) => g.toString(16).padStart(4, "0")).join(":");
    return randomCase(text);
  });

const addrOf = (fam: 4 | 6) => (fam === 4 ? ipv4Arb : ipv6Arb);

function durationMs(ms: number): Duration {
  return create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });
}

const dnsNameArb = fc.array(fc.stringMatching(/^[a-z0-9_]([a-z0-9-]{0,10}[a-z0-9])?$/), { minLength: 1, maxLength: 4 }).chain((labels) => fc.constantFrom(labels.join("."), `${labels.join(".")}.`));

export const healthCheckArb: fc.Arbitrary<HealthCheck> = fc
  .record({
    kind: fc.oneof(
      fc.constant({ case: "tcp" as const, value: {} }),
      fc
        .record({
          path: fc.stringMatching(/^\/[A-Za-z0-9._~/?=&%-]{0,40}$/),
          expectedStatus: fc.oneof(fc.constant(0), fc.integer({ min: 100, max: 599 })),
          bodyRegex: fc.constantFrom("", "ok", "^OK$", "status\":\\s*\"up\"", "[a-z]+\\d{2,}", "(?:a|b)*"),
          hostHeader: fc.constantFrom("", "www.example.com", "example.com:8443"),
          tls: fc.boolean(),
          skip: fc.boolean(),
        })
        .map((h) => ({ case: "http" as const, value: { path: h.path, expectedStatus: h.expectedStatus, bodyRegex: h.bodyRegex, hostHeader: h.hostHeader, tls: h.tls, tlsSkipVerify: h.tls && h.skip } })),
      fc.record({ queryName: dnsNameArb, queryType: fc.constantFrom("", ...DNS_QUERY_TYPES) }).map((value) => ({ case: "dns" as const, value })),
      fc
        .tuple(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.includes("\u0000")), fc.array(fc.string({ maxLength: 20 }).filter((s) => !s.includes("\u0000")), { maxLength: 5 }))
        .map(([prog, args]) => ({ case: "exec" as const, value: { argv: [prog, ...args] } })),
    ),
    intervalMs: fc.option(fc.integer({ min: 1, max: 3_600_000 }), { nil: undefined }),
    timeoutFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    rise: fc.nat(100),
    fall: fc.nat(100),
    port: fc.nat(65535),
  })
  .map((r) => {
    const interval = r.intervalMs;
    // unset interval → 5s default; the timeout must not exceed it (default 3s when unset)
    const cap = interval ?? 5000;
    const timeout = Math.max(1, Math.floor(cap * r.timeoutFrac));
    return create(HealthCheckSchema, {
      kind: r.kind,
      interval: interval === undefined ? undefined : durationMs(interval),
      timeout: interval === undefined && timeout >= 3000 ? undefined : durationMs(timeout),
      rise: r.rise,
      fall: r.fall,
      port: r.port,
    });
  });

export interface ServiceCase {
  vs: VirtualService;
  ctx: VirtualServiceContext;
}

/** A valid VirtualService and the context it is valid in. */
export const virtualServiceArb: fc.Arbitrary<ServiceCase> = fc
  .record({
    id: idArb,
    fwmark: fc.boolean(),
    mark: fc.integer({ min: 1, max: 0xffffffff }),
    family: fc.constantFrom(4 as const, 6 as const),
    protocol: fc.constantFrom(Protocol.TCP, Protocol.UDP, Protocol.SCTP),
    port: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 65535 })),
    persistent: fc.boolean(),
    timeout: fc.integer({ min: 1, max: MAX_PERSISTENCE_TIMEOUT_SECONDS }),
    prefix: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
    scheduler: fc.constantFrom("", ...SCHEDULERS),
    flagPick: fc.subarray(["fallback", "port"]),
    onePacket: fc.boolean(),
    pe: fc.boolean(),
    directors: fc.subarray(["lb1", "lb2", "lb3"]),
    hc: fc.option(healthCheckArb, { nil: undefined }),
    failure: fc.constantFrom(FailureAction.UNSPECIFIED, FailureAction.QUIESCE, FailureAction.REMOVE),
    sorry: fc.option(fc.record({ fwd: fc.constantFrom(ForwardMethod.UNSPECIFIED, ForwardMethod.NAT, ForwardMethod.DR, ForwardMethod.TUN), otherFamily: fc.boolean(), port: fc.nat(65535), samePort: fc.boolean() }), { nil: undefined }),
  })
  .chain((r) =>
    fc.tuple(addrOf(r.family), addrOf(r.family === 4 ? 6 : 4), addrOf(r.family)).map(([vip, otherAddr, sameAddr]) => {
      const persistent = r.persistent || (!r.fwmark && r.port === 0);
      const udpish = r.fwmark || r.protocol === Protocol.UDP;
      const sched = r.scheduler === "" ? "wlc" : r.scheduler;
      const flags = (SCHEDULER_FLAGS[sched] ?? []).filter((f) => r.flagPick.some((p) => f.endsWith(p)));
      const prefix = persistent && r.prefix !== undefined ? (r.family === 4 ? Math.round(r.prefix * 32) : 1 + Math.round(r.prefix * 127)) : undefined;
      const svcPort = r.fwmark ? 0 : r.port;
      let sorryServer;
      if (r.sorry) {
        const fwd = r.sorry.fwd;
        const tun = fwd === ForwardMethod.TUN;
        const dr = fwd === ForwardMethod.UNSPECIFIED || fwd === ForwardMethod.DR || tun;
        const port = dr ? (r.sorry.samePort ? svcPort : 0) : r.sorry.port;
        sorryServer = { address: tun && r.sorry.otherFamily ? otherAddr : sameAddr, port, forwardMethod: fwd };
      }
      const vs = create(VirtualServiceSchema, {
        name: virtualServiceName(SITE, r.id),
        ...(r.fwmark
          ? { fwmark: r.mark, addressFamily: r.family === 6 ? AddressFamily.IPV6 : r.mark % 2 ? AddressFamily.IPV4 : AddressFamily.UNSPECIFIED }
          : { protocol: r.protocol, address: vip, port: r.port }),
        scheduler: r.scheduler,
        schedulerFlags: flags,
        persistence: persistent ? { timeoutSeconds: r.timeout, prefixLength: prefix } : undefined,
        onePacket: udpish && r.onePacket,
        persistenceEngine: udpish && persistent && r.pe ? "sip" : "",
        directors: r.directors.map((d) => hostName(SITE, d)),
        // fwmark and port-0 services need an explicit probe port for tcp/http/dns checks
        healthCheck: r.hc && (r.fwmark || r.port === 0) && r.hc.kind.case !== "exec" && r.hc.port === 0 ? { ...r.hc, port: 1 + (r.mark % 65535) } : r.hc,
        failureAction: r.failure,
        sorryServer,
      });
      const ctx: VirtualServiceContext = {
        firewallMarks: [create(FirewallMarkSchema, { name: firewallMarkName(SITE, "m"), mark: r.mark, matches: [{ destinations: ["192.0.2.0/24"] }] })],
        hosts: ["lb1", "lb2", "lb3"].map((h) => create(HostSchema, { name: hostName(SITE, h), roles: [HostRole.DIRECTOR] })),
        realServers: [],
      };
      return { vs, ctx };
    }),
  );

/** A valid RealServer of `vs`. */
export function realServerArb(vs: VirtualService): fc.Arbitrary<RealServer> {
  const svcFam: 4 | 6 = vs.fwmark ? (vs.addressFamily === AddressFamily.IPV6 ? 6 : 4) : vs.address.includes(":") ? 6 : 4;
  const svcPort = vs.fwmark ? 0 : vs.port;
  return fc
    .record({
      id: idArb,
      fwd: fc.constantFrom(ForwardMethod.UNSPECIFIED, ForwardMethod.NAT, ForwardMethod.DR, ForwardMethod.TUN),
      otherFamily: fc.boolean(),
      samePort: fc.boolean(),
      natPort: fc.nat(65535),
      weight: fc.option(fc.nat(65535), { nil: undefined }),
      upper: fc.nat(MAX_THRESHOLD),
      lowerFrac: fc.double({ min: 0, max: 1, noNaN: true }),
      tunnel: fc.option(
        fc.oneof(
          fc.constant({ type: TunnelType.IPIP }),
          fc.constant({ type: TunnelType.UNSPECIFIED }),
          fc.record({ type: fc.constant(TunnelType.GUE), port: fc.integer({ min: 1, max: 65535 }), flag: fc.constantFrom("", "noChecksum", "checksum", "remoteChecksum") }).map((t) => ({ type: t.type, port: t.port, ...(t.flag ? { [t.flag]: true } : {}) })),
          fc.record({ type: fc.constant(TunnelType.GRE), flag: fc.constantFrom("", "noChecksum", "checksum") }).map((t) => ({ type: t.type, ...(t.flag ? { [t.flag]: true } : {}) })),
        ),
        { nil: undefined },
      ),
    })
    .chain((r) =>
      fc.tuple(addrOf(svcFam), addrOf(svcFam === 4 ? 6 : 4)).map(([same, other]) => {
        const tun = r.fwd === ForwardMethod.TUN;
        const dr = r.fwd !== ForwardMethod.NAT;
        return create(RealServerSchema, {
          name: realServerName(SITE, vs.name.split("/")[3] ?? "x", r.id),
          address: tun && r.otherFamily ? other : same,
          port: dr ? (r.samePort ? svcPort : 0) : r.natPort,
          forwardMethod: r.fwd,
          weight: r.weight,
          upperThreshold: r.upper,
          lowerThreshold: Math.floor(r.upper * r.lowerFrac),
          tunnel: tun && r.tunnel ? create(TunnelConfigSchema, r.tunnel) : undefined,
        });
      }),
    );
}

const labelArb = fc.dictionary(
  fc.tuple(fc.option(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z]{2,5})?$/), { nil: undefined }), fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?$/)).map(([p, n]) => (p ? `${p}/${n}` : n)),
  fc.oneof(fc.constant(""), fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?$/)),
  { maxKeys: 8 },
);

export const siteArb: fc.Arbitrary<Site> = fc
  .record({ id: idArb, displayName: fc.string({ maxLength: 63, unit: "grapheme-ascii" }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s)), labels: labelArb, t: fc.array(fc.nat(2147483), { minLength: 3, maxLength: 3 }) })
  .map((r) => create(SiteSchema, { name: siteName(r.id), displayName: r.displayName, labels: r.labels, ipvsTimeouts: { tcpSeconds: r.t[0], tcpFinSeconds: r.t[1], udpSeconds: r.t[2] } }));

export const hostArb: fc.Arbitrary<Host> = fc
  .record({
    id: idArb,
    roles: fc.subarray([HostRole.DIRECTOR, HostRole.REAL_SERVER], { minLength: 1 }),
    addrs: fc.uniqueArray(fc.oneof(ipv4Arb, ipv6Arb.map((a) => a.toLowerCase())), { maxLength: 3, selector: canonicalAddress }),
    ifaces: fc.uniqueArray(
      fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9.@_-]{0,14}$/), addresses: fc.uniqueArray(fc.tuple(ipv4Arb, fc.nat(32)).map(([a, l]) => `${a}/${l}`), { maxLength: 3, selector: (p) => p.split("/")[0] }) }),
      { maxLength: 3, selector: (i) => i.name },
    ),
    labels: labelArb,
  })
  .map((r) => create(HostSchema, { name: hostName(SITE, r.id), roles: r.roles, addresses: r.addrs, interfaces: r.ifaces, labels: r.labels }));

export const firewallMarkArb: fc.Arbitrary<FirewallMark> = fc
  .record({
    id: idArb,
    mark: fc.integer({ min: 1, max: 0xffffffff }),
    matches: fc.array(
      fc.record({
        dests: fc.array(fc.oneof(ipv4Arb, ipv6Arb, ipv4Arb.map((a) => `${a.split(".").slice(0, 3).join(".")}.0/24`), fc.constant("0.0.0.0/0"), fc.constant("2001:db8::/32")), { minLength: 1, maxLength: 4 }),
        protocol: fc.constantFrom(Protocol.UNSPECIFIED, Protocol.TCP, Protocol.UDP, Protocol.SCTP),
        ranges: fc.array(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 })), { maxLength: 4 }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  })
  .map((r) =>
    create(FirewallMarkSchema, {
      name: firewallMarkName(SITE, r.id),
      mark: r.mark,
      matches: r.matches.map((m) => ({
        destinations: m.dests,
        protocol: m.protocol,
        ports: m.protocol === Protocol.UNSPECIFIED ? [] : m.ranges.map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) })),
      })),
    }),
  );

/** Values a hostile or buggy client might put anywhere. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({ withBigInt: true, withNullPrototype: true, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, maxDepth: 3 }),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, -1, 2 ** 32, 2 ** 53, Number.MAX_VALUE, 1.5, 2n ** 64n, -1n, "", " ", "\u0000", "💥", "%", "::", "/", null, undefined, true),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.integer(),
  fc.double(),
);

/**
 * A copy of `msg` with hostile values written at random property paths (top level and nested),
 * including paths that do not exist.
 */
export function corrupt<T extends object>(msg: T, paths: readonly string[]): fc.Arbitrary<T> {
  return fc.array(fc.tuple(fc.oneof(fc.constantFrom(...paths), fc.string({ maxLength: 6 })), hostileValue), { minLength: 1, maxLength: 4 }).map((edits) => {
    const copy = structuredClone(msg) as Record<string, unknown>;
    for (const [path, value] of edits) {
      const keys = path.split(".");
      let o: Record<string, unknown> = copy;
      for (const k of keys.slice(0, -1)) {
        const next = o[k];
        const plain = Array.isArray(next) || (typeof next === "object" && next !== null && Object.getPrototypeOf(next) === Object.prototype);
        if (!plain) o[k] = {};
        o = o[k] as Record<string, unknown>;
      }
      o[keys[keys.length - 1]!] = value;
    }
    return copy as T;
  });
}
