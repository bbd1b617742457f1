import { closeSync, openSync, readFileSync, statSync } from "node:fs";
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
    s.close();
    expect((await readdir(join(dir, "a"))).sort()).toEqual(["agent-fra1.lb1.json", "agent-fra1.lb1.json.slot-a", "agent-fra1.lb1.json.slot-b"]);
  });

  it("the file names the new revision as soon as save returns (persisted before reported)", () => {
    const s = new StateStore(join(dir, "b"), "fra1", "lb1");
    s.save({ revision: 4n, hash: "h4" });
    s.save({ revision: 5n, hash: "h5" });
    // No await in between: the agent reports right after save() returns.
    expect(JSON.parse(readFileSync(s.path, "utf8"))).toEqual({ site: "fra1", host: "lb1", appliedRevision: "5", appliedHash: "h5" });
    s.save({ revision: 6n, hash: "" }); // shorter than before: no stale bytes after it
    expect(readFileSync(s.path, "utf8")).toBe(JSON.stringify({ site: "fra1", host: "lb1", appliedRevision: "6", appliedHash: "" }) + "\n");
    s.close();
  });

  it("never writes into the file the state file is: a reader of the old one sees it whole, also after a restart", () => {
    const d = join(dir, "e");
    let s = new StateStore(d, "fra1", "lb1");
    const seen: string[] = [];
    for (let r = 1; r <= 6; r++) {
      // The inode the state file names before this save must still hold the previous state after it.
      const before = r > 1 ? openSync(s.path, "r") : undefined;
      s.save({ revision: BigInt(r), hash: `h${r}` });
      if (before !== undefined) {
        expect(JSON.parse(readFileSync(before, "utf8")).appliedRevision).toBe(String(r - 1));
        closeSync(before);
      }
      seen.push(String(statSync(s.path).ino));
      if (r === 3) {
        // A restarted agent finds which slot the state file is and writes the other one.
        s.close();
        s = new StateStore(d, "fra1", "lb1");
      }
    }
    s.close();
    // Two inodes, alternating — no new file per save.
    expect(new Set(seen).size).toBe(2);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
  });

  it("takes over a plain state file of an older agent", async () => {
    const s = new StateStore(join(dir, "f"), "fra1", "lb1");
    await mkdir(join(dir, "f"));
    await writeFile(s.path, JSON.stringify({ site: "fra1", host: "lb1", appliedRevision: "3", appliedHash: "h3" }));
    expect(await s.load()).toEqual({ revision: 3n, hash: "h3" });
    // The plain file is neither slot: the first save must not write into it.
    const plain = openSync(s.path, "r");
    s.save({ revision: 4n, hash: "h4" });
    expect(JSON.parse(readFileSync(plain, "utf8")).appliedRevision).toBe("3");
    closeSync(plain);
    s.save({ revision: 5n, hash: "h5" });
    const again = new StateStore(join(dir, "f"), "fra1", "lb1");
    expect(await again.load()).toEqual({ revision: 5n, hash: "h5" });
    again.close();
    s.close();
  });

  it("makes the state directory again when it was removed behind the agent's back", async () => {
    const s = new StateStore(join(dir, "c", "deep"), "fra1", "lb1");
    s.save({ revision: 1n, hash: "h1" });
    await rm(join(dir, "c"), { recursive: true });
    s.save({ revision: 2n, hash: "h2" });
    expect(await new StateStore(join(dir, "c", "deep"), "fra1", "lb1").load()).toEqual({ revision: 2n, hash: "h2" });
    s.save({ revision: 3n, hash: "h3" });
    expect(await new StateStore(join(dir, "c", "deep"), "fra1", "lb1").load()).toEqual({ revision: 3n, hash: "h3" });
    s.close();
  });

  it("a failed write throws and leaves the previous file whole", async () => {
    const s = new StateStore(join(dir, "d"), "fra1", "lb1");
    s.save({ revision: 7n, hash: "h7" });
    s.close();
    // The temp name taken by a directory: neither the link nor a new temp file can be made there.
    await mkdir(`${s.path}.${process.pid}.tmp`);
    expect(() => s.save({ revision: 8n, hash: "h8" })).toThrow(/EISDIR/);
    expect(await s.load()).toEqual({ revision: 7n, hash: "h7" });
  });

  it("ignores a state file written for another host", async () => {
    const s = new StateStore(dir, "fra1", "lb2");
    await writeFile(s.path, JSON.stringify({ site: "fra1", host: "lb9", appliedRevision: "50", appliedHash: "x" }));
    expect(await s.load()).toEqual({ revision: 0n, hash: "" });
    s.close();
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
