// ipvsadm-save import/export against the real thing: the REAL ipvsadm (Debian 1.31) programs a table
// on the VM's kernel — every scheduler the 6.1 kernel has (rr..ovf; twos needs 6.12), -p with and
// without a timeout, -M v4/v6, -b sh/mh flags together with -p/--pe/-o (pins the option order),
// NAT/DR/TUN incl. every GUE/GRE checksum option, IPv6 VIPs, a v6 TUN destination behind a v4 VIP,
// fwmark v4/v6, port-0 tcp/udp, sctp. Then:
//   ipvsadm -S -n  → import (the parser) → export  == byte for byte
//   ipvsadm -S     → import (service names) → export == the -S -n text
//   ipvsadm -C; ipvsadm -R < export; ipvsadm -S -n == the export again
// Ordering rule: ipvsadm sorts (libipvs ipvs_cmp_services / ipvs_cmp_dests) and so does the export,
// so nothing is re-sorted in this test: the programming order below is deliberately not sorted.
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { FirewallMarkSchema, HostSchema } from "../../gen/lvsfleet/v1/topology_pb.js";
import { HostRole } from "../../gen/lvsfleet/v1/types_pb.js";
import { validateRealServer, validateVirtualService } from "../../services/controlplane/domain/validate.js";
import { formatIpvsadmSave } from "../../services/controlplane/operator/ipvsadm-export.js";
import { parseIpvsadmSave } from "../../services/controlplane/operator/ipvsadm-save.js";
import { parseKeepalivedConf } from "../../services/controlplane/operator/keepalived.js";
import { mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";

const SCHEDULERS = ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf"];

/** ipvsadm commands, in a deliberately unsorted order (IPv6 and fwmark first, addresses descending). */
function table(): string[] {
  const cmds: string[] = [
    "-A -f 101 -6 -s rr -p 50 -M 64",
    "-a -f 101 -6 -r 2001:db8:1::101 -g",
    "-A -t [2001:db8::11]:443 -s lc -p 120 -M 64",
    "-a -t [2001:db8::11]:443 -r [2001:db8:1::11]:443 -g -w 3",
    "-A -t [2001:db8::10]:80 -s wrr",
    "-a -t [2001:db8::10]:80 -r [2001:db8:2::10]:80 -g",
    "-a -t [2001:db8::10]:80 -r [2001:db8:1::10]:8080 -m -w 4",
    "-A -u [2001:db8::12]:53 -s lc -p 120 -o",
    "-A -f 100 -s wlc",
    "-a -f 100 -r 198.51.100.101:8080 -m",
    "-a -f 100 -r 198.51.100.100 -g",
    "-A -u 192.0.2.60:5060 -s sh -b sh-fallback -p 60 -M 255.255.0.0 --pe sip -o",
    "-a -u 192.0.2.60:5060 -r 198.51.100.60:5060 -m",
    "-A -t 192.0.2.59:80 -s mh -b mh-port,mh-fallback -p 30",
    "-A -u 192.0.2.55:0 -s rr -p 10",
    "-a -u 192.0.2.55:0 -r 198.51.100.55:0 -g -w 2",
    "-A -t 192.0.2.54:443 -s rr -p 1 -M 255.255.255.255",
    "-A -t 192.0.2.53:443 -s rr -p 2678400 -M 0.0.0.0",
    "-A -t 192.0.2.47:80 -s wrr",
    "-a -t 192.0.2.47:80 -r 2001:db8::53 -i",
    "-a -t 192.0.2.47:80 -r 198.51.100.53 -i --tun-type gre",
    "-a -t 192.0.2.47:80 -r 198.51.100.52 -i --tun-type gre --tun-nocsum",
    "-a -t 192.0.2.47:80 -r 198.51.100.51 -i --tun-type gre --tun-csum",
    "-a -t 192.0.2.47:80 -r 198.51.100.50 -i --tun-type gue --tun-port 6082 --tun-remcsum",
    "-a -t 192.0.2.47:80 -r 198.51.100.49 -i --tun-type gue --tun-port 6081 --tun-csum",
    "-a -t 192.0.2.47:80 -r 198.51.100.48 -i --tun-type gue --tun-port 6080 --tun-nocsum -w 7",
    "-a -t 192.0.2.47:80 -r 198.51.100.47 -i",
    "-A --sctp-service 192.0.2.46:9000 -s rr",
    "-a --sctp-service 192.0.2.46:9000 -r 198.51.100.46:9000 -m",
    "-A -u 192.0.2.45:5060 -s rr -p 60 --pe sip",
    "-A -u 192.0.2.44:53 -s rr -o",
    "-a -u 192.0.2.44:53 -r 198.51.100.44:53 -m",
    "-A -t 192.0.2.43:80 -s mh -b mh-fallback,mh-port",
    "-A -t 192.0.2.42:80 -s sh -b sh-fallback,sh-port",
    "-A -t 192.0.2.41:0 -s wlc -p",
    "-a -t 192.0.2.41:0 -r 198.51.100.41 -g",
    "-A -t 192.0.2.40:443 -s rr -p 300 -M 255.255.255.0",
    "-a -t 192.0.2.40:443 -r 198.51.100.40:443 -g -w 0",
  ];
  SCHEDULERS.forEach((s, i) => {
    const vip = `192.0.2.${30 - i}:80`;
    cmds.push(`-A -t ${vip} -s ${s}`, `-a -t ${vip} -r 203.0.113.${10 + i}:80 -g -w 2 -x 100 -y 10`, `-a -t ${vip} -r 198.51.100.${10 + i}:8080 -m -w 3`);
  });
  return cmds;
}

let target: KernelTarget;
let saveN: string;
let saveNames: string;

beforeAll(async () => {
  target = await kernelTarget();
  // ipvsadm -R reads the commands one per line, exactly as ipvsadm would take them as arguments.
  await mustExec(target, "ipvsadm -C && ipvsadm -R", { stdin: table().join("\n") + "\n", timeoutMs: 120_000 });
  saveN = await mustExec(target, "ipvsadm -S -n");
  saveNames = await mustExec(target, "ipvsadm -S");
});

function roundTrip(text: string): string {
  const r = parseIpvsadmSave(text, { director: "sites/vm/hosts/lb1" });
  return formatIpvsadmSave(r.virtualServices.map((v) => ({ virtualService: v.virtualService, realServers: v.realServers.map((x) => x.realServer) })));
}

describe("ipvsadm -S round trip on the real kernel", () => {
  it("the kernel holds the whole table", () => {
    const cmds = table();
    expect(saveN.split("\n").filter((l) => l.startsWith("-A"))).toHaveLength(cmds.filter((c) => c.startsWith("-A")).length);
    expect(saveN.split("\n").filter((l) => l.startsWith("-a"))).toHaveLength(cmds.filter((c) => c.startsWith("-a")).length);
    // Sorted output, not the programming order: the first rule is the lowest IPv4 tcp service.
    expect(saveN.split("\n")[0]).toBe("-A -t 192.0.2.18:80 -s ovf");
  });

  it("import → export of `ipvsadm -S -n` is byte-identical", () => {
    expect(roundTrip(saveN)).toBe(saveN);
  });

  it("import → export of `ipvsadm -S` (service names, no -n) gives the -S -n text", () => {
    expect(saveNames).not.toBe(saveN);
    expect(saveNames).toContain(":http ");
    expect(roundTrip(saveNames)).toBe(saveN);
  });

  it("every imported resource is valid for lvsfleet", () => {
    const r = parseIpvsadmSave(saveN, { director: "sites/vm/hosts/lb1" });
    const ctx = {
      firewallMarks: [100, 101].map((mark) => create(FirewallMarkSchema, { mark })),
      hosts: [create(HostSchema, { name: "sites/vm/hosts/lb1", roles: [HostRole.DIRECTOR] })],
      realServers: [],
      site: "vm",
    };
    const problems = r.virtualServices.flatMap((v) => [
      ...validateVirtualService(v.virtualService, ctx, `line ${v.line}`),
      ...v.realServers.flatMap((x) => validateRealServer(x.realServer, { virtualService: v.virtualService }, `line ${x.line}`)),
    ]);
    expect(problems).toEqual([]);
  });

  it("ipvsadm -C; ipvsadm -R < export; ipvsadm -S -n gives the same text again", async () => {
    const exported = roundTrip(saveN);
    const again = await mustExec(target, "ipvsadm -C && ipvsadm -R && ipvsadm -S -n", { stdin: exported, timeoutMs: 120_000 });
    expect(again).toBe(exported);
  });

  it("thresholds (which ipvsadm -S drops) survive export → ipvsadm -R", async () => {
    const text = "-A -t 192.0.2.90:80 -s wrr\n-a -t 192.0.2.90:80 -r 198.51.100.90:80 -g -w 5 -x 1000 -y 100\n";
    const exported = roundTrip(text);
    expect(exported).toBe(text);
    const listing = await mustExec(target, "ipvsadm -C && ipvsadm -R && ipvsadm -Ln --thresholds -t 192.0.2.90:80", { stdin: exported });
    const row = listing.split("\n").find((l) => l.includes("198.51.100.90:80"));
    // "  -> 198.51.100.90:80  1000  100  0  0": Uthreshold, Lthreshold, ActiveConn, InActConn
    expect(row?.trim().split(/\s+/).slice(2, 4)).toEqual(["1000", "100"]);
  });

  it("a keepalived.conf import exports as rules the real ipvsadm restores and saves identically", async () => {
    const conf = readFileSync(new URL("../../services/controlplane/operator/testdata/keepalived-full.conf", import.meta.url), "utf8");
    const r = parseKeepalivedConf(conf);
    const exported = formatIpvsadmSave(r.virtualServices.map((v) => ({ virtualService: v.virtualService, realServers: v.realServers.map((x) => x.realServer) })));
    expect(exported.split("\n").filter((l) => l.startsWith("-A"))).toHaveLength(r.virtualServices.length);
    const saved = await mustExec(target, "ipvsadm -C && ipvsadm -R && ipvsadm -S -n", { stdin: exported, timeoutMs: 120_000 });
    // ipvsadm -S leaves the thresholds out; everything else is the export.
    expect(saved).toBe(exported.replace(/ -x \d+ -y \d+/g, ""));
    expect(exported).toContain(" -x 1000 -y 100\n");
  });
});
