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

  it("a host id that is a prefix of another does not match it", () => {
    const part = create(SiteDesiredStateSchema, { site: "s", revision: 9n, hostRevisions: { d10: 7n, d1x: 5n } });
    expect(decodeSitePartFor(toBinary(SiteDesiredStateSchema, part), "d1").hostRevisions).toEqual({});
    expect(decodeSitePartFor(toBinary(SiteDesiredStateSchema, part), "d10").hostRevisions).toEqual({ d10: 7n });
  });
});
