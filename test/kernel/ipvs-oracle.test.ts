// IPVS oracle tests on a real kernel, both ways, with Debian's ipvsadm as the oracle:
//  - lvsfleet's IpvsClient programs → `ipvsadm -Sn`, `ipvsadm -Ln`, `ipvsadm -Ln --stats` read back;
//  - `ipvsadm` programs → IpvsClient reads back, field by field;
// for every scheduler the 6.1 kernel has, the service flags, forward methods, tunnel types,
// thresholds, IPv6, fwmark and port-0 services, plus timeouts, info, sync daemons, zero, and the
// typed errors. Runs in the kernel target (the VM when the host has no ip_vs).
import { beforeAll, describe, expect, it } from "vitest";
import type { IpvsDaemon, IpvsDestination, IpvsInfo, IpvsService, IpvsTimeouts } from "../../agents/hostagent/netlink/ipvs/codec.js";
import type { IpvsServiceState } from "../../agents/hostagent/netlink/ipvs/client.js";
import * as C from "../../agents/hostagent/netlink/ipvs/constants.js";
import { mustExec, type KernelTarget } from "../harness/kernel-target.js";
import { kernelTarget } from "../harness/kernel-vitest.js";
import { cases, restoreLines, saveLines, serviceKeyString, type ServiceCase } from "./ipvs-cases.js";
import { ipvsadmSave, ok, parseListStats, runClient, type Step } from "./ipvs-lib.js";

let target: KernelTarget;
beforeAll(async () => {
  target = await kernelTarget();
});

/** A snapshot reduced to what was programmed: no counters, the kernel-owned HASHED bit checked and removed. */
function comparable(snap: IpvsServiceState[]) {
  const out = new Map<string, { svc: Omit<IpvsService, "stats" | "stats64">; dests: Omit<IpvsDestination, "stats" | "stats64" | "activeConns" | "inactiveConns" | "persistentConns">[] }>();
  for (const { service, destinations } of snap) {
    expect(service.flags & C.IP_VS_SVC_F_HASHED, `HASHED flag on ${serviceKeyString(service)}`).toBe(C.IP_VS_SVC_F_HASHED);
    const { stats: _s, stats64: _s64, ...svc } = service;
    svc.flags &= ~C.IP_VS_SVC_F_HASHED;
    const dests = destinations
      .map(({ stats: _a, stats64: _b, activeConns: _c, inactiveConns: _d, persistentConns: _e, ...dd }) => dd)
      .sort((a, b) => a.address.localeCompare(b.address));
    out.set(serviceKeyString(service), { svc, dests });
  }
  return out;
}

/** What the kernel reports for the cases: tunnel attributes are always present (0 = ipip, port 0, flags 0). */
function expected(cs: ServiceCase[]) {
  const out = new Map<string, { svc: Omit<IpvsService, "stats" | "stats64">; dests: IpvsDestination[] }>();
  for (const c of cs) {
    const dests = c.dests
      .map((x) => ({ tunnelType: "ipip" as const, tunnelPort: 0, tunnelFlags: 0, ...x.dest }))
      .sort((a, b) => a.address.localeCompare(b.address));
    out.set(serviceKeyString(c.svc), { svc: { ...c.svc }, dests });
  }
  return out;
}

function programSteps(cs: ServiceCase[]): Step[] {
  return cs.flatMap((c): Step[] => [
    { do: "newService", service: c.svc },
    ...c.dests.map((x): Step => ({ do: "newDestination", service: c.svc, destination: x.dest })),
  ]);
}

function expectAllOk(results: { ok: boolean }[], steps: Step[]): void {
  const failed = results.map((r, i) => ({ r, step: steps[i] })).filter((x) => !x.r.ok);
  expect(failed).toEqual([]);
}

describe("IPVS oracle: lvsfleet programs, ipvsadm reads", () => {
  it("the whole table (13 schedulers, flags, PE, forward methods, tunnels, thresholds, IPv6, fwmark, port 0) → ipvsadm -Sn", async () => {
    const cs = cases();
    const steps: Step[] = [{ do: "flush" }, ...programSteps(cs), { do: "snapshot" }];
    const results = await runClient(target, steps);
    expectAllOk(results, steps);

    expect(await ipvsadmSave(target)).toEqual(saveLines(cs));

    // The client's own read agrees with what it wrote.
    const snap = ok<IpvsServiceState[]>(results.at(-1));
    expect(comparable(snap)).toEqual(expected(cs));

    // ipvsadm -Ln: forward method and weight; ipvsadm -Ln --thresholds: upper/lower threshold.
    const list = await mustExec(target, "ipvsadm -Ln");
    const thresholds = await mustExec(target, "ipvsadm -Ln --thresholds");
    const fwdName = { masq: "Masq", route: "Route", tunnel: "Tunnel", local: "Local", bypass: "Bypass" } as const;
    for (const c of cs) {
      for (const x of c.dests) {
        const hp = x.dest.address.includes(":") ? `[${x.dest.address}]:${x.dest.port}` : `${x.dest.address}:${x.dest.port}`;
        const addr = hp.replace(/[[\].]/g, "\\$&");
        expect(list).toMatch(new RegExp(`-> ${addr}\\s+${fwdName[x.dest.forward]}\\s+${x.dest.weight}\\s+0\\s+0`));
        expect(thresholds).toMatch(new RegExp(`-> ${addr}\\s+${x.dest.upperThreshold}\\s+${x.dest.lowerThreshold}\\s+0\\s+0`));
      }
    }

    // ipvsadm -Ln --stats --exact: every service and destination, counters equal to the client's.
    const stats = parseListStats(await mustExec(target, "ipvsadm -Ln --stats --exact"));
    let compared = 0;
    for (const { service, destinations } of snap) {
      const proto = service.fwmark !== undefined ? "FWM" : service.protocol!.toUpperCase();
      const name = service.fwmark !== undefined ? `${service.fwmark}` : service.family === "ipv6" ? `[${service.address}]:${service.port}` : `${service.address}:${service.port}`;
      const row = stats.get(`${proto}  ${name}`);
      expect(row, `ipvsadm --stats row for ${proto} ${name}`).toBeDefined();
      const s = service.stats64!;
      expect(row).toEqual({ conns: s.conns, inPkts: s.inPkts, outPkts: s.outPkts, inBytes: s.inBytes, outBytes: s.outBytes });
      compared++;
      for (const dd of destinations) {
        const dn = dd.family === "ipv6" ? `[${dd.address}]:${dd.port}` : `${dd.address}:${dd.port}`;
        expect(stats.get(`${proto}  ${name} -> ${dn}`), `--stats row for ${dn}`).toBeDefined();
      }
    }
    expect(compared).toBe(cs.length);
  });

  it("edit and delete through the client show up in ipvsadm; one destination change is one request", async () => {
    const [a] = cases();
    const svc = a!.svc;
    const d0 = a!.dests[0]!.dest;
    const steps: Step[] = [
      { do: "flush" },
      { do: "newService", service: svc },
      ...a!.dests.map((x): Step => ({ do: "newDestination", service: svc, destination: x.dest })),
      { do: "setDestination", service: svc, destination: { ...d0, weight: 7, upperThreshold: 50, lowerThreshold: 5 } },
      { do: "setService", service: { ...svc, scheduler: "wlc", flags: C.IP_VS_SVC_F_PERSISTENT, timeout: 30, netmask: 0xffff0000 } },
      { do: "delDestination", service: svc, destination: a!.dests[1]!.dest },
      { do: "getService", service: svc },
    ];
    const r = await runClient(target, steps);
    expectAllOk(r, steps);
    expect(r[4]!.requests).toBe(1); // setDestination: one IPVS_CMD_SET_DEST
    expect(r[6]!.requests).toBe(1);
    expect(ok<IpvsService>(r[7])).toMatchObject({ scheduler: "wlc", timeout: 30, netmask: 0xffff0000 });
    expect(await ipvsadmSave(target)).toEqual([`-A -t ${a!.svc.address}:80 -s wlc -p 30 -M 255.255.0.0`, `-a -t ${a!.svc.address}:80 -r ${d0.address}:8080 -m -w 7`].sort());
    expect(await mustExec(target, "ipvsadm -Ln --thresholds")).toMatch(new RegExp(`-> ${d0.address.replace(/\./g, "\\.")}:8080\\s+50\\s+5\\s`));
    const del = await runClient(target, [{ do: "delService", service: svc }, { do: "getService", service: svc }, { do: "listServices" }]);
    expect(del[0]!.ok).toBe(true);
    expect(del[1]).toMatchObject({ ok: true });
    expect(del[1]!.ok && del[1]!.value).toBeUndefined();
    expect(ok<IpvsService[]>(del[2])).toEqual([]);
    expect(await ipvsadmSave(target)).toEqual([]);
  });

  it("kernel refusals come back as typed errors with errno name and operation", async () => {
    const svc: IpvsService = { family: "ipv4", protocol: "tcp", address: "192.0.2.99", port: 80, scheduler: "rr", flags: 0, timeout: 0, netmask: 0xffffffff };
    const dst: IpvsDestination = { family: "ipv4", address: "198.51.100.99", port: 80, forward: "route", weight: 1, upperThreshold: 0, lowerThreshold: 0 };
    const missing = { ...svc, address: "192.0.2.98" };
    const r = await runClient(target, [
      { do: "flush" },
      { do: "newService", service: { ...svc, scheduler: "twos" } }, // not in Debian's 6.1 kernel
      { do: "newService", service: svc },
      { do: "newService", service: svc },
      { do: "delService", service: missing },
      { do: "newDestination", service: missing, destination: dst },
      { do: "delDestination", service: svc, destination: dst },
      { do: "newDestination", service: svc, destination: dst },
      { do: "newDestination", service: svc, destination: dst },
      { do: "setDestination", service: svc, destination: { ...dst, address: "198.51.100.98" } },
      { do: "newService", service: { ...svc, address: "192.0.2.97", scheduler: "no-such-sched" } },
    ]);
    const errs = r.map((x) => (x.ok ? "ok" : `${x.error.name}:${x.error.code}:${x.error.op}`));
    expect(errs).toEqual([
      "ok",
      "IpvsSchedulerUnavailableError:ENOENT:IPVS_CMD_NEW_SERVICE",
      "ok",
      "NetlinkError:EEXIST:IPVS_CMD_NEW_SERVICE",
      "NetlinkError:ESRCH:IPVS_CMD_DEL_SERVICE",
      "NetlinkError:ESRCH:IPVS_CMD_NEW_DEST",
      "NetlinkError:ENOENT:IPVS_CMD_DEL_DEST",
      "ok",
      "NetlinkError:EEXIST:IPVS_CMD_NEW_DEST",
      "NetlinkError:ENOENT:IPVS_CMD_SET_DEST",
      "IpvsSchedulerUnavailableError:ENOENT:IPVS_CMD_NEW_SERVICE",
    ]);
    expect(!r[1]!.ok && r[1]!.error.message).toMatch(/scheduler "twos" is not available/);
    // Nothing half-written: ipvsadm sees the one service and its one destination.
    expect(await ipvsadmSave(target)).toEqual(["-A -t 192.0.2.99:80 -s rr", "-a -t 192.0.2.99:80 -r 198.51.100.99:80 -g -w 1"]);
  });
});

describe("IPVS oracle: ipvsadm programs, lvsfleet reads", () => {
  it("the whole table through ipvsadm -R → IpvsClient.snapshot() field by field", async () => {
    const cs = cases();
    await mustExec(target, `ipvsadm -C && ipvsadm -R <<'EOF'\n${restoreLines(cs).join("\n")}\nEOF`);
    expect(await ipvsadmSave(target)).toEqual(saveLines(cs)); // ipvsadm took every line
    const r = await runClient(target, [{ do: "snapshot" }, { do: "listServices" }, ...cs.map((c): Step => ({ do: "listDestinations", service: c.svc }))]);
    const snap = ok<IpvsServiceState[]>(r[0]);
    expect(comparable(snap)).toEqual(expected(cs));
    expect(ok<IpvsService[]>(r[1])).toHaveLength(cs.length);
    cs.forEach((c, i) => expect(ok<IpvsDestination[]>(r[2 + i])).toHaveLength(c.dests.length));
  });

  it("each service added by its own ipvsadm command reads back through getService", async () => {
    const cs = cases();
    const script = ["ipvsadm -C", ...cs.map((c) => `ipvsadm -A ${c.sel} ${c.opts}`)].join(" && ");
    await mustExec(target, script);
    const r = await runClient(target, cs.map((c): Step => ({ do: "getService", service: c.svc })));
    cs.forEach((c, i) => {
      const got = ok<IpvsService>(r[i]);
      expect({ ...got, flags: got.flags & ~C.IP_VS_SVC_F_HASHED, stats: undefined, stats64: undefined }).toEqual({ ...c.svc, stats: undefined, stats64: undefined });
    });
  });
});

describe("IPVS oracle: config, info, daemons, zero", () => {
  it("timeouts: client sets → ipvsadm -L --timeout; ipvsadm --set → client reads", async () => {
    const r1 = await runClient(target, [{ do: "setConfig", timeouts: { tcp: 900, tcpFin: 120, udp: 300 } }]);
    expect(r1[0]!.ok).toBe(true);
    expect(await mustExec(target, "ipvsadm -L --timeout")).toMatch(/Timeout \(tcp tcpfin udp\): 900 120 300/);
    await mustExec(target, "ipvsadm --set 901 121 301");
    const r2 = await runClient(target, [{ do: "getConfig" }, { do: "setConfig", timeouts: { tcp: 0, tcpFin: 0, udp: 55 } }, { do: "getConfig" }]);
    expect(ok<IpvsTimeouts>(r2[0])).toEqual({ tcp: 901, tcpFin: 121, udp: 301 });
    expect(ok<IpvsTimeouts>(r2[2])).toEqual({ tcp: 901, tcpFin: 121, udp: 55 }); // 0 leaves a value as is
    await mustExec(target, "ipvsadm --set 900 120 300");
  });

  it("info: version and connection table size as ipvsadm prints them", async () => {
    const [r] = await runClient(target, [{ do: "getInfo" }]);
    const info = ok<IpvsInfo>(r);
    const head = /IP Virtual Server version (\d+\.\d+\.\d+) \(size=(\d+)\)/.exec(await mustExec(target, "ipvsadm -Ln"));
    expect(head).not.toBeNull();
    expect(info.versionString).toBe(head![1]);
    expect(info.connTableSize).toBe(Number(head![2]));
  });

  it("sync daemons: ipvsadm starts → client lists; client starts/stops → ipvsadm lists", async () => {
    await mustExec(target, "ip link del lvsfsync0 2>/dev/null; ip link add lvsfsync0 type veth peer name lvsfsync1 && ip link set lvsfsync0 up && ip link set lvsfsync1 up");
    try {
      await mustExec(target, "ipvsadm --start-daemon master --mcast-interface lvsfsync0 --syncid 7");
      const r = await runClient(target, [
        { do: "listDaemons" },
        { do: "delDaemon", state: "master" },
        { do: "newDaemon", daemon: { state: "backup", mcastInterface: "lvsfsync1", syncId: 8 } },
        { do: "listDaemons" },
      ]);
      const before = ok<IpvsDaemon[]>(r[0]);
      expect(before).toHaveLength(1);
      expect(before[0]).toMatchObject({ state: "master", mcastInterface: "lvsfsync0", syncId: 7 });
      expect(r[1]!.ok && r[2]!.ok).toBe(true);
      expect(ok<IpvsDaemon[]>(r[3])).toEqual([expect.objectContaining({ state: "backup", mcastInterface: "lvsfsync1", syncId: 8 })]);
      const listed = await mustExec(target, "ipvsadm -L --daemon");
      expect(listed).toMatch(/backup sync daemon \(mcast=lvsfsync1, syncid=8/);
      expect(listed).not.toMatch(/master sync daemon/);
    } finally {
      await target.exec("ipvsadm --stop-daemon master; ipvsadm --stop-daemon backup; ip link del lvsfsync0");
    }
  });

  it("zero and flush", async () => {
    const [c] = cases();
    const r = await runClient(target, [{ do: "flush" }, ...programSteps([c!]), { do: "zero", service: c!.svc }, { do: "zero" }, { do: "flush" }, { do: "listServices" }]);
    expect(r.every((x) => x.ok)).toBe(true);
    expect(ok<IpvsService[]>(r.at(-1))).toEqual([]);
    expect(await ipvsadmSave(target)).toEqual([]);
  });
});
