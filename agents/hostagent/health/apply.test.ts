// applyHealth: the pure effect of health on the desired state (quiesce, remove, sorry server, recovery).
import { clone, equals } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState, type IpvsService } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { FailureAction } from "../../../gen/lvsfleet/v1/types_pb.js";
import { applyHealth, type CheckHealth } from "./apply.js";
import { dest, host, service, tcpCheck } from "./fixtures.js";
import { effectiveCheck } from "./spec.js";

/** Health where the listed "address:port" real servers of `svc` are down and every other check is up. */
function health(ds: HostDesiredState, downs: string[]): Map<string, CheckHealth> {
  const m = new Map<string, CheckHealth>();
  for (const svc of ds.director!.services)
    for (const d of svc.destinations) {
      const c = effectiveCheck(svc, d);
      if (c) m.set(c.key, { up: !downs.includes(`${d.address}:${d.port}`) });
    }
  return m;
}

const weights = (s: IpvsService) => s.destinations.map((d) => `${d.address}:${d.port}=${d.weight}`);

const a = "198.51.100.11";
const b = "198.51.100.12";
const sorryDest = () => dest("203.0.113.99", 8080, 0, "");

describe("applyHealth", () => {
  const cases: Array<{
    name: string;
    action?: FailureAction;
    sorry?: boolean;
    down: string[];
    want: string[];
    noCheck?: boolean;
  }> = [
    { name: "all up: configured weights", down: [], want: [`${a}:80=5`, `${b}:80=3`] },
    { name: "quiesce (default): weight 0, kept", down: [`${a}:80`], want: [`${a}:80=0`, `${b}:80=3`] },
    { name: "quiesce (explicit)", action: FailureAction.QUIESCE, down: [`${b}:80`], want: [`${a}:80=5`, `${b}:80=0`] },
    { name: "remove: left out", action: FailureAction.REMOVE, down: [`${a}:80`], want: [`${b}:80=3`] },
    { name: "all down, quiesce, no sorry server: all weight 0", down: [`${a}:80`, `${b}:80`], want: [`${a}:80=0`, `${b}:80=0`] },
    { name: "all down, quiesce, sorry server added (weight 0 → 1)", sorry: true, down: [`${a}:80`, `${b}:80`], want: [`${a}:80=0`, `${b}:80=0`, "203.0.113.99:8080=1"] },
    { name: "all down, remove, sorry server alone", action: FailureAction.REMOVE, sorry: true, down: [`${a}:80`, `${b}:80`], want: ["203.0.113.99:8080=1"] },
    { name: "one up: no sorry server", sorry: true, down: [`${a}:80`], want: [`${a}:80=0`, `${b}:80=3`] },
    { name: "recovery: configured weight again, sorry server gone", sorry: true, down: [], want: [`${a}:80=5`, `${b}:80=3`] },
    { name: "no health check: untouched", noCheck: true, down: [`${a}:80`], want: [`${a}:80=5`, `${b}:80=3`] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const check = c.noCheck ? undefined : tcpCheck();
      const ds = host([service("web", 80, [dest(a, 80, 5), dest(b, 80, 3)], { check, action: c.action, sorry: c.sorry ? sorryDest() : undefined })]);
      const before = clone(HostDesiredStateSchema, ds);
      // Without a check there are no keys: mark everything down by key anyway to show it is ignored.
      const h = c.noCheck ? new Map([[JSON.stringify(["198.51.100.11", 80]), { up: false }]]) : health(ds, c.down);
      const out = applyHealth(ds, h);
      expect(weights(out.director!.services[0]!)).toEqual(c.want);
      expect(equals(HostDesiredStateSchema, ds, before)).toBe(true); // pure: the input is not touched
      const adjusted = c.want.join() !== `${a}:80=5,${b}:80=3`;
      expect(out.hash === ds.hash).toBe(!adjusted); // an adjusted state never claims the configured hash
    });
  }

  it("is per service: one real server quiesced in one service and removed from another", () => {
    const ds = host([
      service("web", 80, [dest(a, 80), dest(b, 80)], { check: tcpCheck() }),
      service("api", 81, [dest(a, 80), dest(b, 80)], { check: tcpCheck(), action: FailureAction.REMOVE }),
    ]);
    const out = applyHealth(ds, health(ds, [`${a}:80`]));
    expect(weights(out.director!.services[0]!)).toEqual([`${a}:80=0`, `${b}:80=1`]);
    expect(weights(out.director!.services[1]!)).toEqual([`${b}:80=1`]);
  });

  it("a service without any real server uses its sorry server; others are shared unchanged", () => {
    const web = service("web", 80, [dest(a, 80)], { check: tcpCheck() });
    const empty = service("empty", 81, [], { sorry: sorryDest() });
    const ds = host([web, empty]);
    const out = applyHealth(ds, health(ds, []));
    expect(weights(out.director!.services[1]!)).toEqual(["203.0.113.99:8080=1"]);
    expect(out.director!.services[0]).toBe(ds.director!.services[0]); // unchanged: the same object
    expect(ds.director!.services[1]!.destinations).toEqual([]);
  });

  it("a check port overrides the real server's port in the key", () => {
    const ds = host([service("web", 80, [dest(a, 80), dest(b, 80)], { check: tcpCheck({ port: 9000 }) })]);
    const key = effectiveCheck(ds.director!.services[0]!, ds.director!.services[0]!.destinations[0]!)!;
    expect(key.target).toEqual({ address: a, port: 9000 });
    const out = applyHealth(ds, new Map([[key.key, { up: false }]]));
    expect(weights(out.director!.services[0]!)).toEqual([`${a}:80=0`, `${b}:80=1`]);
  });

  it("the same hash for the same health (deterministic), another for another", () => {
    const ds = host([service("web", 80, [dest(a, 80), dest(b, 80)], { check: tcpCheck() })]);
    const one = applyHealth(ds, health(ds, [`${a}:80`])).hash;
    expect(applyHealth(ds, health(ds, [`${a}:80`])).hash).toBe(one);
    expect(applyHealth(ds, health(ds, [`${b}:80`])).hash).not.toBe(one);
  });
});

describe("check keys (one check per real server address:port and spec)", () => {
  it("equal for equal specs across services, different when the spec or port differs", () => {
    const s1 = service("web", 80, [dest(a, 80)], { check: tcpCheck({ intervalMs: 1000 }) });
    const s2 = service("api", 443, [dest(a, 80)], { check: tcpCheck({ intervalMs: 1000 }) });
    const s3 = service("other", 80, [dest(a, 80)], { check: tcpCheck({ intervalMs: 2000 }) });
    const s4 = service("v6", 80, [dest("2001:DB8::1", 80)], { check: tcpCheck() });
    const k = (s: IpvsService) => effectiveCheck(s, s.destinations[0]!)!.key;
    expect(k(s1)).toBe(k(s2));
    expect(k(s1)).not.toBe(k(s3));
    expect(k(s1)).not.toBe(effectiveCheck(s1, dest(a, 81))!.key);
    expect(effectiveCheck(s4, s4.destinations[0]!)!.target.address).toBe("2001:db8::1");
  });

  it("defaults: interval 5s, timeout 3s (clamped to the interval), rise 2, fall 3", () => {
    const s = service("web", 80, [dest(a, 80)], { check: tcpCheck() });
    expect(effectiveCheck(s, s.destinations[0]!)).toMatchObject({ intervalMs: 5000, timeoutMs: 3000, rise: 2, fall: 3 });
    const t = service("web", 80, [dest(a, 80)], { check: tcpCheck({ intervalMs: 100, timeoutMs: 500, rise: 1, fall: 1 }) });
    expect(effectiveCheck(t, t.destinations[0]!)).toMatchObject({ intervalMs: 100, timeoutMs: 100, rise: 1, fall: 1 });
  });

  it("a port-0 real server has nothing to probe for tcp: no check", () => {
    const s = service("fw", 0, [dest(a, 0)], { check: tcpCheck() });
    expect(effectiveCheck(s, s.destinations[0]!)).toBeUndefined();
  });
});
