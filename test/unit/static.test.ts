// Project-wide static checks that CI must fail on: protos lint clean, committed generated code is
// what buf generates now, and the whole tree type-checks.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else out.push(p);
  }
  return out.sort();
}

describe("static checks", () => {
  const tmps: string[] = [];
  afterAll(async () => {
    for (const t of tmps) await rm(t, { recursive: true, force: true });
  });

  it("buf lint is clean", async () => {
    const { stdout } = await run(bin("buf"), ["lint"], { cwd: root });
    expect(stdout.trim()).toBe("");
  });

  it("generated code in gen/ is up to date with proto/", async () => {
    const out = await mkdtemp(join(tmpdir(), "lvsfleet-gen-"));
    tmps.push(out);
    const template = (await readFile(join(root, "buf.gen.yaml"), "utf8")).replace(/out: gen/, `out: ${out}`);
    const tpl = join(out, "..", `${out.split("/").pop()}.buf.gen.yaml`);
    tmps.push(tpl);
    await writeFile(tpl, template);
    await run(bin("buf"), ["generate", "--template", tpl], { cwd: root, env: { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH}` } });
    const fresh = await listFiles(out);
    const committed = await listFiles(join(root, "gen"));
    expect(committed.map((f) => relative(join(root, "gen"), f))).toEqual(fresh.map((f) => relative(out, f)));
    for (const f of fresh) {
      const rel = relative(out, f);
      expect(await readFile(join(root, "gen", rel), "utf8"), `gen/${rel} is stale: run npm run generate`).toBe(await readFile(f, "utf8"));
    }
  });

  it("the whole tree type-checks (tsc --noEmit)", async () => {
    const r = await run(bin("tsc"), ["--noEmit", "-p", root], { cwd: root, maxBuffer: 16 << 20 }).catch((e: { stdout: string }) => ({ stdout: e.stdout, failed: true }));
    expect(r.stdout).toBe("");
  }, 180_000);
});
