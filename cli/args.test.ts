import { describe, expect, it } from "vitest";
import { toJson } from "@bufbuild/protobuf";
import { TopologyService } from "../gen/lvsfleet/v1/topology_service_pb.js";
import { AddressFamily, FailureAction, ForwardMethod, HostRole, Protocol, TunnelType } from "../gen/lvsfleet/v1/types_pb.js";
import { duration, endpoint, entityTag, parseCommandLine, parseMatch, prefixLength, type Call } from "./args.js";
import { expandName } from "./names.js";
import { UsageError } from "./usage.js";

/** Parses and returns the RPC it describes. */
function call(line: string, env: Record<string, string> = {}): Call {
  const { command } = parseCommandLine(line.split(/\s+/).filter(Boolean), env);
  if (command.kind !== "rpc") throw new Error(`not an rpc: ${command.kind}`);
  return command.call;
}

/** The request as proto JSON (camelCase, enums by name) — what the server will see. */
function json(line: string): Record<string, unknown> {
  const c = call(line);
  return toJson(TopologyService.method[c.method].input, c.request as never) as Record<string, unknown>;
}

function usageError(line: string): UsageError {
  try {
    parseCommandLine(line.split(/\s+/).filter(Boolean), {});
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).usage).toMatch(/Usage/);
    return err as UsageError;
  }
  throw new Error(`expected a usage error for: ${line}`);
}

describe("short ids", () => {
  it("expand to resource names per kind, full names pass through", () => {
    expect(expandName("site", "ams1")).toBe("sites/ams1");
    expect(expandName("host", "ams1/lb1")).toBe("sites/ams1/hosts/lb1");
    expect(expandName("vs", "ams1/web")).toBe("sites/ams1/virtualServices/web");
    expect(expandName("rs", "ams1/web/rs1")).toBe("sites/ams1/virtualServices/web/realServers/rs1");
    expect(expandName("mark", "ams1/https")).toBe("sites/ams1/firewallMarks/https");
    expect(expandName("rs", "sites/x/virtualServices/y/realServers/z")).toBe("sites/x/virtualServices/y/realServers/z");
    expect(() => expandName("rs", "ams1/web")).toThrow(UsageError);
    expect(() => expandName("host", "ams1//lb1")).toThrow(/not a host id/);
  });
});

describe("virtual services", () => {
  it("vs create with an address service, persistence, netmask and a director", () => {
    const c = call("vs create ams1/web --tcp 192.0.2.10:80 --scheduler wlc --persistent 300 --netmask 24 --director ams1/lb1");
    expect(c.method).toBe("createVirtualService");
    if (c.method !== "createVirtualService") return;
    expect(c.request.parent).toBe("sites/ams1");
    expect(c.request.virtualServiceId).toBe("web");
    const vs = c.request.virtualService!;
    expect(vs.protocol).toBe(Protocol.TCP);
    expect(vs.address).toBe("192.0.2.10");
    expect(vs.port).toBe(80);
    expect(vs.scheduler).toBe("wlc");
    expect(vs.persistence?.timeoutSeconds).toBe(300);
    expect(vs.persistence?.prefixLength).toBe(24);
    expect(vs.directors).toEqual(["sites/ams1/hosts/lb1"]);
  });

  it("ipvsadm short flags and a dotted netmask", () => {
    const j = json("vs create ams1/web -t 192.0.2.10:443 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.0.0 --director lb1 --director lb2");
    expect(j.virtualService).toMatchObject({
      protocol: "PROTOCOL_TCP",
      address: "192.0.2.10",
      port: 443,
      scheduler: "sh",
      schedulerFlags: ["sh-fallback", "sh-port"],
      persistence: { timeoutSeconds: 60, prefixLength: 16 },
      directors: ["sites/ams1/hosts/lb1", "sites/ams1/hosts/lb2"],
    });
  });

  it("fwmark IPv6 service and a UDP IPv6 one-packet service", () => {
    const f = json("vs create ams1/web6 --fwmark 10 --ipv6");
    expect(f.virtualService).toEqual({ fwmark: 10, addressFamily: "ADDRESS_FAMILY_IPV6" });
    const u = call("vs create ams1/dns --udp [2001:db8::1]:53 --one-packet");
    if (u.method !== "createVirtualService") throw new Error(u.method);
    expect(u.request.virtualService).toMatchObject({ protocol: Protocol.UDP, address: "2001:db8::1", port: 53, onePacket: true });
    const v4fw = call("vs create ams1/f -f 7");
    if (v4fw.method !== "createVirtualService") throw new Error(v4fw.method);
    expect(v4fw.request.virtualService?.addressFamily).toBe(AddressFamily.IPV4);
  });

  it("health check flags build the HealthCheck", () => {
    const j = json("vs create ams1/web --tcp 192.0.2.10:80 --check http --check-path /healthz --check-status 200 --interval 5s --timeout 1500ms --rise 2 --fall 3");
    expect(j.virtualService).toMatchObject({
      healthCheck: { http: { path: "/healthz", expectedStatus: 200 }, interval: "5s", timeout: "1.500s", rise: 2, fall: 3 },
    });
    const https = json("vs create ams1/web --tcp 192.0.2.10:443 --check https --check-insecure");
    expect(https.virtualService).toMatchObject({ healthCheck: { http: { tls: true, tlsSkipVerify: true } } });
    const exec = json("vs create ams1/web --tcp 192.0.2.10:80 --check exec --check-command /usr/bin/check-web --on-failure remove");
    expect(exec.virtualService).toMatchObject({ healthCheck: { exec: { argv: ["/usr/bin/check-web"] } }, failureAction: "FAILURE_ACTION_REMOVE" });
    const dns = call("vs create ams1/dns --udp 192.0.2.53:53 --check dns --check-query example.org --check-query-type SOA");
    if (dns.method !== "createVirtualService") throw new Error(dns.method);
    expect(dns.request.virtualService?.healthCheck?.kind).toMatchObject({ case: "dns", value: { queryName: "example.org", queryType: "SOA" } });
  });

  it("vs update sends only the flags given, as update_mask paths", () => {
    const c = call("vs update ams1/web --scheduler rr --persistent 600 --etag abc");
    if (c.method !== "updateVirtualService") throw new Error(c.method);
    expect(c.request.virtualService?.name).toBe("sites/ams1/virtualServices/web");
    expect(c.request.virtualService?.etag).toBe('"abc"');
    expect(c.request.updateMask?.paths).toEqual(["scheduler", "persistence.timeout_seconds"]);
    const off = call("vs update ams1/web --no-one-packet --no-check");
    if (off.method !== "updateVirtualService") throw new Error(off.method);
    expect(off.request.updateMask?.paths).toEqual(["one_packet", "health_check"]);
    expect(off.request.virtualService?.onePacket).toBe(false);
    expect(off.request.virtualService?.healthCheck).toBeUndefined();
  });

  it("rejects contradictions and missing pieces with a usage error", () => {
    expect(usageError("vs create ams1/web --tcp 192.0.2.10:80 --udp 192.0.2.10:53").message).toMatch(/one of --tcp/);
    expect(usageError("vs create ams1/web --scheduler rr").message).toMatch(/give the service/);
    expect(usageError("vs update ams1/web").message).toMatch(/nothing to update/);
    expect(usageError("vs create ams1/web --tcp 192.0.2.10:80 --check-path /x").message).toMatch(/needs --check/);
    expect(usageError("vs create ams1/web --tcp 192.0.2.10:80 --check tcp --check-path /x").message).toMatch(/does not apply/);
    expect(usageError("vs create ams1/web --tcp 192.0.2.10:99999").message).toMatch(/at most 65535/);
    expect(usageError("vs create ams1/web --tpc 192.0.2.10:80").message).toMatch(/Unknown option '--tpc'/);
    expect(usageError("vs create --tcp 192.0.2.10:80").message).toMatch(/missing a virtual service id/);
    expect(usageError("vs frob ams1/web").message).toMatch(/unknown verb/);
    expect(usageError("vips list").message).toMatch(/unknown command/);
  });
});

describe("real servers", () => {
  it("rs create with DR, weight, thresholds and host", () => {
    const c = call("rs create ams1/web/rs1 --address 198.51.100.11 --port 80 --dr --weight 3 -x 100 -y 50 --host ams1/web1");
    if (c.method !== "createRealServer") throw new Error(c.method);
    expect(c.request.parent).toBe("sites/ams1/virtualServices/web");
    expect(c.request.realServerId).toBe("rs1");
    expect(c.request.realServer).toMatchObject({
      address: "198.51.100.11",
      port: 80,
      forwardMethod: ForwardMethod.DR,
      weight: 3,
      upperThreshold: 100,
      lowerThreshold: 50,
      host: "sites/ams1/hosts/web1",
    });
  });

  it("NAT with ADDR:PORT, TUN with GUE options, ipvsadm's -m/-i/-g", () => {
    const nat = call("rs create ams1/web/rs2 -r 198.51.100.12:8080 -m");
    if (nat.method !== "createRealServer") throw new Error(nat.method);
    expect(nat.request.realServer).toMatchObject({ address: "198.51.100.12", port: 8080, forwardMethod: ForwardMethod.NAT });
    const tun = call("rs create ams1/web/rs3 --address 2001:db8::11 --tun --tun-type gue --tun-port 6080 --tun-remcsum");
    if (tun.method !== "createRealServer") throw new Error(tun.method);
    expect(tun.request.realServer).toMatchObject({ address: "2001:db8::11", port: 0, forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.GUE, port: 6080, remoteChecksum: true } });
    const g = call("rs create ams1/web/rs4 -r 198.51.100.14 -g --host web4");
    if (g.method !== "createRealServer") throw new Error(g.method);
    expect(g.request.realServer).toMatchObject({ forwardMethod: ForwardMethod.DR, host: "sites/ams1/hosts/web4" });
    // The weight is `optional`: absent unless given, so the server applies its default.
    expect(g.request.realServer?.weight).toBeUndefined();
  });

  it("rs update masks, delete with etag, list by service", () => {
    const u = call("rs update ams1/web/rs1 --weight 0");
    if (u.method !== "updateRealServer") throw new Error(u.method);
    expect(u.request.updateMask?.paths).toEqual(["weight"]);
    expect(u.request.realServer?.weight).toBe(0);
    const d = call("rs delete ams1/web/rs1 --etag e1");
    expect(d).toMatchObject({ method: "deleteRealServer", request: { name: "sites/ams1/virtualServices/web/realServers/rs1", etag: '"e1"' } });
    expect(call("rs list ams1/web")).toMatchObject({ method: "listRealServers", request: { parent: "sites/ams1/virtualServices/web" } });
    expect(usageError("rs create ams1/web/rs1 --address 198.51.100.11 --dr --nat").message).toMatch(/one of --dr/);
    expect(usageError("rs create ams1/web/rs1 --address 198.51.100.11 --tun-type gre").message).toMatch(/needs --tun/);
    expect(usageError("rs create ams1/web/rs1 --address 198.51.100.11 --weight 70000").message).toMatch(/65535/);
    expect(usageError("rs delete ams1/web/rs1 --force").message).toMatch(/Unknown option '--force'/);
    expect(usageError("rs list").message).toMatch(/missing a virtual service/);
  });
});

describe("sites, hosts, marks, audit", () => {
  it("site create and update with an update_mask from the flags given", () => {
    const c = call("site create ams1 --display-name Amsterdam --tcp-timeout 900");
    expect(c).toMatchObject({ method: "createSite", request: { siteId: "ams1", site: { displayName: "Amsterdam", ipvsTimeouts: { tcpSeconds: 900 } } } });
    const u = call("site update ams1 --tcp-timeout 900 --udp-timeout 300 --label env=prod --label team=net");
    if (u.method !== "updateSite") throw new Error(u.method);
    expect(u.request.site?.name).toBe("sites/ams1");
    expect(u.request.updateMask?.paths).toEqual(["ipvs_timeouts.tcp_seconds", "ipvs_timeouts.udp_seconds", "labels"]);
    expect(u.request.site?.ipvsTimeouts).toMatchObject({ tcpSeconds: 900, tcpFinSeconds: 0, udpSeconds: 300 });
    expect(u.request.site?.labels).toEqual({ env: "prod", team: "net" });
  });

  it("delete with --force and --etag", () => {
    expect(call("site delete ams1 --force --etag xyz")).toMatchObject({ method: "deleteSite", request: { name: "sites/ams1", force: true, etag: '"xyz"' } });
    // Etags are quoted entity tags; a shell-stripped bare one is quoted again, quoted/weak ones kept.
    expect(entityTag("7")).toBe('"7"');
    expect(entityTag('"7"')).toBe('"7"');
    expect(entityTag('W/"7"')).toBe('W/"7"');
    expect(entityTag("")).toBe("");
    expect(call("vs delete sites/ams1/virtualServices/web")).toMatchObject({ method: "deleteVirtualService", request: { name: "sites/ams1/virtualServices/web", force: false } });
  });

  it("host create with roles, addresses and interfaces", () => {
    const c = call("host create ams1/lb1 --role director --address 192.0.2.2 --interface eth0=192.0.2.2/24,2001:db8::2/64 --label rack=r1");
    if (c.method !== "createHost") throw new Error(c.method);
    expect(c.request).toMatchObject({ parent: "sites/ams1", hostId: "lb1" });
    expect(c.request.host?.roles).toEqual([HostRole.DIRECTOR]);
    expect(c.request.host?.addresses).toEqual(["192.0.2.2"]);
    expect(c.request.host?.interfaces.map((i) => [i.name, i.addresses])).toEqual([["eth0", ["192.0.2.2/24", "2001:db8::2/64"]]]);
    const both = call("host create ams1/x --role director,real-server");
    if (both.method !== "createHost") throw new Error(both.method);
    expect(both.request.host?.roles).toEqual([HostRole.DIRECTOR, HostRole.REAL_SERVER]);
    expect(call("host list")).toMatchObject({ method: "listHosts", request: { parent: "sites/-" } });
    expect(call("host list ams1")).toMatchObject({ method: "listHosts", request: { parent: "sites/ams1" } });
    expect(usageError("host create ams1/x --role balancer").message).toMatch(/director or real-server/);
    // Object.prototype member names are unknown words, not table hits.
    expect(usageError("host create ams1/x --role constructor").message).toMatch(/director or real-server/);
    expect(usageError("rs create ams1/web/rs3 --address 2001:db8::11 --tun --tun-type constructor").message).toMatch(/ipip/);
  });

  it("mark create with port lists and ranges", () => {
    const j = json("mark create ams1/https --mark 10 --match tcp:192.0.2.10:80,443 --match tcp:192.0.2.10:10000-20000");
    expect(j).toEqual({
      parent: "sites/ams1",
      firewallMarkId: "https",
      firewallMark: {
        mark: 10,
        matches: [
          { destinations: ["192.0.2.10"], protocol: "PROTOCOL_TCP", ports: [{ start: 80, end: 80 }, { start: 443, end: 443 }] },
          { destinations: ["192.0.2.10"], protocol: "PROTOCOL_TCP", ports: [{ start: 10000, end: 20000 }] },
        ],
      },
    });
  });

  it("parseMatch: IPv6 in brackets, several destinations, any protocol", () => {
    expect(toJson(TopologyService.method.createFirewallMark.input.field.firewallMark!.message!.field.matches!.message!, parseMatch("udp:[2001:db8::1],[2001:db8::2]:53"))).toEqual({
      destinations: ["2001:db8::1", "2001:db8::2"],
      protocol: "PROTOCOL_UDP",
      ports: [{ start: 53, end: 53 }],
    });
    const any = parseMatch("192.0.2.0/24,198.51.100.7");
    expect(any.protocol).toBe(Protocol.UNSPECIFIED);
    expect(any.destinations).toEqual(["192.0.2.0/24", "198.51.100.7"]);
    expect(any.ports).toEqual([]);
    expect(parseMatch("2001:db8::/64").destinations).toEqual(["2001:db8::/64"]);
    expect(() => parseMatch("tcp:192.0.2.10:http")).toThrow(/not a port/);
    expect(() => parseMatch("tcp::80")).toThrow(/no destination/);
  });

  it("audit filters", () => {
    expect(call("audit --site ams1 --resource sites/ams1/virtualServices/web --limit 5")).toMatchObject({
      method: "listAuditEntries",
      request: { parent: "sites/ams1", resourceName: "sites/ams1/virtualServices/web", pageSize: 5 },
    });
    expect(call("audit")).toMatchObject({ method: "listAuditEntries", request: { parent: "", resourceName: "", pageSize: 50, pageToken: "" } });
    expect(call("audit --limit 2 --page-token OS85")).toMatchObject({ method: "listAuditEntries", request: { pageSize: 2, pageToken: "OS85" } });
  });
});

describe("global flags, help, list", () => {
  it("--addr anywhere, LVSFLEET_ADDR, default; --json; --reason", () => {
    expect(parseCommandLine(["site", "list"], {}).global).toEqual({ addr: "127.0.0.1:50051", json: false });
    expect(parseCommandLine(["site", "list"], { LVSFLEET_ADDR: "10.0.0.1:1" }).global.addr).toBe("10.0.0.1:1");
    expect(parseCommandLine(["--addr", "127.0.0.1:9", "site", "list", "--json"], { LVSFLEET_ADDR: "x" }).global).toEqual({ addr: "127.0.0.1:9", json: true });
    expect(parseCommandLine(["--json", "--reason", "ticket 42", "vs", "delete", "ams1/web"], {}).global).toEqual({
      addr: "127.0.0.1:50051",
      json: true,
      reason: "ticket 42",
    });
    expect(parseCommandLine(["site", "get", "ams1", "--addr=127.0.0.1:7"], {}).global.addr).toBe("127.0.0.1:7");
  });

  it("--help at every level prints usage; no command is a usage error", () => {
    const help = (args: string[]) => {
      const { command } = parseCommandLine(args, {});
      if (command.kind !== "help") throw new Error("not help");
      return command.text;
    };
    expect(help(["--help"])).toMatch(/Commands:/);
    expect(help([])).toMatch(/Commands:/);
    expect(help(["vs", "--help"])).toMatch(/--persistent/);
    expect(help(["vs", "create", "--help"])).toMatch(/--persistent/);
    expect(help(["rs", "create", "-h"])).toMatch(/--u-threshold/);
    expect(help(["list", "--help"])).toMatch(/ipvsadm -Ln/);
    expect(help(["help", "mark"])).toMatch(/--match/);
    expect(usageError("--json").message).toMatch(/missing command/);
    expect(usageError("--validate-only vs create ams1/web --tcp 192.0.2.1:80").message).toMatch(/missing command before --validate-only/);
  });

  it("list <site> is the ipvsadm-like listing", () => {
    expect(parseCommandLine(["list", "ams1"], {}).command).toEqual({ kind: "ipvs-list", site: "ams1" });
    expect(parseCommandLine(["--json", "list", "sites/ams1"], {}).command).toEqual({ kind: "ipvs-list", site: "ams1" });
    expect(usageError("list").message).toMatch(/missing a site/);
  });
});

describe("values", () => {
  it("endpoint splits v4, bracketed v6 and bare addresses", () => {
    expect(endpoint("--tcp", "192.0.2.10:80")).toEqual({ address: "192.0.2.10", port: 80 });
    expect(endpoint("--tcp", "[2001:db8::1]:443")).toEqual({ address: "2001:db8::1", port: 443 });
    expect(endpoint("--tcp", "2001:db8::1")).toEqual({ address: "2001:db8::1", port: 0 });
    expect(endpoint("--tcp", "192.0.2.10")).toEqual({ address: "192.0.2.10", port: 0 });
    // Malformed addresses are the server's to name (it reports the field); the shape is split here.
    expect(endpoint("--tcp", "999.1.1.1:80")).toEqual({ address: "999.1.1.1", port: 80 });
    expect(() => endpoint("--tcp", "2001:db8::zz:80x")).toThrow(/\[ADDR\]:PORT/);
    expect(() => endpoint("--tcp", "192.0.2.10:-1")).toThrow(UsageError);
  });

  it("prefixLength takes lengths and contiguous dotted masks", () => {
    expect(prefixLength("24")).toBe(24);
    expect(prefixLength("255.255.255.255")).toBe(32);
    expect(prefixLength("255.255.254.0")).toBe(23);
    expect(prefixLength("0.0.0.0")).toBe(0);
    expect(() => prefixLength("255.0.255.0")).toThrow(/contiguous/);
    expect(() => prefixLength("129")).toThrow(/at most 128/);
  });

  it("duration parses Go-style durations", () => {
    const ns = (s: string) => {
      const d = duration("--interval", s);
      return d.seconds * 1_000_000_000n + BigInt(d.nanos);
    };
    expect(ns("5s")).toBe(5_000_000_000n);
    expect(ns("5")).toBe(5_000_000_000n);
    expect(ns("250ms")).toBe(250_000_000n);
    expect(ns("1m30s")).toBe(90_000_000_000n);
    expect(ns("1.5s")).toBe(1_500_000_000n);
    expect(() => duration("--interval", "5 s")).toThrow(/duration/);
    expect(() => duration("--interval", "fast")).toThrow(/duration/);
  });

  it("the default FailureAction stays unset unless --on-failure is given", () => {
    const c = call("vs create ams1/web --tcp 192.0.2.10:80 --on-failure quiesce");
    if (c.method !== "createVirtualService") throw new Error(c.method);
    expect(c.request.virtualService?.failureAction).toBe(FailureAction.QUIESCE);
  });
});
