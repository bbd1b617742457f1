import { describe, expect, it } from "vitest";
import { GroupQueue, type Outcome } from "./group-commit.js";

/** A run function that records its groups and finishes each only when told to. */
function recorder() {
  const groups: number[][] = [];
  const finish: Array<() => void> = [];
  const run = (items: readonly number[]): Promise<Outcome<string>[]> => {
    groups.push([...items]);
    return new Promise((resolve) => finish.push(() => resolve(items.map((i) => (i < 0 ? { err: new Error(`bad ${i}`) } : { ok: `w${i}` })))));
  };
  return { groups, finish, run };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("GroupQueue", () => {
  it("sends the first write alone, gathers what arrives meanwhile into the next group, outcomes in order", async () => {
    const r = recorder();
    const q = new GroupQueue(r.run, { max: 64 });
    const first = q.submit("s", 1);
    await tick();
    expect(r.groups).toEqual([[1]]);
    const rest = [2, -3, 4, 5].map((i) => q.submit("s", i).then((v) => v, (e: Error) => e.message));
    await tick();
    expect(r.groups).toHaveLength(1); // the lane's slot is taken: they wait
    r.finish[0]!();
    expect(await first).toBe("w1");
    await tick();
    expect(r.groups).toEqual([[1], [2, -3, 4, 5]]);
    r.finish[1]!();
    expect(await Promise.all(rest)).toEqual(["w2", "bad -3", "w4", "w5"]);
    expect(q.stats).toEqual({ groups: 2, writes: 5, largest: 4 });
  });

  it("caps a group at max; the rest go in the next", async () => {
    const r = recorder();
    const q = new GroupQueue(r.run, { max: 3 });
    const all = [1, 2, 3, 4, 5].map((i) => q.submit("s", i));
    await tick();
    expect(r.groups).toEqual([[1, 2, 3]]);
    r.finish[0]!();
    await tick();
    await tick();
    expect(r.groups).toEqual([[1, 2, 3], [4, 5]]);
    r.finish[1]!();
    expect(await Promise.all(all)).toEqual(["w1", "w2", "w3", "w4", "w5"]);
  });

  it("keeps sites apart: a site whose group hangs does not hold up another", async () => {
    const r = recorder();
    const q = new GroupQueue(r.run, { max: 64 });
    void q.submit("a", 1);
    const b = q.submit("b", 2);
    await tick();
    expect(r.groups).toEqual([[1], [2]]);
    r.finish[1]!(); // b's group finishes while a's still hangs
    expect(await b).toBe("w2");
  });

  it("a run that throws fails every write of its group, and the lane goes on", async () => {
    let n = 0;
    const q = new GroupQueue<number, string>(async (items) => {
      if (n++ === 0) throw new Error("postgres went away");
      return items.map((i) => ({ ok: `w${i}` }));
    }, { max: 64 });
    const failed = await Promise.allSettled([q.submit("s", 1), q.submit("s", 2)]);
    expect(failed.map((f) => (f.status === "rejected" ? (f.reason as Error).message : f.value))).toEqual(["postgres went away", "postgres went away"]);
    expect(await q.submit("s", 3)).toBe("w3");
  });
});
