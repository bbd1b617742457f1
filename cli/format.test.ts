import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AuditEntrySchema,
  FirewallMarkMatchSchema,
  FirewallMarkSchema,
  HostSchema,
  RealServerSchema,
  SiteSchema,
  VirtualServiceSchema,
  type RealServer,
  type VirtualService,
} from "../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, HostRole, Protocol, TunnelType } from "../gen/lvsfleet/v1/types_pb.js";
import { duration } from "./args.js";
import {
  compareAddresses,
  formatAuditEntries,
  formatDetail,
  formatError,
  formatFirewallMark,
  formatHosts,
  formatIpvsList,
  formatRealServers,
  formatSites,
  formatTable,
  formatVirtualService,
  formatVirtualServices,
  healthCheckText,
  hostPort,
  matchText,
  serviceFlags,
  serviceKey,
} from "./format.js";

const vs = (id: string, init: Parameters<typeof create<typeof VirtualServiceSchema>>[1]): VirtualService =>
  create(VirtualServiceSchema, { name: `sites/ams1/virtualServices/${id}`, ...init });
const rs = (vsId: string, id: string, init: Parameters<typeof create<typeof RealServerSchema>>[1]): RealServer =>
  create(RealServerSchema, { name: `sites/ams1/virtualServices/${vsId}/realServers/${id}`, ...init });

describe("ipvsadm-like listing", () => {
  it("prints a DR service with two real servers exactly like ipvsadm -Ln, without counters", () => {
    const web = vs("web", { protocol: Protocol.TCP, address: "192.0.2.10", port: 80, scheduler: "wlc" });
    const out = formatIpvsList("ams1", 7n, [
      {
        virtualService: web,
        // Out of order on purpose: ipvsadm sorts destinations by address.
        realServers: [
          rs("web", "rs2", { address: "198.51.100.12", port: 80, forwardMethod: ForwardMethod.DR }),
          rs("web", "rs1", { address: "198.51.100.11", port: 80, forwardMethod: ForwardMethod.DR }),
        ],
      },
    ]);
    expect(out).toBe(
      [
        "IP Virtual Server (lvsfleet desired state) site ams1 revision 7",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight",
        "TCP  192.0.2.10:80 wlc",
        "  -> 198.51.100.11:80             Route   1",
        "  -> 198.51.100.12:80             Route   1",
        "",
      ].join("\n"),
    );
  });

  it("columns line up with ipvsadm's header (%-28s %-7s %-6d) and counters appear when given", () => {
    const web = vs("web", { protocol: Protocol.TCP, address: "192.0.2.10", port: 80 });
    const r1 = rs("web", "rs1", { address: "198.51.100.11", port: 0, forwardMethod: ForwardMethod.NAT, weight: 3 });
    const out = formatIpvsList("ams1", undefined, [{ virtualService: web, realServers: [r1] }], new Map([[r1.name, { activeConn: 12, inactConn: 3 }]]));
    const lines = out.split("\n");
    expect(lines[0]).toBe("IP Virtual Server (lvsfleet desired state) site ams1");
    expect(lines[2]).toBe("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn");
    // Port 0 = the service port, as IPVS does; default scheduler wlc.
    expect(lines[3]).toBe("TCP  192.0.2.10:80 wlc");
    expect(lines[4]).toBe("  -> 198.51.100.11:80             Masq    3      12         3");
    expect(lines[4]!.indexOf("Masq")).toBe(lines[2]!.indexOf("Forward"));
    expect(lines[4]!.indexOf("3 ")).toBe(lines[2]!.indexOf("Weight"));
    expect(lines[4]!.indexOf("12")).toBe(lines[2]!.indexOf("ActiveConn"));
  });

  it("orders services like ipvsadm (address services by protocol/address/port, then fwmarks) and prints their flags", () => {
    const services = [
      { virtualService: vs("ftp", { fwmark: 21, addressFamily: AddressFamily.IPV4, scheduler: "rr", persistence: { timeoutSeconds: 600 } }), realServers: [] },
      {
        virtualService: vs("dns6", { protocol: Protocol.UDP, address: "2001:db8::53", port: 53, scheduler: "sh", schedulerFlags: ["sh-port"], onePacket: true }),
        realServers: [rs("dns6", "a", { address: "2001:db8:1::2", port: 53, forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.IPIP } })],
      },
      {
        virtualService: vs("https", { protocol: Protocol.TCP, address: "192.0.2.10", port: 443, persistence: { timeoutSeconds: 300, prefixLength: 24 } }),
        realServers: [rs("https", "a", { address: "198.51.100.9", port: 443, weight: 0 })],
      },
      { virtualService: vs("web6", { fwmark: 10, addressFamily: AddressFamily.IPV6 }), realServers: [] },
      { virtualService: vs("web", { protocol: Protocol.TCP, address: "192.0.2.9", port: 80, persistence: { timeoutSeconds: 300, prefixLength: 32 } }), realServers: [] },
      { virtualService: vs("sip", { protocol: Protocol.UDP, address: "192.0.2.10", port: 5060, persistence: { timeoutSeconds: 60 }, persistenceEngine: "sip" }), realServers: [] },
      { virtualService: vs("v6p", { protocol: Protocol.TCP, address: "2001:db8::80", port: 0, persistence: { timeoutSeconds: 120, prefixLength: 64 } }), realServers: [] },
    ];
    const body = formatIpvsList("ams1", 3n, services).split("\n").slice(3);
    expect(body).toEqual([
      "TCP  192.0.2.9:80 wlc persistent 300",
      "TCP  192.0.2.10:443 wlc persistent 300 mask 255.255.255.0",
      "  -> 198.51.100.9:443             Route   0",
      "TCP  [2001:db8::80]:0 wlc persistent 120 mask 64",
      "UDP  192.0.2.10:5060 wlc persistent 60 pe sip",
      "UDP  [2001:db8::53]:53 sh (sh-port) ops",
      "  -> [2001:db8:1::2]:53           Tunnel  1",
      "FWM  10 IPv6 wlc",
      "FWM  21 rr persistent 600",
      "",
    ]);
  });

  it("compareAddresses is numeric, not textual", () => {
    expect(compareAddresses("192.0.2.9", "192.0.2.10")).toBeLessThan(0);
    expect(compareAddresses("2001:db8::9", "2001:db8::10")).toBeLessThan(0);
    expect(compareAddresses("2001:db8::ffff", "2001:db8:1::")).toBeLessThan(0);
    expect(compareAddresses("::ffff:192.0.2.1", "::ffff:192.0.2.1")).toBe(0);
  });

  it("serviceKey / serviceFlags / hostPort", () => {
    expect(serviceKey(vs("a", { protocol: Protocol.SCTP, address: "192.0.2.1", port: 9 }))).toBe("SCTP  192.0.2.1:9");
    expect(serviceKey(vs("a", { fwmark: 5 }))).toBe("FWM  5");
    expect(serviceFlags(vs("a", { scheduler: "mh", schedulerFlags: ["mh-fallback", "mh-port"], persistence: { timeoutSeconds: 0, prefixLength: 8 } }))).toBe(
      "mh (mh-fallback,mh-port)",
    );
    expect(hostPort("2001:db8::1", 80)).toBe("[2001:db8::1]:80");
    expect(hostPort("192.0.2.1", 80)).toBe("192.0.2.1:80");
  });
});

describe("tables and details", () => {
  it("formatTable aligns columns and trims trailing blanks", () => {
    expect(formatTable(["A", "LONG HEADER", "C"], [["xxxx", "", "z"], ["y", "b", ""]])).toBe("A     LONG HEADER  C\nxxxx               z\ny     b\n");
  });

  it("formatDetail aligns values and skips empty ones", () => {
    expect(formatDetail([["Name", "sites/a"], ["Display name", ""], ["Revision", "3"]])).toBe("Name:      sites/a\nRevision:  3\n");
  });

  it("lists of each resource", () => {
    const sites = formatSites([
      create(SiteSchema, { name: "sites/ams1", displayName: "Amsterdam", ipvsTimeouts: { tcpSeconds: 900 }, labels: { env: "prod" }, revision: 4n }),
      create(SiteSchema, { name: "sites/fra1", revision: 5n }),
    ]);
    expect(sites).toBe(
      [
        "NAME        DISPLAY NAME  TIMEOUTS (TCP TCPFIN UDP)  LABELS    REVISION",
        "sites/ams1  Amsterdam     900 - -                    env=prod  4",
        "sites/fra1                                                     5",
        "",
      ].join("\n"),
    );
    const hosts = formatHosts([
      create(HostSchema, {
        name: "sites/ams1/hosts/lb1",
        roles: [HostRole.DIRECTOR, HostRole.REAL_SERVER],
        addresses: ["192.0.2.2", "2001:db8::2"],
        interfaces: [{ name: "eth0", addresses: ["192.0.2.2/24"] }],
        revision: 2n,
      }),
    ]);
    expect(hosts.split("\n")[1]).toBe("sites/ams1/hosts/lb1  director,real-server  192.0.2.2,2001:db8::2  eth0=192.0.2.2/24  2");
    const vss = formatVirtualServices([
      vs("web", { protocol: Protocol.TCP, address: "192.0.2.10", port: 80, scheduler: "rr", directors: ["sites/ams1/hosts/lb1"], healthCheck: { kind: { case: "tcp", value: {} } }, revision: 9n }),
    ]);
    expect(vss.split("\n")[1]).toBe("sites/ams1/virtualServices/web  TCP  192.0.2.10:80  rr               lb1        tcp    9");
    const rss = formatRealServers([
      rs("web", "rs1", { address: "198.51.100.11", port: 80, forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.GUE, port: 6080 }, upperThreshold: 100, host: "sites/ams1/hosts/web1", revision: 3n }),
      rs("web", "rs2", { address: "198.51.100.12", weight: 5, lowerThreshold: 10, revision: 4n }),
    ]);
    expect(rss.split("\n")).toEqual([
      "NAME                                            ADDRESS        PORT  FORWARD                 WEIGHT  THRESHOLDS (X/Y)  HOST  REVISION",
      "sites/ams1/virtualServices/web/realServers/rs1  198.51.100.11  80    Tunnel (gue port 6080)  1       100/-             web1  3",
      "sites/ams1/virtualServices/web/realServers/rs2  198.51.100.12  -     Route                   5       -/10                    4",
      "",
    ]);
  });

  it("a virtual service in detail, with its health check in words", () => {
    const out = formatVirtualService(
      vs("web", {
        protocol: Protocol.TCP,
        address: "192.0.2.10",
        port: 80,
        persistence: { timeoutSeconds: 300, prefixLength: 24 },
        directors: ["sites/ams1/hosts/lb1"],
        healthCheck: { kind: { case: "http", value: { path: "/healthz", expectedStatus: 200 } }, interval: duration("i", "5s"), timeout: duration("t", "1500ms"), rise: 2, fall: 3 },
        revision: 7n,
        etag: "e7",
      }),
    );
    expect(out).toBe(
      [
        "Name:          sites/ams1/virtualServices/web",
        "Service:       TCP  192.0.2.10:80",
        "Scheduler:     wlc",
        "Persistence:   300s /24",
        "Directors:     sites/ams1/hosts/lb1",
        "Health check:  http GET /healthz expect 200, every 5s timeout 1.5s rise 2 fall 3",
        "Revision:      7",
        "Etag:          e7",
        "",
      ].join("\n"),
    );
    expect(healthCheckText({ kind: { case: "exec", value: { argv: ["/bin/check", "-q"] } } } as never)).toBe("exec /bin/check -q");
  });

  it("firewall marks: matches in the --match words", () => {
    const m = create(FirewallMarkSchema, {
      name: "sites/ams1/firewallMarks/https",
      mark: 10,
      matches: [
        { destinations: ["192.0.2.10"], protocol: Protocol.TCP, ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] },
        { destinations: ["2001:db8::10"], protocol: Protocol.TCP, ports: [{ start: 10000, end: 20000 }] },
      ],
      revision: 2n,
    });
    expect(matchText(create(FirewallMarkMatchSchema, { destinations: ["192.0.2.0/24"] }))).toBe("any 192.0.2.0/24");
    expect(formatFirewallMark(m)).toBe(
      [
        "Name:      sites/ams1/firewallMarks/https",
        "Mark:      10 (0xa)",
        "Matches:   tcp 192.0.2.10 80,443",
        "           tcp [2001:db8::10] 10000-20000",
        "Revision:  2",
        "",
      ].join("\n"),
    );
  });

  it("audit entries", () => {
    const out = formatAuditEntries([
      create(AuditEntrySchema, {
        revision: 12n,
        time: timestampFromDate(new Date("2026-11-25T17:00:00.123Z")),
        actor: "anonymous",
        operation: "CreateVirtualService",
        resourceName: "sites/ams1/virtualServices/web",
        reason: "ticket 42",
      }),
    ]);
    expect(out.split("\n")[1]).toBe("12        2026-11-25T17:00:00Z  anonymous  CreateVirtualService  sites/ams1/virtualServices/web  ticket 42");
  });
});

describe("errors", () => {
  it("code, message and one line per field violation", () => {
    expect(
      formatError({
        codeName: "INVALID_ARGUMENT",
        message: "invalid real server",
        fieldViolations: [
          { field: "real_server.port", description: "DR real servers must use the service port 80" },
          { field: "real_server.weight", description: "at most 65535" },
        ],
      }),
    ).toBe("error: INVALID_ARGUMENT: invalid real server\n  real_server.port: DR real servers must use the service port 80\n  real_server.weight: at most 65535\n");
    expect(
      formatError({
        codeName: "FAILED_PRECONDITION",
        message: "site has children",
        preconditionViolations: [{ type: "CHILDREN", subject: "sites/ams1", description: "2 virtual services" }],
      }),
    ).toBe("error: FAILED_PRECONDITION: site has children\n  sites/ams1: 2 virtual services\n");
    expect(formatError({ message: "boom" })).toBe("error: boom\n");
  });

  it("does not repeat a violation the message already spells out", () => {
    const v = { field: "real_server.weight", description: "at most 65535" };
    expect(formatError({ codeName: "INVALID_ARGUMENT", message: `invalid ${v.field}: ${v.description}`, fieldViolations: [v] })).toBe(
      "error: INVALID_ARGUMENT: invalid real_server.weight: at most 65535\n",
    );
    // Another violation than the one in the message is still listed.
    const w = { field: "real_server.port", description: "out of range" };
    expect(formatError({ codeName: "INVALID_ARGUMENT", message: `invalid ${v.field}: ${v.description}`, fieldViolations: [v, w] })).toBe(
      "error: INVALID_ARGUMENT: invalid real_server.weight: at most 65535\n  real_server.port: out of range\n",
    );
  });
});
