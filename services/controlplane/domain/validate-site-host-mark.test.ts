import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FirewallMarkMatchSchema, type FirewallMark, type Host, type Site } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { HostRole, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { codes, director, firewallMark, site } from "./testing.js";
import { normalizeFirewallMark, normalizeHost, validateFirewallMark, validateHost, validateSite } from "./validate.js";

describe("validateSite", () => {
  const cases: [string, (s: Site) => void, string[]][] = [
    ["valid", () => {}, []],
    ["empty display name and no timeouts", (s) => ((s.displayName = ""), (s.ipvsTimeouts = undefined)), []],
    ["display name of 63 characters (unicode counts as one)", (s) => (s.displayName = "é".repeat(63)), []],
    ["timeouts at the kernel's bound", (s) => (s.ipvsTimeouts = { $typeName: "lvsfleet.v1.IpvsTimeouts", tcpSeconds: 2147483, tcpFinSeconds: 0, udpSeconds: 1 }), []],
    ["display name of 64 characters", (s) => (s.displayName = "x".repeat(64)), ["site.display_name DISPLAY_NAME_TOO_LONG"]],
    ["display name with a newline", (s) => (s.displayName = "a\nb"), ["site.display_name INVALID_DISPLAY_NAME"]],
    [
      "timeouts above INT_MAX/HZ",
      (s) => (s.ipvsTimeouts = { $typeName: "lvsfleet.v1.IpvsTimeouts", tcpSeconds: 2147484, tcpFinSeconds: 2 ** 32, udpSeconds: -1 }),
      ["site.ipvs_timeouts.tcp_fin_seconds TIMEOUT_OUT_OF_RANGE", "site.ipvs_timeouts.tcp_seconds TIMEOUT_OUT_OF_RANGE", "site.ipvs_timeouts.udp_seconds TIMEOUT_OUT_OF_RANGE"],
    ],
    ["malformed name", (s) => (s.name = "sites/"), ["site.name INVALID_NAME"]],
    [
      "bad labels",
      (s) => (s.labels = { "": "x", "a/b/c": "x", "example.com/app": "ok", good: "a b", "-x": "", ["k".repeat(64)]: "v" }),
      [
        'site.labels[""] INVALID_LABEL_KEY',
        'site.labels["-x"] INVALID_LABEL_KEY',
        'site.labels["a/b/c"] INVALID_LABEL_KEY',
        'site.labels["good"] INVALID_LABEL_VALUE',
        `site.labels["${"k".repeat(64)}"] INVALID_LABEL_KEY`,
      ],
    ],
    ["too many labels", (s) => (s.labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, "v"]))), ["site.labels TOO_MANY_LABELS"]],
  ];
  it.each(cases)("%s", (_t, mutate, expected) => {
    const s = site();
    mutate(s);
    expect(codes(validateSite(s, "site"))).toEqual(expected);
  });
});

describe("validateHost", () => {
  const cases: [string, (h: Host) => void, string[]][] = [
    ["valid director", () => {}, []],
    ["both roles, IPv6 address, link-local on an interface", (h) => ((h.roles = [HostRole.REAL_SERVER, HostRole.DIRECTOR]), (h.addresses = ["2001:db8::1"]), (h.interfaces = [{ $typeName: "lvsfleet.v1.NetworkInterface", name: "bond0.100", addresses: ["fe80::1/64"] }])), []],
    ["no addresses or interfaces", (h) => ((h.addresses = []), (h.interfaces = [])), []],
    ["no role", (h) => (h.roles = []), ["host.roles REQUIRED"]],
    ["unspecified and unknown roles", (h) => (h.roles = [HostRole.UNSPECIFIED, 7 as HostRole]), ["host.roles[0] INVALID_ENUM", "host.roles[1] INVALID_ENUM"]],
    ["duplicate role", (h) => (h.roles = [HostRole.DIRECTOR, HostRole.DIRECTOR]), ["host.roles[1] DUPLICATE_ROLE"]],
    ["bad and duplicate addresses", (h) => (h.addresses = ["198.51.100.1", "198.51.100.1/24", "198.51.100.001", "224.0.0.1", "198.51.100.1"]), [
      "host.addresses[1] INVALID_ADDRESS",
      "host.addresses[2] INVALID_ADDRESS",
      "host.addresses[3] ADDRESS_NOT_ALLOWED",
      "host.addresses[4] DUPLICATE_ADDRESS",
    ]],
    [
      "interface names the kernel refuses",
      (h) =>
        (h.interfaces = ["", "a".repeat(16), "eth/0", "eth 0", "eth:0", ".", "eth0", "eth0", "ethé"].map((name) => ({ $typeName: "lvsfleet.v1.NetworkInterface" as const, name, addresses: [] }))),
      [
        "host.interfaces[0].name INVALID_INTERFACE_NAME",
        "host.interfaces[1].name INVALID_INTERFACE_NAME",
        "host.interfaces[2].name INVALID_INTERFACE_NAME",
        "host.interfaces[3].name INVALID_INTERFACE_NAME",
        "host.interfaces[4].name INVALID_INTERFACE_NAME",
        "host.interfaces[5].name INVALID_INTERFACE_NAME",
        "host.interfaces[7].name DUPLICATE_INTERFACE",
        "host.interfaces[8].name INVALID_INTERFACE_NAME",
      ],
    ],
    [
      "interface addresses must be CIDR",
      (h) => (h.interfaces = [{ $typeName: "lvsfleet.v1.NetworkInterface", name: "eth0", addresses: ["198.51.100.1", "198.51.100.1/33", "2001:db8::1/64", "2001:DB8::1/64", "0.0.0.0/0"] }]),
      ["host.interfaces[0].addresses[0] INVALID_CIDR", "host.interfaces[0].addresses[1] INVALID_CIDR", "host.interfaces[0].addresses[3] DUPLICATE_ADDRESS", "host.interfaces[0].addresses[4] ADDRESS_NOT_ALLOWED"],
    ],
    ["bad label", (h) => (h.labels = { "rack": "a/b" }), ['host.labels["rack"] INVALID_LABEL_VALUE']],
    ["name of another collection", (h) => (h.name = "sites/fra/virtualServices/x"), ["host.name INVALID_NAME"]],
  ];
  it.each(cases)("%s", (_t, mutate, expected) => {
    const h = director();
    mutate(h);
    expect(codes(validateHost(h, "host"))).toEqual(expected);
  });

  it("normalizes addresses to canonical text", () => {
    const h = director();
    h.addresses = ["2001:DB8:0::1", "bogus"];
    h.interfaces = [{ $typeName: "lvsfleet.v1.NetworkInterface", name: "eth0", addresses: ["2001:DB8::1/64"] }];
    const n = normalizeHost(h);
    expect(n.addresses).toEqual(["2001:db8::1", "bogus"]);
    expect(n.interfaces[0]!.addresses).toEqual(["2001:db8::1/64"]);
    expect(h.addresses[0]).toBe("2001:DB8:0::1");
  });
});

describe("validateFirewallMark", () => {
  const match = (init: Parameters<typeof create<typeof FirewallMarkMatchSchema>>[1]) => create(FirewallMarkMatchSchema, init);
  const cases: [string, (m: FirewallMark) => void, string[]][] = [
    ["80+443 port affinity", () => {}, []],
    ["FTP: 21 and a passive range", (m) => (m.matches = [match({ destinations: ["203.0.113.0/24", "2001:db8::/64"], protocol: Protocol.TCP, ports: [{ start: 21, end: 21 }, { start: 10000, end: 20000 }] })]), []],
    ["any protocol, no ports", (m) => (m.matches = [match({ destinations: ["0.0.0.0/0"] })]), []],
    ["single port with an open end", (m) => (m.matches = [match({ destinations: ["203.0.113.10"], protocol: Protocol.UDP, ports: [{ start: 53, end: 0 }] })]), []],
    ["mark 2^32-1", (m) => (m.mark = 0xffffffff), []],
    ["mark 0", (m) => (m.mark = 0), ["firewall_mark.mark REQUIRED"]],
    ["mark 2^32", (m) => (m.mark = 2 ** 32), ["firewall_mark.mark MARK_OUT_OF_RANGE"]],
    ["no match", (m) => (m.matches = []), ["firewall_mark.matches REQUIRED"]],
    ["match without destinations", (m) => (m.matches = [match({ protocol: Protocol.TCP })]), ["firewall_mark.matches[0].destinations REQUIRED"]],
    [
      "bad destinations",
      (m) => (m.matches = [match({ destinations: ["203.0.113.10/24", "203.0.113.0/33", "nope", "::ffff:0:0/96"] })]),
      [
        "firewall_mark.matches[0].destinations[0] CIDR_HOST_BITS_SET",
        "firewall_mark.matches[0].destinations[1] INVALID_CIDR",
        "firewall_mark.matches[0].destinations[2] INVALID_CIDR",
        "firewall_mark.matches[0].destinations[3] ADDRESS_NOT_ALLOWED",
      ],
    ],
    ["ports without a protocol", (m) => (m.matches = [match({ destinations: ["203.0.113.10"], ports: [{ start: 80, end: 80 }] })]), ["firewall_mark.matches[0].ports PORTS_REQUIRE_PROTOCOL"]],
    ["unknown protocol", (m) => (m.matches = [match({ destinations: ["203.0.113.10"], protocol: 17 as Protocol })]), ["firewall_mark.matches[0].protocol INVALID_ENUM"]],
    [
      "bad ranges",
      (m) =>
        (m.matches = [
          match({ destinations: ["203.0.113.10"], protocol: Protocol.SCTP, ports: [{ start: 0, end: 10 }, { start: 20, end: 10 }, { start: 1, end: 65536 }] }),
        ]),
      ["firewall_mark.matches[0].ports[0].start PORT_OUT_OF_RANGE", "firewall_mark.matches[0].ports[1] INVALID_PORT_RANGE", "firewall_mark.matches[0].ports[2].end PORT_OUT_OF_RANGE"],
    ],
    ["violations in the second match", (m) => m.matches.push(match({ destinations: [] })), ["firewall_mark.matches[1].destinations REQUIRED"]],
  ];
  it.each(cases)("%s", (_t, mutate, expected) => {
    const m = firewallMark();
    mutate(m);
    expect(codes(validateFirewallMark(m, "firewall_mark"))).toEqual(expected);
  });

  it("normalizes destinations and open-ended ranges", () => {
    const m = firewallMark();
    m.matches = [match({ destinations: ["2001:DB8::/64", "2001:DB8::1"], protocol: Protocol.TCP, ports: [{ start: 21, end: 0 }] })];
    const n = normalizeFirewallMark(m);
    expect(n.matches[0]!.destinations).toEqual(["2001:db8::/64", "2001:db8::1"]);
    expect(n.matches[0]!.ports[0]).toMatchObject({ start: 21, end: 21 });
    expect(m.matches[0]!.ports[0]!.end).toBe(0);
  });
});
