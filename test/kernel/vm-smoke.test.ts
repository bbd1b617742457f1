// Smoke test of the kernel test harness (test/harness): the target the global setup started really
// has IPVS, Debian's ipvsadm and nft work in it, TypeScript bundled on the host runs there with the
// native netlink addon, namespaces + veth carry TCP, failures come back as failures, and (VM only)
// a crashed guest is reported as VmDiedError rather than as a failed command.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  bundleForGuest,
  ExecTimeoutError,
  mustExec,
  startKernelTarget,
  VmDiedError,
  type KernelTarget,
} from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import type { ProbeReport } from "../harness/fixtures/guest-probe-lib.js";

interface IpvsService {
  proto: string;
  address: string;
  scheduler: string;
  flags: string;
  dests: { address: string; forward: string; weight: number }[];
}

/** Parses `ipvsadm -Ln`: service lines "TCP  192.0.2.1:80 wlc", destination lines "  -> addr:port Masq 3 0 0". */
function parseIpvsadmList(out: string): IpvsService[] {
  const services: IpvsService[] = [];
  for (const line of out.split("\n")) {
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (svc) {
      services.push({ proto: svc[1], address: svc[2], scheduler: svc[3], flags: svc[4].trim(), dests: [] });
      continue;
    }
    const dst = /^\s+->\s+(\S+)\s+(\S+)\s+(\d+)\s+\d+\s+\d+\s*$/.exec(line);
    if (dst && services.length) services[services.length - 1].dests.push({ address: dst[1], forward: dst[2], weight: Number(dst[3]) });
  }
  return services;
}

let target: KernelTarget;

beforeAll(async () => {
  target = await kernelTarget();
});

describe("kernel target", () => {
  it("has IPVS, and ipvsadm programs a NAT service that -Ln reads back", async () => {
    await mustExec(target, "ipvsadm -C");
    try {
      await mustExec(
        target,
        `ipvsadm -A -t 192.0.2.1:80 -s wlc
         ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.10:80 -m -w 3`,
      );
      const list = parseIpvsadmList(await mustExec(target, "ipvsadm -Ln"));
      expect(list).toEqual([
        { proto: "TCP", address: "192.0.2.1:80", scheduler: "wlc", flags: "", dests: [{ address: "198.51.100.10:80", forward: "Masq", weight: 3 }] },
      ]);
      // The kernel's own view agrees: /proc/net/ip_vs lists the service in hex (C0000201:0050).
      expect(await mustExec(target, "cat /proc/net/ip_vs")).toMatch(/TCP\s+C0000201:0050 wlc\s*\n\s+->\s+C633640A:0050\s+Masq\s+3\b/);
    } finally {
      await mustExec(target, "ipvsadm -C");
    }
  });

  it("loads every scheduler module on demand (the kernel's modprobe helper works)", async () => {
    const schedulers = ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf"];
    await mustExec(target, "ipvsadm -C");
    try {
      await mustExec(target, schedulers.map((s, i) => `ipvsadm -A -t 203.0.113.7:${1000 + i} -s ${s}`).join("\n"));
      const list = parseIpvsadmList(await mustExec(target, "ipvsadm -Ln"));
      expect(list.map((s) => [s.address, s.scheduler]).sort()).toEqual(schedulers.map((s, i) => [`203.0.113.7:${1000 + i}`, s]).sort());
    } finally {
      await mustExec(target, "ipvsadm -C");
    }
  });

  it("runs nft (nf_tables) and reads the ruleset back as JSON", async () => {
    const table = `lvsfleet_smoke_${process.pid}`;
    try {
      await mustExec(
        target,
        `nft add table inet ${table}
         nft add chain inet ${table} pre '{ type filter hook prerouting priority mangle; }'
         nft add rule inet ${table} pre ip daddr 192.0.2.1 tcp dport '{ 80, 443 }' meta mark set 0x2a`,
      );
      const json = JSON.parse(await mustExec(target, `nft -j list table inet ${table}`)) as { nftables: Record<string, any>[] };
      const rules = json.nftables.filter((o) => o.rule).map((o) => o.rule);
      expect(rules).toHaveLength(1);
      const mangle = rules[0].expr.find((e: any) => e.mangle)?.mangle;
      expect(mangle).toEqual({ key: { meta: { key: "mark" } }, value: 42 });
    } finally {
      await target.exec(`nft delete table inet ${table}`);
    }
  });

  it("runs TypeScript bundled on the host with node, native netlink addon included", async () => {
    const bundle = await bundleForGuest("test/harness/fixtures/guest-probe.ts");
    await mustExec(target, "ip link add lvsprobe0 type veth peer name lvsprobe1");
    try {
      const [uname, out] = await Promise.all([mustExec(target, "uname -r"), mustExec(target, `node ${bundle} 19 23`, { timeoutMs: 90_000 })]);
      const report = JSON.parse(out) as ProbeReport;
      expect(report.release).toBe(uname.trim());
      expect(report.sum).toBe(42);
      expect(report.genlFamilies).toContain("IPVS"); // generic netlink family registered by ip_vs
      expect(report.links).toEqual(expect.arrayContaining(["lo", "lvsprobe0", "lvsprobe1"]));
    } finally {
      await target.exec("ip link del lvsprobe0");
    }
  });

  it("creates a namespace with a veth pair that carries TCP", async () => {
    const ns = `lvs-smoke-${process.pid}`;
    try {
      await mustExec(
        target,
        `ip netns add ${ns}
         ip link add lvssmk0 type veth peer name lvssmk1 netns ${ns}
         ip addr add 198.51.100.1/24 dev lvssmk0 && ip link set lvssmk0 up
         ip -n ${ns} addr add 198.51.100.2/24 dev lvssmk1
         ip -n ${ns} link set lvssmk1 up && ip -n ${ns} link set lo up`,
      );
      const addrs = JSON.parse(await mustExec(target, `ip -n ${ns} -j addr show dev lvssmk1`)) as { addr_info: { local: string }[] }[];
      expect(addrs[0].addr_info.map((a) => a.local)).toContain("198.51.100.2");
      // A server in the namespace answers a client in the initial namespace over the veth.
      const out = await mustExec(
        target,
        `ip netns exec ${ns} node -e '
           const s = require("net").createServer((c) => { c.end("pong from " + c.localAddress + "\\n"); s.close(); });
           s.listen(8080, "198.51.100.2", () => console.log("listening"));' > /tmp/${ns}.log 2>&1 &
         for i in $(seq 1 300); do grep -q listening /tmp/${ns}.log && break; sleep 0.1; done
         exec 3<>/dev/tcp/198.51.100.2/8080 && cat <&3`,
        { timeoutMs: 90_000 },
      );
      expect(out).toBe("pong from 198.51.100.2\n");
    } finally {
      await target.exec(`ip netns del ${ns}`);
    }
  });

  it("feeds stdin from a file: ipvsadm -R and nft -f -", async () => {
    const rules = "-A -t 198.18.0.1:443 -s sh\n-a -t 198.18.0.1:443 -r 198.51.100.20:443 -g -w 2\n";
    const table = `lvsfleet_stdin_${process.pid}`;
    await mustExec(target, "ipvsadm -C");
    try {
      await mustExec(target, "ipvsadm -R", { stdin: rules });
      expect(await mustExec(target, "ipvsadm -Sn")).toBe(rules);
      await mustExec(target, "nft -f -", { stdin: `table ip ${table} {\n  chain c {\n    type filter hook input priority 0;\n  }\n}\n` });
      expect(await mustExec(target, "nft list tables")).toContain(`table ip ${table}`);
    } finally {
      await target.exec(`ipvsadm -C; nft delete table ip ${table}`);
    }
  });

  it("returns a failing command's exit code and stderr (not an exception)", async () => {
    const r = await target.exec("echo partial; echo boom >&2; ls /nonexistent-lvsfleet-path; exit 7");
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("partial\n");
    expect(r.stderr).toMatch(/^boom\n.*nonexistent-lvsfleet-path.*No such file or directory/s);

    const ipvs = await target.exec("ipvsadm -d -t 203.0.113.9:80 -r 198.51.100.99:80");
    expect(ipvs.code).not.toBe(0);
    expect(ipvs.stderr).toMatch(/Service not defined/);
    await expect(mustExec(target, "exit 3")).rejects.toMatchObject({ name: "CommandFailedError", code: 3 });
  });

  it("runs commands concurrently and kills one that times out", async () => {
    const flag = `/tmp/lvsfleet-flag-${process.pid}`;
    // The waiter only succeeds if the second command runs while it is still waiting.
    const waiter = target.exec(`for i in $(seq 1 600); do [ -e ${flag} ] && exit 0; sleep 0.1; done; exit 1`);
    await mustExec(target, `touch ${flag}`);
    expect((await waiter).code).toBe(0);

    const marker = `lvsfleet-sleeper-${process.pid}`;
    // 8 s: long enough for the command to start even on a loaded machine (a start takes ~1 s there).
    const err = await target.exec(`echo started; exec -a ${marker} sleep 300`, { timeoutMs: 8000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecTimeoutError);
    expect((err as ExecTimeoutError).stdout).toBe("started\n");
    // The process group was killed (give the guest's loop a moment) and the target still works.
    const left = await mustExec(
      target,
      `for i in $(seq 1 50); do pgrep -f ${marker} >/dev/null || { echo gone; exit 0; }; sleep 0.1; done; echo still-running`,
    );
    expect(left.trim()).toBe("gone");
  });
});

// The VM path's failure mode. Only meaningful where the suite runs in the VM (this machine, CI): on a
// host whose kernel has IPVS there is no VM whose death could be confused with a failing command.
describe.runIf(inject("lvsfleetKernelTarget").kind === "vm")("VM harness", () => {
  let crashing: KernelTarget | undefined;
  afterAll(async () => {
    await crashing?.close();
  });

  it("reports a crashed guest as VmDiedError, not as a failed command", async () => {
    // A second, small VM (nothing preloaded): the suite's own VM must survive this test.
    crashing = await startKernelTarget({ kind: "vm", vm: { smp: 1, memMiB: 512, preload: [] } });
    expect((await crashing.exec("echo alive")).stdout).toBe("alive\n");
    // sysrq 'c' panics the guest kernel; with panic=-1 and -no-reboot qemu exits.
    const err = await crashing.exec("echo c > /proc/sysrq-trigger; sleep 60", { timeoutMs: 60_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmDiedError);
    expect((err as VmDiedError).serialTail).toMatch(/sysrq|Kernel panic/i);
    await expect(crashing.exec("true")).rejects.toBeInstanceOf(VmDiedError);
  }, 300_000); // a second boot (with its retry) on a loaded machine
});
