/**
 * keepalived.conf import. testdata/keepalived-full.conf is written from keepalived.conf(5) and
 * keepalived's sample configurations and uses every directive the importer maps; the expected values
 * below are read off that file by hand.
 */
import { readFileSync } from "node:fs";
import { create, toJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FirewallMarkSchema, HostSchema, RealServerSchema, VirtualServiceSchema } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { HostRole } from "../../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError } from "../domain/errors.js";
import { validateRealServer, validateVirtualService } from "../domain/validate.js";
import { parseKeepalivedConf, splitWords } from "./keepalived.js";

const FULL = readFileSync(new URL("./testdata/keepalived-full.conf", import.meta.url), "utf8");
const DIRECTOR = "sites/ams1/hosts/lb1";

function byId(text: string) {
  const r = parseKeepalivedConf(text, { director: DIRECTOR });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  type J = Record<string, any>;
  return new Map(
    r.virtualServices.map((v) => [
      v.id,
      { ...v, json: toJson(VirtualServiceSchema, v.virtualService) as J, rs: v.realServers.map((x) => ({ line: x.line, id: x.id, json: toJson(RealServerSchema, x.realServer) as J })) },
    ]),
  );
}

function violations(text: string): string[] {
  try {
    parseKeepalivedConf(text);
  } catch (err) {
    expect(err).toBeInstanceOf(LvsfleetError);
    expect((err as LvsfleetError).code).toBe("INVALID_ARGUMENT");
    return ((err as LvsfleetError).details.fieldViolations ?? []).map((v) => {
      expect(v.field).toBe("text");
      return v.description;
    });
  }
  throw new Error("expected the parse to fail");
}

describe("keepalived.conf import: every directive of the sample", () => {
  const m = byId(FULL);

  it("one lvsfleet service per virtual_server (and per group member), in file order", () => {
    expect([...m.keys()]).toEqual([
      "tcp-192-0-2-10-80",
      "tcp-192-0-2-11-443",
      "udp-192-0-2-12-53",
      "udp-192-0-2-13-5060",
      "fwmark-100",
      "tcp-2001-db8--10-80",
      "tcp-192-0-2-20-80",
      "tcp-192-0-2-21-80",
      "tcp-192-0-2-22-80",
      "fwmark-200",
    ]);
    expect([...m.values()].every((v) => v.virtualService.directors.join() === DIRECTOR)).toBe(true);
  });

  it("NAT web service: lb_algo, persistence_timeout/granularity, sorry_server, HTTP_GET url path/status, nb_get_retry → fall, inhibit_on_failure", () => {
    const v = m.get("tcp-192-0-2-10-80")!;
    expect(v.line).toBe(22);
    expect(v.json).toEqual({
      protocol: "PROTOCOL_TCP",
      address: "192.0.2.10",
      port: 80,
      scheduler: "wlc",
      persistence: { timeoutSeconds: 50, prefixLength: 24 },
      directors: [DIRECTOR],
      healthCheck: { http: { path: "/healthz", expectedStatus: 200 }, interval: "6s", timeout: "3s", fall: 4 },
      failureAction: "FAILURE_ACTION_QUIESCE",
      sorryServer: { address: "198.51.100.200", port: 8080, forwardMethod: "FORWARD_METHOD_NAT" },
    });
    expect(v.rs).toEqual([
      { line: 31, id: "rs-198-51-100-11-8080", json: { address: "198.51.100.11", port: 8080, forwardMethod: "FORWARD_METHOD_NAT", weight: 1 } },
      { line: 45, id: "rs-198-51-100-12-8080", json: { address: "198.51.100.12", port: 8080, forwardMethod: "FORWARD_METHOD_NAT", weight: 2 } },
    ]);
  });

  it("SSL_GET: tls, virtualhost, status range → any 2xx, connect_port, retry; lvs_sched/lvs_method", () => {
    const v = m.get("tcp-192-0-2-11-443")!;
    expect(v.json.scheduler).toBe("rr");
    expect(v.json.healthCheck).toEqual({ http: { path: "/status", hostHeader: "www.example.com", tls: true, tlsSkipVerify: true }, interval: "10s", timeout: "2s", fall: 3, port: 8443 });
    expect(v.json.failureAction).toBe("FAILURE_ACTION_REMOVE");
    expect(v.rs.map((r) => [r.json.forwardMethod, r.json.weight, r.json.port])).toEqual([["FORWARD_METHOD_DR", 3, 443]]);
  });

  it("UDP DR with sh flags and ops, TCP_CHECK", () => {
    const v = m.get("udp-192-0-2-12-53")!;
    expect([v.json.protocol, v.json.scheduler, v.json.schedulerFlags, v.json.onePacket]).toEqual(["PROTOCOL_UDP", "sh", ["sh-port", "sh-fallback"], true]);
    expect(v.json.healthCheck).toEqual({ tcp: {}, interval: "5s", timeout: "2s", fall: 2 });
  });

  it("persistence_engine and MISC_CHECK → exec argv (quotes kept together), misc_timeout, keepalived's default delay_loop", () => {
    const v = m.get("udp-192-0-2-13-5060")!;
    expect([v.json.persistenceEngine, v.json.persistence]).toEqual(["sip", { timeoutSeconds: 60 }]);
    expect(v.json.healthCheck).toEqual({ exec: { argv: ["/usr/local/bin/check_sip", "--host", "198.51.100.41", "a b"] }, interval: "60s", timeout: "4s" });
  });

  it("fwmark DR: real server port 0, its keepalived port becomes the check port; persistence_timeout alone = 360", () => {
    const v = m.get("fwmark-100")!;
    expect(v.json).toMatchObject({ fwmark: 100, addressFamily: "ADDRESS_FAMILY_IPV4", scheduler: "wrr", persistence: { timeoutSeconds: 360 } });
    expect(v.json.healthCheck).toEqual({ tcp: {}, interval: "7s", timeout: "3s", port: 80 });
    expect(v.rs.map((r) => [r.id, r.json.port ?? 0, r.json.weight])).toEqual([
      ["rs-198-51-100-51-0", 0, 5],
      ["rs-198-51-100-52-0", 0, 5],
    ]);
  });

  it("IPv6 TUN with a GUE tunnel, mh flags, thresholds", () => {
    const v = m.get("tcp-2001-db8--10-80")!;
    expect([v.json.scheduler, v.json.schedulerFlags]).toEqual(["mh", ["mh-port"]]);
    expect(v.rs[0]!.json).toEqual({
      address: "2001:db8:1::10",
      port: 80,
      forwardMethod: "FORWARD_METHOD_TUN",
      tunnel: { type: "TUNNEL_TYPE_GUE", port: 6080, checksum: true },
      weight: 4,
      upperThreshold: 1000,
      lowerThreshold: 100,
    });
  });

  it("virtual_server_group: range and fwmark members each become a service with the group's options", () => {
    for (const id of ["tcp-192-0-2-20-80", "tcp-192-0-2-21-80", "tcp-192-0-2-22-80", "fwmark-200"]) {
      const v = m.get(id)!;
      expect(v.json.scheduler).toBe("lc");
      expect(v.rs.map((r) => [r.id, r.json.forwardMethod])).toEqual([["rs-198-51-100-61-80", "FORWARD_METHOD_NAT"]]);
    }
    expect(m.get("tcp-192-0-2-21-80")!.line).toBe(155);
    expect(m.get("fwmark-200")!.line).toBe(156);
  });

  it("unsupported directives are listed by line, never dropped", () => {
    const w = parseKeepalivedConf(FULL).warnings.map((x) => `${x.line} ${x.directive}`);
    expect(w).toEqual(["4 global_defs", "11 vrrp_instance", "37 digest", "42 delay_before_retry", "48 notify_up", "74 url", "113 misc_dynamic", "159 virtual_server", "162 quorum"]);
  });

  it("every imported resource passes the domain validation", () => {
    const r = parseKeepalivedConf(FULL, { director: DIRECTOR });
    const ctx = {
      firewallMarks: [100, 200].map((mark) => create(FirewallMarkSchema, { mark })),
      hosts: [create(HostSchema, { name: DIRECTOR, roles: [HostRole.DIRECTOR] })],
      realServers: [],
      site: "ams1",
    };
    const problems = r.virtualServices.flatMap((v) => [
      ...validateVirtualService(v.virtualService, ctx, `line ${v.line}`),
      ...v.realServers.flatMap((x) => validateRealServer(x.realServer, { virtualService: v.virtualService }, `line ${x.line}`)),
    ]);
    expect(problems).toEqual([]);
  });
});

describe("keepalived.conf import: checkers differ between real servers", () => {
  it("warns and uses the first real server's checker; mixed inhibit_on_failure → QUIESCE with a warning", () => {
    const text = `virtual_server 192.0.2.1 80 {
  lb_kind NAT
  real_server 198.51.100.1 80 {
    inhibit_on_failure
    TCP_CHECK {
      connect_timeout 2
    }
  }
  real_server 198.51.100.2 80 {
    HTTP_GET {
      url {
        path /
      }
    }
  }
}`;
    const r = parseKeepalivedConf(text);
    expect(r.virtualServices[0]!.virtualService.healthCheck?.kind.case).toBe("tcp");
    expect(r.warnings.map((w) => [w.line, w.message])).toEqual([
      [9, "HTTP_GET on line 10 (http GET / expect 2xx, every 60s, timeout 5s) differs from line 5's; lvsfleet runs one health check per virtual service (line 5's: tcp connect, every 60s, timeout 2s)"],
      [9, "real_server without inhibit_on_failure while others have it; lvsfleet has one failure action per service: QUIESCE (weight 0)"],
    ]);
  });
});

describe("keepalived.conf import: several checkers on one real server (keepalived.conf(5) allows any number)", () => {
  // Formats from keepalived.conf(5): SSL_GET/HTTP_GET with url blocks, TCP_CHECK, MISC_CHECK, DNS_CHECK.
  const text = `virtual_server 192.0.2.30 443 {
  delay_loop 10
  lb_algo wlc
  lb_kind DR
  protocol TCP
  real_server 198.51.100.31 443 {
    weight 2
    SSL_GET {
      url {
        path /health
        status_code 200
      }
      connect_timeout 3
      retry 2
    }
    TCP_CHECK {
      connect_port 8443
      connect_timeout 1
      delay_before_retry 2
    }
    MISC_CHECK {
      misc_path "/usr/local/bin/check_tls 198.51.100.31"
      misc_timeout 9
    }
  }
  real_server 198.51.100.32 443 {
    weight 2
    SSL_GET {
      url {
        path /health
        status_code 200
      }
      connect_timeout 3
      retry 2
    }
  }
}
virtual_server 192.0.2.31 53 {
  lb_algo rr
  lb_kind NAT
  protocol UDP
  real_server 198.51.100.41 53 {
    DNS_CHECK {
      type a
      name www.example.com
      connect_timeout 2
      retry 1
    }
    DNS_CHECK {
    }
  }
}
`;
  const r = parseKeepalivedConf(text, { director: DIRECTOR });

  it("the first checker is the service's check; every further one is listed on its line with what it checks", () => {
    expect(toJson(VirtualServiceSchema, r.virtualServices[0]!.virtualService)).toMatchObject({
      healthCheck: { http: { path: "/health", expectedStatus: 200, tls: true, tlsSkipVerify: true }, interval: "10s", timeout: "3s", fall: 3 },
    });
    expect(r.warnings.map((w) => [w.line, w.directive, w.message])).toEqual([
      [16, "TCP_CHECK", "TCP_CHECK (tcp connect, port 8443, every 10s, timeout 1s) not imported: lvsfleet runs one health check per virtual service and this real server's is its first checker (SSL_GET on line 8); keepalived would take it out when any of its checkers fails"],
      [19, "delay_before_retry", "delay_before_retry in TCP_CHECK is not supported by lvsfleet; not imported"],
      [21, "MISC_CHECK", "MISC_CHECK (exec /usr/local/bin/check_tls 198.51.100.31, every 10s, timeout 9s) not imported: lvsfleet runs one health check per virtual service and this real server's is its first checker (SSL_GET on line 8); keepalived would take it out when any of its checkers fails"],
      [49, "DNS_CHECK", "DNS_CHECK (dns SOA ., every 60s, timeout 5s) not imported: lvsfleet runs one health check per virtual service and this real server's is its first checker (DNS_CHECK on line 43); keepalived would take it out when any of its checkers fails"],
    ]);
  });

  it("DNS_CHECK → dns check (type upper-cased, name; keepalived's defaults SOA and the root)", () => {
    expect(toJson(VirtualServiceSchema, r.virtualServices[1]!.virtualService)).toMatchObject({
      protocol: "PROTOCOL_UDP",
      healthCheck: { dns: { queryName: "www.example.com", queryType: "A" }, interval: "60s", timeout: "2s", fall: 2 },
    });
    const v = validateVirtualService(r.virtualServices[1]!.virtualService, { firewallMarks: [], hosts: [create(HostSchema, { name: DIRECTOR, roles: [HostRole.DIRECTOR] })], realServers: [], site: "ams1" }, "vs");
    expect(v).toEqual([]);
  });

  it("an error inside a further checker still fails the file, naming its line", () => {
    const bad = text.replace("connect_timeout 1\n", "connect_timeout soon\n");
    expect(violations(bad)).toEqual(['line 18: "connect_timeout": "soon" is not a number of seconds']);
  });
});

describe("keepalived.conf import: errors name the line and the token", () => {
  it("include is refused", () => {
    expect(violations("include /etc/keepalived/conf.d/*.conf\n")).toEqual([
      'line 1: include "/etc/keepalived/conf.d/*.conf": includes are not followed — the import reads one text; paste the included file in its place',
    ]);
  });

  it("truncated file: the block that is never closed", () => {
    expect(violations("virtual_server 192.0.2.1 80 {\n  lb_algo rr\n  real_server 198.51.100.1 80 {\n    weight 1\n")).toEqual([
      'line 3: the block opened here is never closed (missing "}" — truncated file?)',
      'line 1: the block opened here is never closed (missing "}" — truncated file?)',
    ]);
  });

  it("bad values, each with its line", () => {
    const v = violations(
      [
        "virtual_server 192.0.2.1 80 {", // 1
        "  lb_kind BRIDGE", // 2
        "  protocol ICMP", // 3
        "  persistence_granularity 255.0.255.0", // 4
        "  delay_loop soon", // 5
        "  real_server www.example.com 80 {", // 6
        "  }", // 7
        "  real_server 198.51.100.1 99999 {", // 8
        "    weight -1", // 9
        "  }", // 10
        "}", // 11
        "virtual_server group nosuch {", // 12
        "}", // 13
        "real_server 198.51.100.9 80 {", // 14
        "}", // 15
        "}", // 16
        'virtual_server 192.0.2.2 80 { MISC_CHECK { misc_path "x } }', // 17
      ].join("\n"),
    );
    expect(v).toEqual([
      "line 17: unterminated quoted string",
      'line 16: "}" without a matching "{"',
      'line 17: the block opened here is never closed (missing "}" — truncated file?)',
      'line 17: the block opened here is never closed (missing "}" — truncated file?)',
    ]);
    const v2 = violations(
      [
        "virtual_server 192.0.2.1 80 {",
        "  lb_kind BRIDGE",
        "  protocol ICMP",
        "  persistence_granularity 255.0.255.0",
        "  delay_loop soon",
        "  real_server www.example.com 80 {",
        "  }",
        "  real_server 198.51.100.1 99999 {",
        "    weight -1",
        "  }",
        "}",
        "virtual_server group nosuch {",
        "}",
        "real_server 198.51.100.9 80 {",
        "}",
        "virtual_server 192.0.2.1 80 {",
        "}",
      ].join("\n"),
    );
    expect(v2).toEqual([
      'line 2: "lb_kind": "BRIDGE" is not NAT, DR or TUN',
      'line 3: protocol "ICMP" is not TCP, UDP or SCTP',
      'line 4: persistence_granularity: "255.0.255.0" is not a contiguous netmask or prefix length',
      'line 5: "delay_loop": "soon" is not a number of seconds',
      'line 6: "real_server": "www.example.com" is not an IP address (host names are not resolved)',
      'line 8: "real_server": "99999" is not a number in 0..65535',
      'line 9: "weight": "-1" is not a number in 0..4294967295',
      'line 12: virtual_server group "nosuch": no virtual_server_group of that name',
      'line 14: "real_server" outside a virtual_server block',
      "line 16: virtual service tcp-192-0-2-1-80 is already defined on line 1",
    ]);
  });

  it("unbalanced closing brace, binary data, variables", () => {
    expect(violations("}\n")).toEqual(['line 1: "}" without a matching "{"']);
    expect(violations("virtual_server 192.0.2.1 80 {\n\u0000\u0000\u0000\n}")[0]).toMatch(/^line 2: not text: character U\+0000/);
    expect(violations("$VIP=192.0.2.1\n")[0]).toMatch(/^line 1: "\$VIP=192.0.2.1": keepalived variables/);
  });
});

describe("splitWords (misc_path)", () => {
  it("splits like a shell word list without expansion", () => {
    expect(splitWords(`/bin/check -a "b c" 'd e' f\\ g ""`)).toEqual(["/bin/check", "-a", "b c", "d e", "f g", ""]);
    expect(splitWords(`"unterminated`)).toBeUndefined();
  });
});
