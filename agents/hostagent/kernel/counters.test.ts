// IPVS counters → ServiceCounters: the pure mapping (names from the desired state, stats64 before
// the 32-bit stats, foreign services left out) and LinuxBackend.counters() over FakeIpvs.
import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HostDesiredStateSchema, IpvsDestinationSchema, IpvsServiceSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import type { IpvsServiceState } from "../netlink/ipvs/client.js";
import type { IpvsStats } from "../netlink/ipvs/codec.js";
import { toCounters } from "../report/publisher.js";
import { countersFromSnapshot } from "./counters.js";
import { FakeBackend } from "./fake-backend.js";
import { FakeIpvs } from "./fake-ipvs.js";
import { createFakeKernel } from "./fakes.js";
import { LinuxBackend } from "./linux-backend.js";

const stats = (n: number): IpvsStats => ({
  conns: BigInt(n),
  inPkts: BigInt(n * 10),
  outPkts: BigInt(n * 9),
  inBytes: BigInt(n * 1000),
  outBytes: BigInt(n * 2000),
  cps: 1n,
  inPps: 2n,
  outPps: 3n,
  inBps: 4n,
  outBps: 5n,
});

function dest(realServer: string, address: string, port = 80) {
  return create(IpvsDestinationSchema, { realServer, addressFamily: AddressFamily.IPV4, address, port, forwardMethod: ForwardMethod.DR, weight: 1 });
}

function desired(): HostDesiredState {
  return create(HostDesiredStateSchema, {
    site: "s1",
    host: "d1",
    revision: 3n,
    director: {
      services: [
        create(IpvsServiceSchema, {
          virtualService: "sites/s1/virtualServices/web",
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "192.0.2.10",
          port: 80,
          scheduler: "wlc",
          persistencePrefixLength: 32,
          destinations: [dest("sites/s1/virtualServices/web/realServers/a", "198.51.100.1"), dest("sites/s1/virtualServices/web/realServers/b", "198.51.100.2")],
          sorryServer: dest("", "198.51.100.99"),
        }),
        create(IpvsServiceSchema, {
          virtualService: "sites/s1/virtualServices/https",
          addressFamily: AddressFamily.IPV4,
          fwmark: 7,
          scheduler: "rr",
          persistencePrefixLength: 32,
          destinations: [dest("sites/s1/virtualServices/https/realServers/a", "198.51.100.1", 0)],
        }),
      ],
    },
  });
}

const svc = (k: Partial<IpvsServiceState["service"]>): IpvsServiceState["service"] => ({ family: "ipv4", scheduler: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff, ...k });
const dst = (address: string, port: number, k: Partial<IpvsServiceState["destinations"][number]> = {}): IpvsServiceState["destinations"][number] => ({
  address,
  port,
  forward: "route",
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
  ...k,
});

describe("countersFromSnapshot", () => {
  const snapshot: IpvsServiceState[] = [
    // Foreign (someone's ipvsadm): not reported.
    { service: svc({ protocol: "udp", address: "192.0.2.99", port: 53, stats64: stats(9) }), destinations: [] },
    {
      service: svc({ fwmark: 7, stats: stats(1), stats64: stats(5) }),
      destinations: [dst("198.51.100.1", 0, { stats64: stats(5), activeConns: 3, inactiveConns: 4, persistentConns: 2 })],
    },
    {
      service: svc({ protocol: "tcp", address: "192.0.2.10", port: 80, stats64: stats(30) }),
      destinations: [
        dst("198.51.100.1", 80, { stats64: stats(10), activeConns: 1, inactiveConns: 2 }),
        // An old kernel without stats64: the 32-bit stats.
        dst("198.51.100.2", 80, { stats: stats(20), weight: 0 }),
        // Sorry server: no real server name.
        dst("198.51.100.99", 80, {}),
      ],
    },
  ];

  it("maps each desired service found in the kernel, in desired order, with names from the desired state", () => {
    const out = countersFromSnapshot(desired(), snapshot);
    expect(out.map((s) => [s.virtualService, s.ipvsService])).toEqual([
      ["sites/s1/virtualServices/web", "tcp 192.0.2.10:80"],
      ["sites/s1/virtualServices/https", "fwmark ipv4 7"],
    ]);
    const web = out[0]!;
    expect(web.totals).toEqual({
      connections: 30n,
      inPackets: 300n,
      outPackets: 270n,
      inBytes: 30000n,
      outBytes: 60000n,
      connectionRate: 1n,
      inPacketRate: 2n,
      outPacketRate: 3n,
      inByteRate: 4n,
      outByteRate: 5n,
    });
    expect(web.destinations!.map((d) => [d.realServer, d.address, d.port, d.counters?.connections, d.activeConnections, d.inactiveConnections, d.weight])).toEqual([
      ["sites/s1/virtualServices/web/realServers/a", "198.51.100.1", 80, 10n, 1, 2, 1],
      ["sites/s1/virtualServices/web/realServers/b", "198.51.100.2", 80, 20n, 0, 0, 0],
      ["", "198.51.100.99", 80, undefined, 0, 0, 1],
    ]);
    const https = out[1]!;
    expect(https.totals?.connections).toBe(5n); // stats64 wins over stats
    expect(https.destinations![0]).toMatchObject({ realServer: "sites/s1/virtualServices/https/realServers/a", activeConnections: 3, inactiveConnections: 4, persistentConnections: 2 });
  });

  it("nothing desired or nothing in the kernel: no counters", () => {
    expect(countersFromSnapshot(undefined, snapshot)).toEqual([]);
    expect(countersFromSnapshot(desired(), [])).toEqual([]);
  });

  it("toCounters makes lvsfleet.v1.ServiceCounters of them", () => {
    const [pb] = toCounters(countersFromSnapshot(desired(), snapshot));
    expect(pb!.$typeName).toBe("lvsfleet.v1.ServiceCounters");
    expect(pb!.ipvsService).toBe("tcp 192.0.2.10:80");
    expect(pb!.totals?.$typeName).toBe("lvsfleet.v1.IpvsCounters");
    expect(pb!.destinations[0]!.counters?.inBytes).toBe(10000n);
  });
});

describe("LinuxBackend.counters()", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("reads one snapshot with stats and maps it; no Director role → no IPVS read", async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsfleet-counters-"));
    const ipvs = new FakeIpvs();
    const fk = createFakeKernel();
    const b = new LinuxBackend({ site: "s1", host: "d1", stateDir: dir, openIpvs: async () => ipvs, ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls });
    try {
      expect(await b.counters()).toEqual([]);
      expect((await b.apply(desired())).errors).toEqual([]);
      for (const e of ipvs.table.values()) {
        e.service.stats64 = stats(42);
        for (const d of e.dests.values()) Object.assign(d, { stats64: stats(21), activeConns: 6, inactiveConns: 7 });
      }
      const before = ipvs.requests;
      const out = await b.counters();
      expect(ipvs.requests - before).toBe(1 + 2); // one service dump + one destination dump per service
      expect(out.map((s) => s.virtualService)).toEqual(["sites/s1/virtualServices/web", "sites/s1/virtualServices/https"]);
      expect(out[0]!.totals?.connections).toBe(42n);
      expect(out[0]!.destinations!.find((d) => d.address === "198.51.100.2")).toMatchObject({
        realServer: "sites/s1/virtualServices/web/realServers/b",
        activeConnections: 6,
        inactiveConnections: 7,
        counters: { connections: 21n, outBytes: 42000n },
      });
    } finally {
      await b.close();
    }
  });
});

describe("FakeBackend.counters()", () => {
  it("is deterministic: connections 100·(service+1)+destination+1, totals are the sums", async () => {
    const f = new FakeBackend();
    expect(await f.counters()).toEqual([]);
    await f.apply(desired());
    const out = await f.counters();
    expect(out.map((s) => [s.ipvsService, s.totals?.connections, s.destinations!.map((d) => [d.counters?.connections, d.activeConnections, d.inactiveConnections])])).toEqual([
      ["tcp 192.0.2.10:80", 203n, [[101n, 1, 0], [102n, 2, 1]]],
      ["fwmark ipv4 7", 201n, [[201n, 1, 0]]],
    ]);
    expect(await f.counters()).toEqual(out);
    expect(f.countersReads).toBe(3);
  });
});
