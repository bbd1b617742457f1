// The two parts of a host's desired state (site-part.ts) join back into exactly the whole state
// compileSite gives, with the agent's own join (agents/hostagent/sync/combine.ts).
import { clone, equals } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { joinDesiredState, joinedHash } from "../../../agents/hostagent/sync/combine.js";
import { compileSite } from "./compile.js";
import { compileSitePart, hostPart } from "./site-part.js";
import { build, topoSpecArb } from "./testing.js";

const RUNS = { numRuns: 100 };

function bare(s: HostDesiredState): HostDesiredState {
  const c = clone(HostDesiredStateSchema, s);
  c.revision = 0n;
  c.hash = "";
  c.siteRevision = 0n;
  return c;
}

describe("host part + site part", () => {
  it("join(hostPart(x), site part) is x for every host of any topology", () => {
    fc.assert(
      fc.property(topoSpecArb, (spec) => {
        const t = build(spec);
        const site = compileSitePart(t);
        site.revision = 3n;
        for (const [id, whole] of compileSite(t, 3n)) {
          const part = hostPart(whole);
          expect(part.director?.timeouts).toBeUndefined();
          part.revision = 2n;
          part.siteRevision = 3n;
          const joined = joinDesiredState(part, site)!;
          expect(joined, id).toBeDefined();
          expect(equals(HostDesiredStateSchema, bare(joined), bare(whole)), id).toBe(true);
          expect(joined.revision).toBe(3n);
          expect(joined.hash).toBe(joinedHash(part.hash, site.hash));
        }
      }),
      RUNS,
    );
  });

  it("a timeout change changes the site part only; any other topology leaves the site part as it is", () => {
    fc.assert(
      fc.property(topoSpecArb, topoSpecArb, (a, b) => {
        const ta = build(a);
        const tb = build({ ...a, tcpTimeout: a.tcpTimeout === 0 ? 900 : 0 });
        const pa = compileSitePart(ta);
        const pb = compileSitePart(tb);
        expect(pb.hash).not.toBe(pa.hash);
        const sa = compileSite(ta, 1n);
        const sb = compileSite(tb, 1n);
        for (const [id, s] of sa) expect(hostPart(sb.get(id)!).hash, id).toBe(hostPart(s).hash);
        // Another topology with the same timeouts: same site part.
        expect(compileSitePart(build({ ...b, tcpTimeout: a.tcpTimeout })).hash).toBe(pa.hash);
      }),
      { numRuns: 100 },
    );
  });

  it("the host part's hash ignores its stamps (revision, hash, site_revision)", () => {
    const t = build({ hosts: [{ roles: [1], eth1: false, vlan: false, noInterfaces: false }], vss: [], tcpTimeout: 900 } as never);
    const [whole] = compileSite(t, 1n).values();
    const p = hostPart(whole!);
    const q = clone(HostDesiredStateSchema, p);
    q.revision = 99n;
    q.siteRevision = 98n;
    expect(hostPart(q).hash).toBe(p.hash);
  });
});
