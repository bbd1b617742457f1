/**
 * ipvsadm-save import and export. Golden inputs in testdata/ were captured from Debian's ipvsadm 1.31
 * on the 6.1 kernel in the VM harness (every scheduler rr..ovf, -p with and without a timeout, -M
 * v4/v6, -b sh/mh flags, --pe sip, -o, -g/-m/-i, every tunnel type and checksum option, IPv6 VIPs
 * and a v6 TUN destination behind a v4 VIP, fwmark v4/v6, port-0 tcp/udp, sctp), with -n
 * (`ipvsadm-1.31-save-n.rules`) and without (`ipvsadm-1.31-save.rules`, service names).
 */
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FirewallMarkSchema, HostSchema, type VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import { AddressFamily, ForwardMethod, HostRole, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { LvsfleetError } from "../domain/errors.js";
import { validateRealServer, validateVirtualService } from "../domain/validate.js";
import { formatIpvsadmSave } from "./ipvsadm-export.js";
import { DEFAULT_PERSISTENCE_TIMEOUT, parseIpvsadmSave } from "./ipvsadm-save.js";

const testdata = (f: string) => readFileSync(new URL(`./testdata/${f}`, import.meta.url), "utf8");
const SAVE_N = testdata("ipvsadm-1.31-save-n.rules");
const SAVE_NAMES = testdata("ipvsadm-1.31-save.rules");
const DIRECTOR = "sites/ams1/hosts/lb1";

function exportOf(text: string): string {
  const r = parseIpvsadmSave(text, { director: DIRECTOR });
  return formatIpvsadmSave(r.virtualServices.map((v) => ({ virtualService: v.virtualService, realServers: v.realServers.map((x) => x.realServer) })));
}

/** The violations of a parse that must fail. */
function violations(text: string): string[] {
  try {
    parseIpvsadmSave(text);
  } catch (err) {
    expect(err).toBeInstanceOf(LvsfleetError);
    const e = err as LvsfleetError;
    expect(e.code).toBe("INVALID_ARGUMENT");
    return (e.details.fieldViolations ?? []).map((v) => {
      expect(v.field).toBe("text");
      return v.description;
    });
  }
  throw new Error("expected the parse to fail");
}

function service(text: string, id: string): VirtualService {
  const vs = parseIpvsadmSave(text).virtualServices.find((v) => v.id === id);
  if (!vs) throw new Error(`no service ${id}`);
  return vs.virtualService;
}

describe("ipvsadm -S round trip", () => {
  it("export(import(ipvsadm -S -n)) is byte-identical", () => {
    expect(exportOf(SAVE_N)).toBe(SAVE_N);
  });

  it("a file saved without -n (service names) exports as the -n file", () => {
    expect(SAVE_NAMES).not.toBe(SAVE_N);
    expect(exportOf(SAVE_NAMES)).toBe(SAVE_N);
  });

  it("any input order exports in ipvsadm's order (services and destinations shuffled)", () => {
    const lines = SAVE_N.trimEnd().split("\n");
    const services = lines.filter((l) => l.startsWith("-A")).reverse();
    const servers = lines.filter((l) => l.startsWith("-a")).reverse();
    expect(exportOf([...services, ...servers].join("\n"))).toBe(SAVE_N);
  });

  it("every imported resource passes the domain validation (with the site's marks and the Director)", () => {
    const r = parseIpvsadmSave(SAVE_N, { director: DIRECTOR });
    const ctx = {
      firewallMarks: [100, 101].map((mark) => create(FirewallMarkSchema, { mark })),
      hosts: [create(HostSchema, { name: DIRECTOR, roles: [HostRole.DIRECTOR] })],
      realServers: [],
      site: "ams1",
    };
    const problems = r.virtualServices.flatMap((v) => [
      ...validateVirtualService(v.virtualService, ctx, `line ${v.line}`),
      ...v.realServers.flatMap((x) => validateRealServer(x.realServer, { virtualService: v.virtualService }, `line ${x.line}`)),
    ]);
    expect(problems).toEqual([]);
    expect(r.virtualServices).toHaveLength(SAVE_N.split("\n").filter((l) => l.startsWith("-A")).length);
  });
});

describe("ipvsadm -S import: fields", () => {
  it("ids and key fields", () => {
    const r = parseIpvsadmSave(SAVE_N);
    const ids = r.virtualServices.map((v) => v.id);
    expect(ids).toContain("tcp-192-0-2-18-80");
    expect(ids).toContain("udp-2001-db8--12-53");
    expect(ids).toContain("sctp-192-0-2-46-9000");
    expect(ids).toContain("fwmark-100");
    expect(ids).toContain("fwmark-101-v6");
    const v = r.virtualServices.find((x) => x.id === "tcp-192-0-2-18-80")!;
    expect([v.line, v.virtualService.scheduler]).toEqual([1, "ovf"]);
    expect(v.realServers.map((x) => [x.id, x.line, x.realServer.forwardMethod, x.realServer.weight, x.realServer.port])).toEqual([
      ["rs-198-51-100-22-8080", 2, ForwardMethod.NAT, 3, 8080],
      ["rs-203-0-113-22-80", 3, ForwardMethod.DR, 2, 80],
    ]);
    const w0 = r.virtualServices.find((x) => x.id === "tcp-192-0-2-40-443")!.realServers[0]!.realServer;
    expect([w0.weight, w0.forwardMethod]).toEqual([0, ForwardMethod.DR]);
  });

  it("every scheduler", () => {
    const scheds = parseIpvsadmSave(SAVE_N).virtualServices.map((v) => v.virtualService.scheduler);
    for (const s of ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf"]) expect(scheds).toContain(s);
  });

  it("persistence, netmask, flags, pe, one-packet", () => {
    const a = service(SAVE_N, "tcp-192-0-2-40-443");
    expect([a.persistence?.timeoutSeconds, a.persistence?.prefixLength]).toEqual([300, 24]);
    const b = service(SAVE_N, "tcp-192-0-2-42-80");
    expect([b.scheduler, b.schedulerFlags, b.persistence]).toEqual(["sh", ["sh-fallback", "sh-port"], undefined]);
    const b2 = service(SAVE_N, "tcp-192-0-2-59-80");
    expect([b2.scheduler, b2.schedulerFlags, b2.persistence?.timeoutSeconds]).toEqual(["mh", ["mh-fallback", "mh-port"], 30]);
    const c = service(SAVE_N, "udp-192-0-2-60-5060");
    expect([c.protocol, c.scheduler, c.schedulerFlags, c.persistence?.prefixLength, c.persistenceEngine, c.onePacket]).toEqual([Protocol.UDP, "sh", ["sh-fallback"], 16, "sip", true]);
    const c2 = service(SAVE_N, "udp-192-0-2-45-5060");
    expect([c2.persistence?.timeoutSeconds, c2.persistence?.prefixLength, c2.persistenceEngine, c2.onePacket]).toEqual([60, undefined, "sip", false]);
    const d = service(SAVE_N, "tcp-2001-db8--11-443");
    expect([d.addressFamily, d.persistence?.prefixLength]).toEqual([AddressFamily.IPV6, 64]);
    const e = service(SAVE_N, "tcp-192-0-2-53-443");
    expect([e.persistence?.timeoutSeconds, e.persistence?.prefixLength]).toEqual([2678400, 0]);
    const port0 = service(SAVE_N, "tcp-192-0-2-41-0");
    expect([port0.port, port0.persistence?.timeoutSeconds]).toEqual([0, 360]);
    const f = service(SAVE_N, "fwmark-101-v6");
    expect([f.fwmark, f.addressFamily, f.address, f.persistence?.prefixLength]).toEqual([101, AddressFamily.IPV6, "", 64]);
  });

  it("tunnel options", () => {
    const r = parseIpvsadmSave(SAVE_N).virtualServices.find((v) => v.id === "tcp-192-0-2-47-80")!;
    const t = r.realServers.map((x) => {
      const tn = x.realServer.tunnel!;
      return [x.realServer.address, TunnelType[tn.type], tn.port, tn.noChecksum, tn.checksum, tn.remoteChecksum];
    });
    expect(t).toEqual([
      ["198.51.100.47", "IPIP", 0, false, false, false],
      ["198.51.100.48", "GUE", 6080, true, false, false],
      ["198.51.100.49", "GUE", 6081, false, true, false],
      ["198.51.100.50", "GUE", 6082, false, false, true],
      ["198.51.100.51", "GRE", 0, false, true, false],
      ["198.51.100.52", "GRE", 0, true, false, false],
      ["198.51.100.53", "GRE", 0, true, false, false],
      ["2001:db8::53", "IPIP", 0, false, false, false],
    ]);
    expect(r.realServers.every((x) => x.realServer.forwardMethod === ForwardMethod.TUN)).toBe(true);
  });

  it("the director goes on every service", () => {
    const r = parseIpvsadmSave(SAVE_N, { director: DIRECTOR });
    expect(r.virtualServices.every((v) => v.virtualService.directors.join() === DIRECTOR)).toBe(true);
  });

  it("hand-written forms ipvsadm -R takes: long options, --opt=value, any order, -p alone, no ports, comments, -E/-e, thresholds", () => {
    const text = [
      "# web",
      "",
      "--add-service --tcp-service 192.0.2.1:http --scheduler=rr --persistent",
      "-a -r 198.51.100.1 -t 192.0.2.1:80 --masquerading --weight=7 -x 100 -y 10",
      "-E -t 192.0.2.1:80 -s wrr -p 600 -M 255.255.0.0",
      "-e -t 192.0.2.1:80 -r 198.51.100.1:80 -m -w 9\r",
      "-A -t [2001:db8::1] -s sh -b sh-port -p",
    ].join("\n");
    const r = parseIpvsadmSave(text);
    const [a, b] = r.virtualServices;
    expect([a!.line, a!.virtualService.scheduler, a!.virtualService.persistence?.timeoutSeconds, a!.virtualService.persistence?.prefixLength]).toEqual([3, "wrr", 600, 16]);
    expect(a!.realServers.map((x) => [x.line, x.realServer.port, x.realServer.weight, x.realServer.upperThreshold])).toEqual([[4, 80, 9, 0]]);
    expect([b!.virtualService.port, b!.virtualService.persistence?.timeoutSeconds, b!.virtualService.schedulerFlags]).toEqual([0, DEFAULT_PERSISTENCE_TIMEOUT, ["sh-port"]]);
    const x = parseIpvsadmSave("-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 198.51.100.1 -w 5 -x 100 -y 10\n");
    expect(x.virtualServices[0]!.virtualService.scheduler).toBe("wlc");
    expect(formatIpvsadmSave([{ virtualService: x.virtualServices[0]!.virtualService, realServers: [x.virtualServices[0]!.realServers[0]!.realServer] }])).toBe(
      "-A -t 192.0.2.1:80 -s wlc\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -g -w 5 -x 100 -y 10\n",
    );
  });
});

describe("ipvsadm -S import: errors name the line and the token", () => {
  it("unknown option", () => {
    expect(violations("-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 --foo\n")).toEqual(['line 2: unknown option "--foo"']);
  });

  it("every problem of the file, each with its line", () => {
    const v = violations(
      [
        "-A -t 192.0.2.1:80 -s rr",
        "-A -t 192.0.2.1:80 -s rr", // duplicate
        "-a -t 192.0.2.9:80 -r 198.51.100.1:80 -g -w 1", // no service
        "-A -t www.example.com:http -s rr", // host name
        "-A -t 192.0.2.2:nosuchservice -s rr", // unknown port name
        "-A -t 192.0.2.3:80 -s", // truncated
        "-C", // not a rule
        "-a -t 192.0.2.1:80 -r 198.51.100.1:80 -s rr", // service option on a server line
        "-A -t 192.0.2.4:70000", // port range
        "-A -t 192.0.2.5:80 -M 255.0.255.0 -p", // non-contiguous
        "-A -f 0", // fwmark 0
        "-A -t 192.0.2.6:80 -6", // -6 on an address service
        "-a -t 192.0.2.1:80 -r 198.51.100.2:80 -w heavy",
        "-a -t 192.0.2.1:80 -r 198.51.100.3:80 -i --tun-type vxlan",
        "-A -t 192.0.2.7:80 -s rr -s wrr",
        "-a -t 192.0.2.1:80 -r 198.51.100.4:80 -g -m",
        "garbage",
      ].join("\n"),
    );
    expect(v).toEqual([
      "line 2: service -t 192.0.2.1:80 is already defined on line 1",
      "line 3: real server of service -t 192.0.2.9:80, which no earlier -A line defines",
      'line 4: service "www.example.com" is a host name: lvsfleet does not resolve DNS; save the rules with ipvsadm -S -n',
      'line 5: service port "nosuchservice" is not a number or a well-known tcp service name; save the rules with ipvsadm -S -n',
      'line 6: option "-s" needs a value (the line ends there: truncated?)',
      'line 7: "-C" is not a rule: an import takes the -A/-a lines ipvsadm -S writes (and -E/-e)',
      'line 8: option "-s" does not apply to a real server (-a/-e) line',
      'line 9: service port "70000" is not in 0..65535',
      'line 10: option "-M": "255.0.255.0" is not a contiguous netmask (lvsfleet stores a prefix length)',
      'line 11: option "-f": fwmark 0 is not a mark (1..4294967295)',
      'line 12: option "-6" only applies to fwmark services (-f); an address service takes its family from the VIP',
      'line 13: option "-w": "heavy" is not a number in 0..4294967295',
      'line 14: option "--tun-type": "vxlan" is not one of ipip, gue, gre',
      'line 15: option "-s" given twice',
      'line 16: option "-m" conflicts with "-g"',
      'line 17: "garbage" is not an ipvsadm rule: expected -A or -a',
    ]);
  });

  it("binary garbage, empty and huge files", () => {
    expect(violations("-A -t 192.0.2.1:80\n\u0000\u0001\u0002ELF")[0]).toMatch(/^line 2: not text: character U\+0000 at column 1/);
    expect(violations("")).toEqual(["the file is empty"]);
    expect(violations("#".repeat(3 * 1024 * 1024 + 1))).toEqual(["the file is larger than 3145728 bytes"]);
    expect(parseIpvsadmSave(`-A -t 192.0.2.1:80 -p\n${"# padding\n".repeat(300_000)}`).virtualServices).toHaveLength(1); // 3,000,020 bytes: under the limit
    expect(violations("-A -t 192.0.2.1:80 " + "x".repeat(5000))).toEqual(["line 1: line longer than 4096 characters"]);
  });

  it("caps the report at 50 violations plus a count", () => {
    const v = violations(Array.from({ length: 80 }, () => "--bogus").join("\n"));
    expect(v).toHaveLength(51);
    expect(v[50]).toBe("… and 30 more");
  });
});
