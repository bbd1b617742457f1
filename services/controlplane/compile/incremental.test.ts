import { clone, equals } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { compileHosts, compileSite, type SiteTopology } from "./compile.js";
import { affectedByChange, hostsReading, MutableTopology, resourceKind, type ResourceKind, type ResourceRef } from "./incremental.js";
import { build, topoSpecArb } from "./testing.js";
import { host, rs, site, topology, vs } from "./testing.js";

const RUNS = { numRuns: 200 };

function unstamped(s: HostDesiredState): HostDesiredState {
  const c = clone(HostDesiredStateSchema, s);
  c.revision = 0n;
  c.hash = "";
  return c;
}

function resources(t: SiteTopology): Map<string, { kind: ResourceKind; value: unknown }> {
  const m = new Map<string, { kind: ResourceKind; value: unknown }>();
  m.set(t.site.name, { kind: "site", value: t.site });
  for (const h of t.hosts) m.set(h.name, { kind: "host", value: h });
  for (const v of t.virtualServices) m.set(v.name, { kind: "virtualService", value: v });
  for (const r of t.realServers) m.set(r.name, { kind: "realServer", value: r });
  for (const f of t.firewallMarks) m.set(f.name, { kind: "firewallMark", value: f });
  return m;
}

/**
 * `before` with the resources named in `pick` replaced by their version in `other` (created when
 * `before` has none, deleted when `other` has none) — any multi-resource change, including ones that
 * leave dangling references (the compiler copes, and so must the dependency analysis).
 */
function change(before: SiteTopology, other: SiteTopology, pick: (name: string) => boolean): { after: SiteTopology; refs: ResourceRef[] } {
  const a = resources(before);
  const b = resources(other);
  const m = MutableTopology.from(structuredClone(before));
  const refs: ResourceRef[] = [];
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    if (!pick(name)) continue;
    const kind = (a.get(name) ?? b.get(name))!.kind;
    expect(resourceKind(name)).toBe(kind);
    const v = b.get(name)?.value;
    if (kind === "site") m.set("site", name, structuredClone(v) as SiteTopology["site"]);
    else m.set(kind, name, v === undefined ? undefined : (structuredClone(v) as never));
    refs.push({ kind, name });
  }
  return { after: m.topology(), refs };
}

describe("incremental compile", () => {
  it("compileHosts gives exactly compileSite's states for any subset of hosts", () => {
    fc.assert(
      fc.property(topoSpecArb, fc.array(fc.nat(9)), (spec, picks) => {
        const t = build(spec);
        const full = compileSite(t, 7n);
        const want = [...new Set(picks.map((p) => `h${p}`))];
        const part = compileHosts(t, want, 7n);
        expect([...part.keys()]).toEqual([...full.keys()].filter((id) => want.includes(id)));
        for (const [id, s] of part) expect(equals(HostDesiredStateSchema, s, full.get(id)!)).toBe(true);
      }),
      RUNS,
    );
  });

  it("a random multi-resource change: every host whose state differs is affected, and recompiling the affected hosts equals the full compile", () => {
    fc.assert(
      fc.property(topoSpecArb, topoSpecArb, fc.integer(), fc.integer({ min: 1, max: 6 }), (specA, specB, seed, every) => {
        const before = build(specA);
        const other = build(specB);
        let n = seed >>> 0;
        // A deterministic pseudo-random subset: about 1 in `every` resources changes.
        const { after, refs } = change(before, other, () => {
          n = (Math.imul(n, 1103515245) + 12345) >>> 0;
          return (n >>> 16) % every === 0;
        });
        const a = compileSite(before, 1n);
        const b = compileSite(after, 2n);
        const affected = new Set(affectedByChange(before, after, refs));
        for (const id of new Set([...a.keys(), ...b.keys()])) {
          const x = a.get(id);
          const y = b.get(id);
          const differs = !x || !y || !equals(HostDesiredStateSchema, unstamped(x), unstamped(y));
          if (differs) expect(affected, `host ${id} changed but is not affected by ${JSON.stringify(refs)}`).toContain(id);
        }
        const inc = compileHosts(after, affected, 2n);
        for (const [id, s] of b) {
          if (affected.has(id)) expect(equals(HostDesiredStateSchema, inc.get(id)!, s)).toBe(true);
          else expect(s.hash).toBe(a.get(id)!.hash);
        }
        for (const id of inc.keys()) expect(b.has(id)).toBe(true);
      }),
      RUNS,
    );
  });

  it("the relay's way: one MutableTopology changed in place, step after step, keeps its indexes — affected hosts and compileHosts over it equal a full compile of the new topology", () => {
    fc.assert(
      fc.property(topoSpecArb, fc.array(topoSpecArb, { minLength: 1, maxLength: 4 }), fc.integer(), fc.integer({ min: 1, max: 6 }), (specA, steps, seed, every) => {
        const m = MutableTopology.from(structuredClone(build(specA)));
        let n = seed >>> 0;
        for (const spec of steps) {
          const before = structuredClone(m.topology());
          const a = compileSite(before, 1n);
          const cur = resources(before);
          const next = resources(build(spec));
          const refs: ResourceRef[] = [];
          for (const name of [...new Set([...cur.keys(), ...next.keys()])].sort()) {
            n = (Math.imul(n, 1103515245) + 12345) >>> 0;
            if ((n >>> 16) % every !== 0) continue;
            refs.push({ kind: (cur.get(name) ?? next.get(name))!.kind, name });
          }
          const affected = new Set(m.hostsReading(refs));
          for (const r of refs) {
            const v = next.get(r.name)?.value;
            if (r.kind === "site") m.set("site", r.name, structuredClone(v) as SiteTopology["site"]);
            else m.set(r.kind, r.name, v === undefined ? undefined : (structuredClone(v) as never));
          }
          for (const h of m.hostsReading(refs)) affected.add(h);
          const after = m.topology();
          // The kept indexes answer as freshly built ones do.
          expect([...affected].sort()).toEqual(affectedByChange(before, after, refs));
          const b = compileSite(after, 2n);
          const inc = compileHosts(m, affected, 2n);
          for (const [id, s] of b) {
            if (affected.has(id)) expect(equals(HostDesiredStateSchema, inc.get(id)!, s), `host ${id}`).toBe(true);
            else expect(s.hash).toBe(a.get(id)!.hash);
          }
          for (const id of inc.keys()) expect(b.has(id)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it("a real server weight reaches only the Directors of its service and the real server's own host", () => {
    const t = topology({
      site: site(),
      hosts: [host("d1"), host("d2"), host("d3"), host("r1")],
      virtualServices: [vs("web", { address: "192.0.2.10", port: 80, directors: ["d1", "d2"] }), vs("db", { address: "192.0.2.11", port: 5432, directors: ["d3"] })],
      realServers: [rs("web", "a", { address: "198.51.100.1", host: "r1" }), rs("db", "b", { address: "198.51.100.2" })],
    });
    expect(hostsReading(t, [{ kind: "realServer", name: t.realServers[0]!.name }])).toEqual(["d1", "d2", "r1"]);
    expect(hostsReading(t, [{ kind: "realServer", name: t.realServers[1]!.name }])).toEqual(["d3"]);
    expect(hostsReading(t, [{ kind: "site", name: t.site.name }])).toEqual(["d1", "d2", "d3", "r1"]);
    expect(hostsReading(t, [{ kind: "host", name: t.hosts[0]!.name }])).toEqual(["d1", "r1"]);
    expect(resourceKind("sites/a/virtualServices/v/realServers")).toBeUndefined();
  });
});
