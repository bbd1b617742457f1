// `lvsfleet stats`: the ipvsadm -Ln --stats --exact layout, and the runner's argument handling.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DirectorStatsSchema, type DirectorStats } from "../gen/lvsfleet/v1/fleet_service_pb.js";
import { formatDirectorStats, formatStats, ipvsadmService, runStats, type StatsClient } from "./stats.js";

const d1: DirectorStats = create(DirectorStatsSchema, {
  site: "s1",
  host: "lb1",
  time: { seconds: 1_800_000_000n, nanos: 0 },
  services: [
    {
      virtualService: "sites/s1/virtualServices/dns",
      ipvsService: "udp [2001:db8::53]:53",
      totals: { connections: 12345678901n, inPackets: 5n, outPackets: 4n, inBytes: 300n, outBytes: 200n },
      destinations: [{ address: "2001:db8::1", port: 53, counters: { connections: 3n, inPackets: 1n, outPackets: 1n, inBytes: 60n, outBytes: 40n } }],
    },
    { virtualService: "sites/s1/virtualServices/https", ipvsService: "fwmark ipv4 7", destinations: [{ address: "198.51.100.1", port: 0 }] },
  ],
});

describe("stats format", () => {
  it("service keys as ipvsadm prints them", () => {
    expect(ipvsadmService("tcp 192.0.2.1:80", "x")).toBe("TCP  192.0.2.1:80");
    expect(ipvsadmService("sctp 192.0.2.1:9", "x")).toBe("SCTP  192.0.2.1:9");
    expect(ipvsadmService("fwmark ipv6 12", "x")).toBe("FWM  12");
    expect(ipvsadmService("", "sites/s1/virtualServices/web")).toBe("?    sites/s1/virtualServices/web");
  });

  it("one block per Director: header, services, `  -> ` destinations, exact numbers right-aligned", () => {
    expect(formatDirectorStats(d1)).toBe(
      [
        "Director lb1 (counters read 2027-01-15T08:00:00.000Z)",
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
        "  -> RemoteAddress:Port",
        "UDP  [2001:db8::53]:53            12345678901        5        4      300      200",
        "  -> [2001:db8::1]:53                    3        1        1       60       40",
        "FWM  7                                   0        0        0        0        0",
        "  -> 198.51.100.1:0                      0        0        0        0        0",
        "",
      ].join("\n"),
    );
    expect(formatStats("s1", [d1, { ...d1, host: "lb2" }]).split("\n\n").map((b) => b.split("\n")[0])).toEqual([
      "Director lb1 (counters read 2027-01-15T08:00:00.000Z)",
      "Director lb2 (counters read 2027-01-15T08:00:00.000Z)",
    ]);
    expect(formatStats("s1", [])).toMatch(/no counters reported for site s1 yet/);
  });
});

describe("runStats", () => {
  function io() {
    const o = { out: "", err: "" };
    return { o, io: { stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) } };
  }

  it("leaves other commands alone; usage errors exit 2; calls GetStats with site and --vs", async () => {
    const { io: x } = io();
    expect(await runStats(["hosts"], {}, x)).toBeUndefined();
    expect(await runStats(["--addr", "stats", "list", "s1"], {}, x)).toBeUndefined();
    const e = io();
    expect(await runStats(["stats", "a", "b"], {}, e.io)).toBe(2);
    expect(e.o.err).toContain('unexpected argument "b"');
    expect(await runStats(["stats", "s1", "--bogus"], {}, e.io)).toBe(2);

    const calls: unknown[] = [];
    let closed = 0;
    const client = {
      getStats: async (req: unknown) => (calls.push(req), { directors: [d1] }),
      close: () => void closed++,
    } as unknown as StatsClient;
    const ok = io();
    expect(await runStats(["stats", "sites/s1", "--vs", "dns"], {}, ok.io, () => client)).toBe(0);
    expect(calls).toEqual([{ site: "s1", virtualService: "dns" }]);
    expect(ok.o.out).toBe(formatStats("s1", [d1]));
    expect(closed).toBe(1);
  });
});
