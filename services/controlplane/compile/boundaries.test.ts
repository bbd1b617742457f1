import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// compile/ is pure (DEVELOPERS.md): it may import the protobuf runtime, the generated messages,
// node:crypto (hashing is not I/O) and its own files — never grpc, pg, nats or anything doing I/O.
const here = dirname(fileURLToPath(import.meta.url));
const ALLOWED = [/^@bufbuild\/protobuf$/, /^node:crypto$/, /^\.\/[a-z-]+\.js$/, /^\.\.\/\.\.\/\.\.\/gen\/lvsfleet\/v1\/[a-z_]+_pb\.js$/];

describe("compile/ import boundary", () => {
  const sources = readdirSync(here).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "testing.ts");

  it("has the production sources we expect", () => {
    expect(sources).toEqual(expect.arrayContaining(["addr.ts", "compile.ts", "index.ts", "names.ts"]));
  });

  it.each(sources)("%s imports only the protobuf runtime, generated code, node:crypto and local files", (file) => {
    const text = readFileSync(join(here, file), "utf8");
    const specifiers = [
      ...[...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']/g)].map((m) => m[1]),
      ...[...text.matchAll(/(?:^|\n)\s*import\s+["']([^"']+)["']/g)].map((m) => m[1]), // side-effect imports
    ];
    // The pattern must see compile.ts's imports, or this test proves nothing.
    if (file === "compile.ts") expect(specifiers).toEqual(expect.arrayContaining(["@bufbuild/protobuf", "node:crypto", "./addr.js"]));
    const dynamic = [...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)|\brequire\(/g)];
    expect(dynamic).toEqual([]);
    for (const s of specifiers) expect(ALLOWED.some((re) => re.test(s)), `${file} imports ${s}`).toBe(true);
  });
});
