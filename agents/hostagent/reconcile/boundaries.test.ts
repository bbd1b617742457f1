import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// reconcile/ is pure (DEVELOPERS.md: "reconcile → netlink or any I/O" must never exist): its sources
// import only each other, the generated messages, and the plain types of kernel/types.ts (type-only).
const here = dirname(fileURLToPath(import.meta.url));
const ALLOWED = [/^\.\/[a-z-]+\.js$/, /^\.\.\/\.\.\/\.\.\/gen\/lvsfleet\/v1\/[a-z_]+_pb\.js$/, /^\.\.\/kernel\/types\.js$/];

describe("reconcile/ import boundary", () => {
  const sources = readdirSync(here).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));

  it("has the production sources we expect", () => {
    expect(sources).toEqual(expect.arrayContaining(["reconcile.ts", "desired.ts", "keys.ts", "owned.ts", "types.ts", "index.ts", "testing.ts"]));
  });

  it.each(sources)("%s imports nothing that does I/O", (file) => {
    const text = readFileSync(join(here, file), "utf8");
    const specifiers = [
      ...[...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']/g)].map((m) => m[1]),
      ...[...text.matchAll(/(?:^|\n)\s*import\s+["']([^"']+)["']/g)].map((m) => m[1]),
    ];
    if (file === "reconcile.ts") expect(specifiers).toEqual(expect.arrayContaining(["./keys.js", "./types.js"]));
    expect([...text.matchAll(/\bimport\(\s*["']|\brequire\(/g)]).toEqual([]);
    for (const s of specifiers) expect(ALLOWED.some((re) => re.test(s!)), `${file} imports ${s}`).toBe(true);
    // kernel/types.ts is interfaces only; import it as types so nothing of kernel/ loads.
    for (const m of text.matchAll(/import\s+(type\s+)?[^;]*from\s+["']\.\.\/kernel\/types\.js["']/g)) expect(m[1], `${file}: import type from kernel/types`).toBeTruthy();
  });
});
