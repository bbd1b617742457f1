import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FailureAction, ForwardMethod, Protocol, TunnelType } from "../../../gen/lvsfleet/v1/types_pb.js";
import { RealServerSchema, type RealServer, type VirtualService } from "../../../gen/lvsfleet/v1/topology_pb.js";
import type { SiteTopology } from "../compile/index.js";
import { director, realServerHost, rs, site, topology, vs } from "../compile/testing.js";
import { diffDesired, planSite, type PlanDiff, type RealServerHealth } from "./index.js";

const DIRECTOR = director("lb1", { eth0: ["192.0.2.10/24"] });
const WEB1 = realServerHost("web1", { eth0: ["192.0.2.21/24"] });
const WEB2 = realServerHost("web2", { eth0: ["192.0.2.22/24"] });
const WEB = vs("web", { address: "192.0.2.100", port: 80, scheduler: "wlc", directors: ["lb1"] });
const RS1 = rs("web", "rs1", { address: "192.0.2.21", forwardMethod: ForwardMethod.DR, weight: 1, host: "web1" });
const RS2 = rs("web", "rs2", { address: "192.0.2.22", forwardMethod: ForwardMethod.DR, weight: 1, host: "web2" });

function base(over: { virtualServices?: VirtualService[]; realServers?: RealServer[] } = {}): SiteTopology {
  return topology({ hosts: [DIRECTOR, WEB1, WEB2], virtualServices: over.virtualServices ?? [WEB], realServers: over.realServers ?? [RS1, RS2] });
}
const withRs = (r: RealServer, init: Partial<RealServer>) => create(RealServerSchema, { ...r, ...init });

type Row = Pick<PlanDiff, "kind" | "action" | "object" | "before" | "after">;
const rows = (items: PlanDiff[] | undefined): Row[] => (items ?? []).map(({ kind, action, object, before, after }) => ({ kind, action, object, before, after }));

describe("planSite", () => {
  const cases: Array<{ name: string; after: SiteTopology; hosts: Record<string, Row[] | "any">; warnings: string[] }> = [
    {
      name: "no change: no items, no warnings",
      after: base(),
      hosts: {},
      warnings: [],
    },
    {
      name: "weight change: one destination CHANGE on the Director",
      after: base({ realServers: [withRs(RS1, { weight: 0 }), RS2] }),
      hosts: { lb1: [{ kind: "ipvs-destination", action: "CHANGE", object: "TCP 192.0.2.100:80 -> 192.0.2.21:80", before: "weight 1", after: "weight 0" }] },
      warnings: [],
    },
    {
      name: "thresholds change",
      after: base({ realServers: [withRs(RS1, { upperThreshold: 100, lowerThreshold: 50 }), RS2] }),
      hosts: { lb1: [{ kind: "ipvs-destination", action: "CHANGE", object: "TCP 192.0.2.100:80 -> 192.0.2.21:80", before: "upper 0, lower 0", after: "upper 100, lower 50" }] },
      warnings: [],
    },
    {
      name: "scheduler change warns about persistence templates",
      after: base({ virtualServices: [vs("web", { address: "192.0.2.100", port: 80, scheduler: "rr", directors: ["lb1"] })] }),
      hosts: { lb1: [{ kind: "ipvs-service", action: "CHANGE", object: "TCP 192.0.2.100:80", before: "scheduler wlc", after: "scheduler rr" }] },
      warnings: ["changes scheduler of sites/fra1/virtualServices/web: existing persistence templates are kept"],
    },
    {
      name: "persistence change",
      after: base({ virtualServices: [vs("web", { address: "192.0.2.100", port: 80, scheduler: "wlc", persistence: { timeoutSeconds: 300 }, directors: ["lb1"] })] }),
      hosts: { lb1: "any" },
      warnings: ["changes persistence of sites/fra1/virtualServices/web: existing connections and templates keep their real server until they expire"],
    },
    {
      name: "weight 0 on the last live real server warns",
      after: base({ realServers: [withRs(RS1, { weight: 0 }), withRs(RS2, { weight: 0 })] }),
      hosts: { lb1: "any" },
      warnings: ["removes the last real server of sites/fra1/virtualServices/web (no real server with weight > 0 left)"],
    },
    {
      name: "deleting the last real servers warns and removes the DR VIP on the real servers",
      after: base({ realServers: [] }),
      hosts: { lb1: "any", web1: "any", web2: "any" },
      warnings: ["removes the last real server of sites/fra1/virtualServices/web (no real server with weight > 0 left)"],
    },
  ];
  it.each(cases)("$name", ({ after, hosts, warnings }) => {
    const p = planSite(base(), after);
    expect([...p.hosts.keys()]).toEqual(Object.keys(hosts).sort());
    for (const [h, want] of Object.entries(hosts)) {
      if (want === "any") expect(p.hosts.get(h)!.length).toBeGreaterThan(0);
      else expect(rows(p.hosts.get(h))).toEqual(want);
    }
    expect(p.warnings).toEqual(warnings);
  });

  it("deleting one real server of two removes one destination and that host's DR VIP", () => {
    const p = planSite(base(), base({ realServers: [RS2] }));
    expect(rows(p.hosts.get("lb1"))).toEqual([
      { kind: "ipvs-destination", action: "REMOVE", object: "TCP 192.0.2.100:80 -> 192.0.2.21:80", before: "forward route, weight 1, upper 0, lower 0, tunnel none", after: "" },
    ]);
    expect(p.hosts.get("web1")!.some((d) => d.kind === "address" && d.action === "REMOVE" && d.object.startsWith("192.0.2.100/32"))).toBe(true);
    expect(p.hosts.has("web2")).toBe(false);
    expect(p.warnings).toEqual([]);
  });

  it("a new service adds the service, its destinations and the VIP on the Director", () => {
    const p = planSite(base({ virtualServices: [], realServers: [] }), base());
    const lb1 = p.hosts.get("lb1")!;
    expect(lb1.filter((d) => d.kind === "ipvs-service").map((d) => [d.action, d.object])).toEqual([["ADD", "TCP 192.0.2.100:80"]]);
    expect(lb1.filter((d) => d.kind === "ipvs-destination").map((d) => d.object)).toEqual([
      "TCP 192.0.2.100:80 -> 192.0.2.21:80",
      "TCP 192.0.2.100:80 -> 192.0.2.22:80",
    ]);
    expect(lb1.some((d) => d.kind === "address" && d.action === "ADD" && d.object === "192.0.2.100/32 dev eth0")).toBe(true);
  });

  it("deleting the service warns", () => {
    const p = planSite(base(), base({ virtualServices: [], realServers: [] }));
    expect(p.warnings).toContain("removes virtual service sites/fra1/virtualServices/web");
    expect(p.hosts.get("lb1")!.filter((d) => d.action === "REMOVE").map((d) => d.kind)).toContain("ipvs-service");
  });

  it("a real server turned TUN/GUE gets its tunnel device and its fou receive port", () => {
    const gue = rs("web", "rs1", { address: "192.0.2.21", forwardMethod: ForwardMethod.TUN, tunnel: { type: TunnelType.GUE, port: 6080 }, weight: 1, host: "web1" });
    const p = planSite(base(), base({ realServers: [gue, RS2] }));
    const web1 = rows(p.hosts.get("web1"));
    expect(web1).toContainEqual({ kind: "fou-port", action: "ADD", object: "ipv4 udp/6080 gue", before: "", after: "" });
    expect(web1.map((r) => r.kind)).toContain("tunnel");
    // And back: the port goes with the last GUE service.
    expect(rows(planSite(base({ realServers: [gue, RS2] }), base()).hosts.get("web1"))).toContainEqual({ kind: "fou-port", action: "REMOVE", object: "ipv4 udp/6080 gue", before: "", after: "" });
  });

  it("forward method change warns", () => {
    const nat = withRs(RS1, { forwardMethod: ForwardMethod.NAT });
    const p = planSite(base(), base({ realServers: [nat, RS2] }));
    expect(rows(p.hosts.get("lb1"))).toContainEqual({ kind: "ipvs-destination", action: "CHANGE", object: "TCP 192.0.2.100:80 -> 192.0.2.21:80", before: "forward route", after: "forward masq" });
    expect(p.warnings).toContain("changes forward method of TCP 192.0.2.100:80 -> 192.0.2.21:80: the destination is re-added, established connections through it may break");
  });
});

describe("diffDesired", () => {
  it("empty to empty is nothing", () => {
    expect(diffDesired(undefined, undefined)).toEqual([]);
  });
  it("keys fwmark services by mark and lists sysctl changes bare", () => {
    const t = topology({ hosts: [DIRECTOR], virtualServices: [vs("fw", { fwmark: 7, protocol: Protocol.UNSPECIFIED, directors: ["lb1"] })] });
    const p = planSite(topology({ hosts: [DIRECTOR] }), t);
    const lb1 = p.hosts.get("lb1")!;
    expect(lb1.find((d) => d.kind === "ipvs-service")!.object).toBe("FWM 7");
    for (const d of lb1.filter((x) => x.kind === "sysctl")) expect(d.after).not.toMatch(/^ /);
  });
});

describe("planSite with reported health", () => {
  const H = (entries: Record<string, Array<[string, RealServerHealth["state"]]>>) =>
    new Map(Object.entries(entries).map(([rsId, list]) => [RS1.name.replace("rs1", rsId), list.map(([director, state]) => ({ director, state }))]));
  const zeroRs1 = base({ realServers: [withRs(RS1, { weight: 0 }), RS2] });
  const cases: Array<{ name: string; health: ReturnType<typeof H>; warnings: string[] }> = [
    { name: "rs2 unhealthy: taking out the healthy rs1 warns", health: H({ rs1: [["lb1", "healthy"]], rs2: [["lb1", "unhealthy"]] }), warnings: ["removes the last healthy real server of sites/fra1/virtualServices/web (left: rs2 unhealthy)"] },
    { name: "rs2 healthy on one Director of two: no warning", health: H({ rs1: [["lb1", "healthy"]], rs2: [["lb1", "unknown"], ["lb2", "healthy"]] }), warnings: [] },
    { name: "rs2 not checked: cannot tell", health: H({ rs1: [["lb1", "healthy"]], rs2: [["lb1", "not_checked"]] }), warnings: ["health of the real servers left in sites/fra1/virtualServices/web is not known (rs2 not checked): this may remove the last healthy one"] },
    { name: "nothing reported: cannot tell", health: H({}), warnings: ["health of the real servers left in sites/fra1/virtualServices/web is not known (rs2 health unknown): this may remove the last healthy one"] },
    { name: "both unhealthy already: taking one out changes nothing health-wise", health: H({ rs1: [["lb1", "unhealthy"]], rs2: [["lb1", "unhealthy"]] }), warnings: [] },
  ];
  it.each(cases)("$name", ({ health, warnings }) => {
    expect(planSite(base(), zeroRs1, { health }).warnings).toEqual(warnings);
  });
  it("without health: only the weight-based warning", () => {
    expect(planSite(base(), zeroRs1).warnings).toEqual([]);
    expect(planSite(base(), base({ realServers: [] }), { health: H({ rs1: [["lb1", "healthy"]] }) }).warnings).toEqual([
      "removes the last real server of sites/fra1/virtualServices/web (no real server with weight > 0 left)",
    ]);
  });
});

describe("planSite: what the Director does besides IPVS services", () => {
  it("a site's IPVS timeouts (ipvsadm --set) change on every Director", () => {
    const t = (tcpSeconds: number) => ({ ...base(), site: site({ ipvsTimeouts: { tcpSeconds, tcpFinSeconds: 120, udpSeconds: 0 } }) });
    expect(rows(planSite(t(900), t(600)).hosts.get("lb1"))).toEqual([{ kind: "ipvs-timeouts", action: "CHANGE", object: "timeouts", before: "tcp 900", after: "tcp 600" }]);
    expect(rows(planSite(base(), t(600)).hosts.get("lb1"))).toEqual([{ kind: "ipvs-timeouts", action: "ADD", object: "timeouts", before: "", after: "tcp 600, tcpfin 120, udp 0" }]);
  });

  it("a health check, failure action or sorry server change is a health-check item of the service (no IPVS change)", () => {
    const checked = (path: string, failureAction = FailureAction.QUIESCE) =>
      base({
        virtualServices: [
          vs("web", {
            address: "192.0.2.100",
            port: 80,
            scheduler: "wlc",
            directors: ["lb1"],
            failureAction,
            healthCheck: { kind: { case: "http", value: { path, expectedStatus: 200 } }, interval: { seconds: 5n }, timeout: { seconds: 2n }, rise: 2, fall: 3 },
          }),
        ],
      });
    expect(rows(planSite(checked("/a"), checked("/b", FailureAction.REMOVE)).hosts.get("lb1"))).toEqual([
      {
        kind: "health-check",
        action: "CHANGE",
        object: "TCP 192.0.2.100:80",
        before: "check http GET /a 200 (port of the real server, every 5s, timeout 2s, rise 2, fall 3), on failure quiesce",
        after: "check http GET /b 200 (port of the real server, every 5s, timeout 2s, rise 2, fall 3), on failure remove",
      },
    ]);
    expect(rows(planSite(base(), checked("/a")).hosts.get("lb1")).map((r) => `${r.action} ${r.kind}`)).toEqual(["ADD health-check"]);
  });
});
