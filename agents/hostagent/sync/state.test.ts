import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jitteredBackoff } from "./backoff.js";
import { StateStore } from "./state.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-state-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("StateStore", () => {
  it("round-trips the applied revision (beyond 2^53) and leaves no temp file", async () => {
    const s = new StateStore(join(dir, "a"), "fra1", "lb1");
    expect(await s.load()).toEqual({ revision: 0n, hash: "" });
    s.save({ revision: 9007199254740993n, hash: "abc" });
    expect(await new StateStore(join(dir, "a"), "fra1", "lb1").load()).toEqual({ revision: 9007199254740993n, hash: "abc" });
    expect(await readdir(join(dir, "a"))).toEqual(["agent-fra1.lb1.json"]);
  });

  it("the file names the new revision as soon as save returns (persisted before reported)", async () => {
    const s = new StateStore(join(dir, "b"), "fra1", "lb1");
    s.save({ revision: 4n, hash: "h4" });
    s.save({ revision: 5n, hash: "h5" });
    // No await in between: the agent reports right after save() returns.
    expect(JSON.parse(readFileSync(s.path, "utf8"))).toEqual({ site: "fra1", host: "lb1", appliedRevision: "5", appliedHash: "h5" });
    expect(await readdir(join(dir, "b"))).toEqual(["agent-fra1.lb1.json"]);
  });

  it("makes the state directory again when it was removed behind the agent's back", async () => {
    const s = new StateStore(join(dir, "c", "deep"), "fra1", "lb1");
    s.save({ revision: 1n, hash: "h1" });
    await rm(join(dir, "c"), { recursive: true });
    s.save({ revision: 2n, hash: "h2" });
    expect(await new StateStore(join(dir, "c", "deep"), "fra1", "lb1").load()).toEqual({ revision: 2n, hash: "h2" });
  });

  it("a failed write throws and leaves the previous file whole", async () => {
    const s = new StateStore(join(dir, "d"), "fra1", "lb1");
    s.save({ revision: 7n, hash: "h7" });
    // The temp file's name taken by a directory: writing it fails (EISDIR) before any rename.
    await mkdir(`${s.path}.${process.pid}.tmp`);
    expect(() => s.save({ revision: 8n, hash: "h8" })).toThrow(/EISDIR/);
    expect(await s.load()).toEqual({ revision: 7n, hash: "h7" });
  });

  it("ignores a state file written for another host", async () => {
    const s = new StateStore(dir, "fra1", "lb2");
    await writeFile(s.path, JSON.stringify({ site: "fra1", host: "lb9", appliedRevision: "50", appliedHash: "x" }));
    expect(await s.load()).toEqual({ revision: 0n, hash: "" });
  });
});

describe("jitteredBackoff", () => {
  it("stays within (0, min(max, base·2^attempt)] and spreads", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const cap = Math.min(10_000, 250 * 2 ** attempt);
      expect(jitteredBackoff(attempt, 250, 10_000, () => 0)).toBe(1);
      expect(jitteredBackoff(attempt, 250, 10_000, () => 0.999999)).toBe(cap);
    }
    const waits = new Set(Array.from({ length: 50 }, () => jitteredBackoff(5, 250, 10_000)));
    expect(waits.size).toBeGreaterThan(10);
  });
});
