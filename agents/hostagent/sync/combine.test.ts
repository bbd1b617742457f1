import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema, SiteDesiredStateSchema, type HostDesiredState, type SiteDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { DesiredStateJoin, joinDesiredState, joinedHash } from "./combine.js";

const hostPart = (revision: bigint, siteRevision: bigint, weight: number): HostDesiredState =>
  create(HostDesiredStateSchema, {
    site: "s",
    host: "d1",
    revision,
    siteRevision,
    hash: `h${weight}`,
    director: { services: [{ virtualService: "sites/s/virtualServices/web", scheduler: "wlc", destinations: [{ address: "192.0.2.1", port: 80, weight }] }] },
  });
const sitePart = (revision: bigint, hostRevision: bigint | undefined, tcp: number): SiteDesiredState =>
  create(SiteDesiredStateSchema, {
    site: "s",
    revision,
    hash: `s${tcp}`,
    timeouts: { tcpSeconds: tcp },
    hostRevisions: hostRevision === undefined ? {} : { d1: hostRevision },
  });

describe("joinDesiredState", () => {
  it("joins: the site's timeouts on the Director, revision = max, hash of both hashes", () => {
    const j = joinDesiredState(hostPart(5n, 4n, 7), sitePart(6n, 5n, 900))!;
    expect(j.revision).toBe(6n);
    expect(j.director?.timeouts?.tcpSeconds).toBe(900);
    expect(j.director?.services[0]?.destinations[0]?.weight).toBe(7);
    expect(j.hash).toBe(joinedHash("h7", "s900"));
    expect(j.siteRevision).toBe(0n);
  });

  it.each([
    ["site part older than the host part was published with", hostPart(5n, 4n, 7), sitePart(3n, 2n, 900)],
    ["host part older than the site part was published with", hostPart(5n, 4n, 7), sitePart(9n, 8n, 900)],
    ["no site part yet", hostPart(5n, 4n, 7), undefined],
  ])("waits: %s", (_, h, s) => {
    expect(joinDesiredState(h, s)).toBeUndefined();
  });

  it("a host part with site_revision 0 is a whole state on its own", () => {
    const h = hostPart(5n, 0n, 7);
    expect(joinDesiredState(h, undefined)).toBe(h);
  });
});

// A model of the relay: compile transactions T1, T2, … each change the host part, the site part or
// both; each part is published with the other's current revision, as relay.ts does. The agent sees
// each key's values in order but may miss some (a watch restarted from the last value), and the two
// keys interleave arbitrarily. Every state the join emits must be exactly the truth of the
// transaction its revision names, revisions emitted must rise, and the last one must be the end state.
describe("DesiredStateJoin against a model relay", () => {
  const txArb = fc.array(fc.constantFrom("host", "site", "both"), { minLength: 1, maxLength: 30 });
  it("emits only exact states, in rising revisions, ending at the last one", () => {
    fc.assert(
      fc.property(txArb, fc.infiniteStream(fc.boolean()), fc.infiniteStream(fc.boolean()), (txs, order, keep) => {
        let weight = 1;
        let tcp = 100;
        let hostRev = 1n;
        let siteRev = 1n;
        const truth = new Map<bigint, { weight: number; tcp: number }>([[1n, { weight, tcp }]]);
        const hostStream = [hostPart(1n, 1n, weight)];
        const siteStream = [sitePart(1n, 1n, tcp)];
        let rev = 1n;
        for (const tx of txs) {
          rev += 1n;
          if (tx !== "site") {
            weight++;
            hostRev = rev;
          }
          if (tx !== "host") {
            tcp++;
            siteRev = rev;
          }
          truth.set(rev, { weight, tcp });
          if (tx !== "site") hostStream.push(hostPart(hostRev, siteRev, weight));
          if (tx !== "host") siteStream.push(sitePart(siteRev, hostRev, tcp));
        }
        // Drop some intermediate values of each stream (never the last).
        const k = keep[Symbol.iterator]();
        const thin = <T>(xs: T[]) => xs.filter((_, i) => i === xs.length - 1 || k.next().value);
        const hs = thin(hostStream);
        const ss = thin(siteStream);
        const join = new DesiredStateJoin();
        const o = order[Symbol.iterator]();
        const emitted: HostDesiredState[] = [];
        let i = 0;
        let j = 0;
        while (i < hs.length || j < ss.length) {
          const takeHost = j >= ss.length || (i < hs.length && o.next().value);
          const out = takeHost ? join.offerHost(hs[i++]!) : join.offerSite(ss[j++]!);
          if (out) emitted.push(out);
        }
        expect(emitted.length).toBeGreaterThan(0);
        for (const e of emitted) {
          const t = truth.get(e.revision)!;
          expect(t, `revision ${e.revision}`).toBeDefined();
          expect(e.director?.services[0]?.destinations[0]?.weight).toBe(t.weight);
          expect(e.director?.timeouts?.tcpSeconds).toBe(t.tcp);
        }
        for (let x = 1; x < emitted.length; x++) expect(emitted[x]!.revision).toBeGreaterThanOrEqual(emitted[x - 1]!.revision);
        expect(emitted.at(-1)!.revision).toBe(rev);
      }),
      { numRuns: 300 },
    );
  });
});
