import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { RealServerSchema, type VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, FailureAction, ForwardMethod, HealthCheckSchema, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { codes, director, fwmarkService, tcpService, vsContext } from "./testing.js";
import { normalizeVirtualService, validateVirtualService, type VirtualServiceContext } from "./validate.js";

const F = "virtual_service";
const dur = (s: number, nanos = 0) => create(DurationSchema, { seconds: BigInt(s), nanos });

type Case = [title: string, build: () => VirtualService, expected: string[], ctx?: Partial<VirtualServiceContext>];

function tcp(mut: (vs: VirtualService) => void): () => VirtualService {
  return () => {
    const vs = tcpService();
    mut(vs);
    return vs;
  };
}
function fwm(mut: (vs: VirtualService) => void): () => VirtualService {
  return () => {
    const vs = fwmarkService();
    mut(vs);
    return vs;
  };
}

const valid: Case[] = [
  ["TCP IPv4 service", tcp(() => {}), []],
  ["UDP service with one-packet scheduling", tcp((vs) => ((vs.protocol = Protocol.UDP), (vs.onePacket = true))), []],
  ["SCTP service", tcp((vs) => (vs.protocol = Protocol.SCTP)), []],
  ["IPv6 VIP in any case and compression", tcp((vs) => (vs.address = "2001:DB8:0:0::10")), []],
  ["port-0 service with persistence", tcp((vs) => ((vs.port = 0), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 3600 }))), []],
  ["persistence at ipvsadm's maximum (31 days)", tcp((vs) => (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 86400 * 31 })), []],
  ["IPv4 persistence netmask /0 and /24", tcp((vs) => (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 24 })), []],
  ["IPv4 persistence netmask /0", tcp((vs) => (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 0 })), []],
  ["IPv6 persistence prefix /64", tcp((vs) => ((vs.address = "2001:db8::10"), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 64 }))), []],
  ["IPv6 persistence prefix /128", tcp((vs) => ((vs.address = "2001:db8::10"), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 128 }))), []],
  ["every scheduler", tcp((vs) => (vs.scheduler = "twos")), []],
  ["sh with both sh flags", tcp((vs) => ((vs.scheduler = "sh"), (vs.schedulerFlags = ["sh-fallback", "sh-port"]))), []],
  ["mh with mh-port", tcp((vs) => ((vs.scheduler = "mh"), (vs.schedulerFlags = ["mh-port"]))), []],
  ["empty scheduler defaults to wlc", tcp((vs) => (vs.scheduler = "")), []],
  [
    "sip persistence engine on persistent UDP",
    tcp((vs) => ((vs.protocol = Protocol.UDP), (vs.port = 5060), (vs.persistenceEngine = "sip"), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60 }))),
    [],
  ],
  ["fwmark service with a defined mark", fwm(() => {}), []],
  ["fwmark service with a TCP check on an explicit port", fwm((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, port: 443 }))), []],
  ["fwmark service with an exec check (no port needed)", fwm((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "exec", value: { argv: ["/bin/true"] } } }))), []],
  ["fwmark IPv6 service", fwm((vs) => (vs.addressFamily = AddressFamily.IPV6)), []],
  ["fwmark service with one-packet (ipvsadm allows it for fwmark)", fwm((vs) => (vs.onePacket = true)), []],
  ["fwmark service with sip (may carry UDP)", fwm((vs) => (vs.persistenceEngine = "sip")), []],
  ["two directors", tcp((vs) => (vs.directors = ["sites/fra/hosts/lb1", "sites/fra/hosts/lb2"])), []],
  ["no directors yet", tcp((vs) => (vs.directors = [])), []],
  ["TCP health check with defaults", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: { $typeName: "lvsfleet.v1.TcpCheck" } } }))), []],
  [
    "HTTP health check, every option",
    tcp(
      (vs) =>
        (vs.healthCheck = create(HealthCheckSchema, {
          kind: { case: "http", value: { path: "/healthz?full=1", expectedStatus: 204, bodyRegex: "^ok$", hostHeader: "www.example.com", tls: true, tlsSkipVerify: true } },
          interval: dur(2),
          timeout: dur(2),
          rise: 1,
          fall: 100,
          port: 8080,
        })),
    ),
    [],
  ],
  ["HTTP check with an empty path (defaults to /)", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "http", value: {} } }))), []],
  ["DNS check", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "dns", value: { queryName: "_sip._udp.example.com.", queryType: "SRV" } } }))), []],
  ["exec check", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "exec", value: { argv: ["/usr/lib/check", "--fast", ""] } }, timeout: dur(0, 500_000_000) }))), []],
  ["failure action REMOVE", tcp((vs) => (vs.failureAction = FailureAction.REMOVE)), []],
  ["NAT sorry server on another port", tcp((vs) => (vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "198.51.100.99", port: 8080, forwardMethod: ForwardMethod.NAT })), []],
  ["DR sorry server, port 0", tcp((vs) => (vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "198.51.100.99", port: 0, forwardMethod: ForwardMethod.UNSPECIFIED })), []],
  ["IPv6 TUN sorry server behind an IPv4 VIP", tcp((vs) => (vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "2001:db8::99", port: 80, forwardMethod: ForwardMethod.TUN })), []],
  ["no name yet (create), site from context", tcp((vs) => (vs.name = "")), [], { site: "fra" }],
];

const invalid: Case[] = [];
invalid.push(
  ["nothing set", tcp((vs) => ((vs.protocol = Protocol.UNSPECIFIED), (vs.address = ""), (vs.port = 0))), [`${F}.address REQUIRED`, `${F}.port ZERO_PORT_REQUIRES_PERSISTENCE`, `${F}.protocol REQUIRED`]],
  ["unknown protocol number", tcp((vs) => (vs.protocol = 7 as Protocol)), [`${F}.protocol INVALID_ENUM`]],
  ["malformed VIP", tcp((vs) => (vs.address = "203.0.113.256")), [`${F}.address INVALID_ADDRESS`]],
  ["VIP with leading zeros", tcp((vs) => (vs.address = "203.0.113.010")), [`${F}.address INVALID_ADDRESS`]],
  ["VIP with a zone id", tcp((vs) => (vs.address = "fe80::1%eth0")), [`${F}.address INVALID_ADDRESS`]],
  ["hostname instead of VIP", tcp((vs) => (vs.address = "www.example.com")), [`${F}.address INVALID_ADDRESS`]],
  ["multicast VIP", tcp((vs) => (vs.address = "224.0.0.5")), [`${F}.address ADDRESS_NOT_ALLOWED`]],
  ["unspecified VIP", tcp((vs) => (vs.address = "0.0.0.0")), [`${F}.address ADDRESS_NOT_ALLOWED`]],
  ["IPv4-mapped VIP", tcp((vs) => (vs.address = "::ffff:203.0.113.10")), [`${F}.address ADDRESS_NOT_ALLOWED`]],
  ["port above 65535", tcp((vs) => (vs.port = 65536)), [`${F}.port PORT_OUT_OF_RANGE`]],
  ["port 0 without persistence", tcp((vs) => (vs.port = 0)), [`${F}.port ZERO_PORT_REQUIRES_PERSISTENCE`]],
  [
    "fwmark service with protocol, address and port",
    fwm((vs) => ((vs.protocol = Protocol.TCP), (vs.address = "203.0.113.10"), (vs.port = 80))),
    [`${F}.address NOT_ALLOWED_WITH_FWMARK`, `${F}.port NOT_ALLOWED_WITH_FWMARK`, `${F}.protocol NOT_ALLOWED_WITH_FWMARK`],
  ],
  ["fwmark not defined in the site", fwm((vs) => (vs.fwmark = 7)), [`${F}.fwmark FWMARK_NOT_DEFINED`]],
  ["fwmark above 2^32-1", fwm((vs) => (vs.fwmark = 2 ** 32)), [`${F}.fwmark MARK_OUT_OF_RANGE`]],
  ["fwmark with an unknown family", fwm((vs) => (vs.addressFamily = 9 as AddressFamily)), [`${F}.address_family INVALID_ENUM`]],
  ["unknown scheduler", tcp((vs) => (vs.scheduler = "roundrobin")), [`${F}.scheduler UNKNOWN_SCHEDULER`]],
  ["scheduler names are case-sensitive", tcp((vs) => (vs.scheduler = "WLC")), [`${F}.scheduler UNKNOWN_SCHEDULER`]],
  ["sh flag on wlc", tcp((vs) => (vs.schedulerFlags = ["sh-port"])), [`${F}.scheduler_flags[0] INVALID_SCHEDULER_FLAG`]],
  ["mh flag on sh", tcp((vs) => ((vs.scheduler = "sh"), (vs.schedulerFlags = ["sh-port", "mh-port"]))), [`${F}.scheduler_flags[1] INVALID_SCHEDULER_FLAG`]],
  ["unknown flag", tcp((vs) => ((vs.scheduler = "sh"), (vs.schedulerFlags = ["flag-1"]))), [`${F}.scheduler_flags[0] INVALID_SCHEDULER_FLAG`]],
  ["duplicate flag", tcp((vs) => ((vs.scheduler = "mh"), (vs.schedulerFlags = ["mh-port", "mh-port"]))), [`${F}.scheduler_flags[1] DUPLICATE_SCHEDULER_FLAG`]],
  ["IPv4 netmask /33", tcp((vs) => (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 33 })), [`${F}.persistence.prefix_length PREFIX_LENGTH_OUT_OF_RANGE`]],
  [
    "IPv6 prefix /129",
    tcp((vs) => ((vs.address = "2001:db8::10"), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 129 }))),
    [`${F}.persistence.prefix_length PREFIX_LENGTH_OUT_OF_RANGE`],
  ],
  [
    "IPv6 prefix /0 (the kernel rejects plen < 1)",
    tcp((vs) => ((vs.address = "2001:db8::10"), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 0 }))),
    [`${F}.persistence.prefix_length PREFIX_LENGTH_OUT_OF_RANGE`],
  ],
  [
    "fwmark IPv6 prefix /129",
    fwm((vs) => ((vs.addressFamily = AddressFamily.IPV6), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60, prefixLength: 129 }))),
    [`${F}.persistence.prefix_length PREFIX_LENGTH_OUT_OF_RANGE`],
  ],
  ["netmask without persistence", tcp((vs) => (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 0, prefixLength: 24 })), [`${F}.persistence.prefix_length PERSISTENCE_REQUIRED`]],
  [
    "persistence above 31 days",
    tcp((vs) => (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 86400 * 31 + 1 })),
    [`${F}.persistence.timeout_seconds PERSISTENCE_TIMEOUT_OUT_OF_RANGE`],
  ],
  ["one-packet on TCP", tcp((vs) => (vs.onePacket = true)), [`${F}.one_packet ONE_PACKET_REQUIRES_UDP`]],
  ["unknown persistence engine", tcp((vs) => ((vs.persistenceEngine = "http"), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60 }))), [`${F}.persistence_engine UNKNOWN_PERSISTENCE_ENGINE`]],
  ["sip on non-persistent TCP", tcp((vs) => (vs.persistenceEngine = "sip")), [`${F}.persistence_engine PERSISTENCE_ENGINE_REQUIRES_UDP`, `${F}.persistence_engine PERSISTENCE_REQUIRED`]],
  ["director name malformed", tcp((vs) => (vs.directors = ["lb1"])), [`${F}.directors[0] INVALID_NAME`]],
  ["director in another site", tcp((vs) => (vs.directors = ["sites/ams/hosts/lb1"])), [`${F}.directors[0] WRONG_SITE`]],
  ["director missing", tcp((vs) => (vs.directors = ["sites/fra/hosts/lb1", "sites/fra/hosts/lb9"])), [`${F}.directors[1] HOST_NOT_FOUND`]],
  ["director without the DIRECTOR role", tcp((vs) => (vs.directors = ["sites/fra/hosts/web1"])), [`${F}.directors[0] HOST_NOT_DIRECTOR`]],
  ["director listed twice", tcp((vs) => (vs.directors = ["sites/fra/hosts/lb1", "sites/fra/hosts/lb1"])), [`${F}.directors[1] DUPLICATE_DIRECTOR`]],
  ["director in another site, site from context", tcp((vs) => ((vs.name = ""), (vs.directors = ["sites/ams/hosts/lb1"]))), [`${F}.directors[0] WRONG_SITE`], { site: "fra" }],
  ["malformed name", tcp((vs) => (vs.name = "sites/fra/services/web")), [`${F}.name INVALID_NAME`]],
  ["health check without a kind", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, {}))), [`${F}.health_check HEALTH_CHECK_KIND_REQUIRED`]],
  [
    "health check timeout above interval",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, interval: dur(2), timeout: dur(3) }))),
    [`${F}.health_check.timeout TIMEOUT_EXCEEDS_INTERVAL`],
  ],
  [
    "health check zero interval and negative timeout",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, interval: dur(0), timeout: dur(-1) }))),
    [`${F}.health_check.interval DURATION_OUT_OF_RANGE`, `${F}.health_check.timeout DURATION_OUT_OF_RANGE`],
  ],
  [
    "health check interval above an hour",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, interval: dur(3601) }))),
    [`${F}.health_check.interval DURATION_OUT_OF_RANGE`],
  ],
  [
    "health check duration with out-of-range nanos",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, timeout: dur(1, 1_000_000_000) }))),
    [`${F}.health_check.timeout DURATION_OUT_OF_RANGE`],
  ],
  [
    "rise and fall above 100, port above 65535",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} }, rise: 101, fall: 1000, port: 70000 }))),
    [`${F}.health_check.fall OUT_OF_RANGE`, `${F}.health_check.port PORT_OUT_OF_RANGE`, `${F}.health_check.rise OUT_OF_RANGE`],
  ],
  [
    "HTTP check: relative path, status 600, broken regex, tls_skip_verify without tls, bad Host",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "http", value: { path: "health", expectedStatus: 600, bodyRegex: "(ok", tlsSkipVerify: true, hostHeader: "a b" } } }))),
    [
      `${F}.health_check.http.body_regex INVALID_REGEX`,
      `${F}.health_check.http.expected_status INVALID_HTTP_STATUS`,
      `${F}.health_check.http.host_header INVALID_HOST_HEADER`,
      `${F}.health_check.http.path INVALID_HTTP_PATH`,
      `${F}.health_check.http.tls_skip_verify TLS_REQUIRED`,
    ],
  ],
  ["HTTP status 99", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "http", value: { path: "/", expectedStatus: 99 } } }))), [`${F}.health_check.http.expected_status INVALID_HTTP_STATUS`]],
  ["HTTP path with a space", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "http", value: { path: "/a b" } } }))), [`${F}.health_check.http.path INVALID_HTTP_PATH`]],
  ["exec without argv", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "exec", value: { argv: [] } } }))), [`${F}.health_check.exec.argv REQUIRED`]],
  ["exec with an empty program and a NUL", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "exec", value: { argv: ["", "a\u0000b"] } } }))), [`${F}.health_check.exec.argv[0] INVALID_ARGV`, `${F}.health_check.exec.argv[1] INVALID_ARGV`]],
  [
    "DNS check: bad name, unknown type",
    tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "dns", value: { queryName: "bad..name", queryType: "XYZ" } } }))),
    [`${F}.health_check.dns.query_name INVALID_DNS_NAME`, `${F}.health_check.dns.query_type INVALID_DNS_TYPE`],
  ],
  ["DNS check: label of 64 characters", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "dns", value: { queryName: `${"a".repeat(64)}.example` } } }))), [`${F}.health_check.dns.query_name INVALID_DNS_NAME`]],
  ["DNS check: no name", tcp((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "dns", value: {} } }))), [`${F}.health_check.dns.query_name INVALID_DNS_NAME`]],
  ["fwmark service with a TCP check on the real server's port (there is none)", fwm((vs) => (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "tcp", value: {} } }))), [`${F}.health_check.port HEALTH_CHECK_PORT_REQUIRED`]],
  [
    "port-0 service with an HTTP check on the real server's port",
    tcp((vs) => ((vs.port = 0), (vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60 }), (vs.healthCheck = create(HealthCheckSchema, { kind: { case: "http", value: {} } })))),
    [`${F}.health_check.port HEALTH_CHECK_PORT_REQUIRED`],
  ],
  ["unknown failure action", tcp((vs) => (vs.failureAction = 5 as FailureAction)), [`${F}.failure_action INVALID_ENUM`]],
  ["DR sorry server remapping the port", tcp((vs) => (vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "198.51.100.99", port: 8080, forwardMethod: ForwardMethod.DR })), [`${F}.sorry_server.port PORT_REMAP_NOT_ALLOWED`]],
  [
    "IPv6 DR sorry server behind an IPv4 VIP",
    tcp((vs) => (vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "2001:db8::99", port: 80, forwardMethod: ForwardMethod.DR })),
    [`${F}.sorry_server.address ADDRESS_FAMILY_MISMATCH`],
  ],
  [
    "sorry server: bad address, port, method",
    tcp((vs) => (vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "x", port: 1e6, forwardMethod: 9 as ForwardMethod })),
    [`${F}.sorry_server.address INVALID_ADDRESS`, `${F}.sorry_server.forward_method INVALID_ENUM`, `${F}.sorry_server.port PORT_OUT_OF_RANGE`],
  ],
  [
    "every violation at once, not just the first",
    tcp((vs) => {
      vs.address = "bad";
      vs.port = 99999;
      vs.scheduler = "nope";
      vs.onePacket = true;
      vs.failureAction = 42 as FailureAction;
    }),
    [`${F}.address INVALID_ADDRESS`, `${F}.failure_action INVALID_ENUM`, `${F}.one_packet ONE_PACKET_REQUIRES_UDP`, `${F}.port PORT_OUT_OF_RANGE`, `${F}.scheduler UNKNOWN_SCHEDULER`],
  ],
);

describe("validateVirtualService", () => {
  it.each(valid)("valid: %s", (_t, build, expected, ctx) => {
    expect(codes(validateVirtualService(build(), vsContext(ctx), F))).toEqual(expected);
  });

  it.each(invalid)("invalid: %s", (_t, build, expected, ctx) => {
    expect(codes(validateVirtualService(build(), vsContext(ctx), F))).toEqual(expected);
  });

  it("uses the field prefix as given (empty prefix → bare paths)", () => {
    const vs = tcpService();
    vs.port = 70000;
    expect(codes(validateVirtualService(vs, vsContext(), ""))).toEqual(["port PORT_OUT_OF_RANGE"]);
  });

  it("missing service → one REQUIRED violation", () => {
    expect(codes(validateVirtualService(undefined as unknown as VirtualService, vsContext(), F))).toEqual([`${F} REQUIRED`]);
  });
});

describe("validateVirtualService on update: existing real servers must still fit", () => {
  const rs = (address: string, port: number, forwardMethod: ForwardMethod, name = "sites/fra/virtualServices/web/realServers/rs1") =>
    create(RealServerSchema, { name, address, port, forwardMethod });

  it("changing the VIP family conflicts with a DR real server of the old family", () => {
    const vs = tcpService();
    vs.address = "2001:db8::10";
    const out = validateVirtualService(vs, vsContext({ realServers: [rs("198.51.100.20", 80, ForwardMethod.DR)] }), F);
    expect(codes(out)).toEqual([`${F}.address CONFLICTS_WITH_REAL_SERVERS`]);
    expect(out[0]!.description).toContain("sites/fra/virtualServices/web/realServers/rs1");
  });

  it("a TUN real server of the other family is fine", () => {
    const vs = tcpService();
    vs.address = "2001:db8::10";
    expect(validateVirtualService(vs, vsContext({ realServers: [rs("198.51.100.20", 80, ForwardMethod.TUN)] }), F)).toEqual([]);
  });

  it("changing the port conflicts with DR real servers holding the old port, not with NAT or port 0", () => {
    const vs = tcpService();
    vs.port = 443;
    const out = validateVirtualService(
      vs,
      vsContext({ realServers: [rs("198.51.100.20", 80, ForwardMethod.DR), rs("198.51.100.21", 0, ForwardMethod.DR, "b"), rs("198.51.100.22", 8080, ForwardMethod.NAT, "c")] }),
      F,
    );
    expect(codes(out)).toEqual([`${F}.port CONFLICTS_WITH_REAL_SERVERS`]);
    expect(out[0]!.description).not.toContain(" b");
  });

  it("turning a service into a fwmark service conflicts with DR real servers that have a port", () => {
    const vs = fwmarkService();
    const out = validateVirtualService(vs, vsContext({ realServers: [rs("198.51.100.20", 80, ForwardMethod.DR)] }), F);
    expect(codes(out)).toEqual([`${F}.fwmark CONFLICTS_WITH_REAL_SERVERS`]);
  });

  it("a fwmark service switched to IPv6 conflicts with IPv4 NAT real servers", () => {
    const vs = fwmarkService();
    vs.addressFamily = AddressFamily.IPV6;
    const out = validateVirtualService(vs, vsContext({ realServers: [rs("198.51.100.20", 0, ForwardMethod.NAT)] }), F);
    expect(codes(out)).toEqual([`${F}.address_family CONFLICTS_WITH_REAL_SERVERS`]);
  });
});

describe("normalizeVirtualService", () => {
  it("applies the documented defaults and canonical forms, without touching the input", () => {
    const vs = tcpService();
    vs.address = "2001:DB8:0:0::10";
    vs.scheduler = "";
    vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60 };
    vs.healthCheck = create(HealthCheckSchema, { kind: { case: "http", value: {} } });
    vs.sorryServer = { $typeName: "lvsfleet.v1.SorryServer", address: "2001:DB8::99", port: 0, forwardMethod: ForwardMethod.UNSPECIFIED };
    const before = structuredClone(vs);
    const n = normalizeVirtualService(vs);
    expect(vs).toEqual(before);
    expect(n.scheduler).toBe("wlc");
    expect(n.address).toBe("2001:db8::10");
    expect(n.addressFamily).toBe(AddressFamily.IPV6);
    expect(n.persistence?.prefixLength).toBe(128);
    expect(n.failureAction).toBe(FailureAction.QUIESCE);
    expect(n.healthCheck?.interval?.seconds).toBe(5n);
    expect(n.healthCheck?.timeout?.seconds).toBe(3n);
    expect(n.healthCheck?.rise).toBe(2);
    expect(n.healthCheck?.fall).toBe(3);
    expect(n.healthCheck?.kind.case === "http" && n.healthCheck.kind.value.path).toBe("/");
    expect(n.sorryServer?.address).toBe("2001:db8::99");
    expect(n.sorryServer?.forwardMethod).toBe(ForwardMethod.DR);
    expect(normalizeVirtualService(n)).toEqual(n);
  });

  it("IPv4 persistence defaults to /32; a non-persistent service gets no prefix", () => {
    const vs = tcpService();
    vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 60 };
    expect(normalizeVirtualService(vs).persistence?.prefixLength).toBe(32);
    vs.persistence = { $typeName: "lvsfleet.v1.Persistence", timeoutSeconds: 0 };
    expect(normalizeVirtualService(vs).persistence?.prefixLength).toBeUndefined();
  });

  it("derives the family from the address, overriding a stale one; fwmark defaults to IPv4", () => {
    const vs = tcpService();
    vs.addressFamily = AddressFamily.IPV6;
    expect(normalizeVirtualService(vs).addressFamily).toBe(AddressFamily.IPV4);
    expect(normalizeVirtualService(fwmarkService()).addressFamily).toBe(AddressFamily.IPV4);
    const v6 = fwmarkService();
    v6.addressFamily = AddressFamily.IPV6;
    expect(normalizeVirtualService(v6).addressFamily).toBe(AddressFamily.IPV6);
  });

  it("keeps explicit health-check values and leaves invalid addresses as they are", () => {
    const vs = tcpService();
    vs.address = "not-an-ip";
    vs.healthCheck = create(HealthCheckSchema, { kind: { case: "dns", value: { queryName: "example.com" } }, interval: dur(10), timeout: dur(1), rise: 5, fall: 7 });
    const n = normalizeVirtualService(vs);
    expect(n.address).toBe("not-an-ip");
    expect(n.healthCheck?.interval?.seconds).toBe(10n);
    expect(n.healthCheck?.rise).toBe(5);
    expect(n.healthCheck?.kind.case === "dns" && n.healthCheck.kind.value.queryType).toBe("A");
  });

  it("checks a director's role from the context hosts", () => {
    const d = director("lb1");
    d.roles = [];
    expect(codes(validateVirtualService(tcpService(), vsContext({ hosts: [d] }), F))).toEqual([`${F}.directors[0] HOST_NOT_DIRECTOR`]);
  });
});
