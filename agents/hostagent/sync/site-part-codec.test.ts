import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SiteDesiredStateSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { decodeSitePartFor } from "./site-part-codec.js";

const idArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);
const partArb = fc.record({
  site: idArb,
  revision: fc.bigInt({ min: 0n, max: (1n << 62n) }),
  hash: fc.stringMatching(/^[0-9a-f]{0,64}$/),
  timeouts: fc.option(fc.record({ tcpSeconds: fc.nat(86400), tcpFinSeconds: fc.nat(86400), udpSeconds: fc.nat(86400) }), { nil: undefined }),
  hostRevisions: fc.dictionary(idArb, fc.bigInt({ min: 0n, max: (1n << 62n) }), { maxKeys: 30 }),
});

describe("decodeSitePartFor", () => {
  it("equals fromBinary with host_revisions cut to the one host, for random parts and hosts (in the map or not)", () => {
    fc.assert(
      fc.property(partArb, idArb, fc.boolean(), (init, other, pickInMap) => {
        const part = create(SiteDesiredStateSchema, init);
        const keys = Object.keys(part.hostRevisions);
        const host = pickInMap && keys.length > 0 ? keys[0]! : other;
        const got = decodeSitePartFor(toBinary(SiteDesiredStateSchema, part), host);
        const want = fromBinary(SiteDesiredStateSchema, toBinary(SiteDesiredStateSchema, part));
        want.hostRevisions = host in want.hostRevisions ? { [host]: want.hostRevisions[host]! } : {};
        expect(equals(SiteDesiredStateSchema, got, want)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("the same bytes again (many agents in one process), interleaved with other parts: each answer stays exact", () => {
    fc.assert(
      fc.property(fc.array(partArb, { minLength: 1, maxLength: 3 }), fc.array(idArb, { maxLength: 4 }), (inits, others) => {
        const parts = inits.map((i) => toBinary(SiteDesiredStateSchema, create(SiteDesiredStateSchema, i)));
        for (let round = 0; round < 3; round++) {
          for (const bytes of parts) {
            const whole = fromBinary(SiteDesiredStateSchema, bytes);
            for (const host of [...Object.keys(whole.hostRevisions), ...others]) {
              // A copy per call, as every agent's message is bytes of its own.
              const got = decodeSitePartFor(bytes.slice(), host);
              const want = fromBinary(SiteDesiredStateSchema, bytes);
              want.hostRevisions = host in want.hostRevisions ? { [host]: want.hostRevisions[host]! } : {};
              expect(equals(SiteDesiredStateSchema, got, want)).toBe(true);
            }
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it("a buffer reused for other bytes is decoded anew", () => {
    const one = toBinary(SiteDesiredStateSchema, create(SiteDesiredStateSchema, { site: "s", revision: 5n, hostRevisions: { d1: 3n } }));
    const two = toBinary(SiteDesiredStateSchema, create(SiteDesiredStateSchema, { site: "s", revision: 6n, hostRevisions: { d1: 4n } }));
    expect(two.length).toBe(one.length);
    const buf = one.slice();
    expect(decodeSitePartFor(buf, "d1")).toMatchObject({ revision: 5n, hostRevisions: { d1: 3n } });
    expect(decodeSitePartFor(buf, "d1")).toMatchObject({ revision: 5n, hostRevisions: { d1: 3n } });
    buf.set(two);
    expect(decodeSitePartFor(buf, "d1")).toMatchObject({ revision: 6n, hostRevisions: { d1: 4n } });
    expect(decodeSitePartFor(buf, "d1")).toMatchObject({ revision: 6n, hostRevisions: { d1: 4n } });
  });

  it("a host id that is a prefix of another does not match it", () => {
    const part = create(SiteDesiredStateSchema, { site: "s", revision: 9n, hostRevisions: { d10: 7n, d1x: 5n } });
    expect(decodeSitePartFor(toBinary(SiteDesiredStateSchema, part), "d1").hostRevisions).toEqual({});
    expect(decodeSitePartFor(toBinary(SiteDesiredStateSchema, part), "d10").hostRevisions).toEqual({ d10: 7n });
  });
});
