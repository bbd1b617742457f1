// Runs the vitest projects "kernel" and "unit" side by side, as two vitest processes.
//
//   npm run test:side-by-side [-- <vitest filters/options, passed to both>]
//
// Why a second process: vitest 4 runs a project with `fileParallelism: false` (kernel) in a group of its
// own, after every other group, and groups never overlap (vitest/dist/chunks/cli-api groupSpecs); on 2
// cores the unit project gets maxWorkers = cores - 1 = 1 as well. So in one process the whole suite is
// unit (one file at a time) and then kernel (one file at a time, mostly waiting for the VM). Two
// processes let unit files run while the kernel files wait on the guest.
//
// The VM boots in the kernel process's global setup, as in `vitest run`. Exit status: non-zero when
// either run failed. With LVSFLEET_TEST_REPORT set (.ci/run), each run writes its own JSON report and
// this script merges them into that file; a run that left no report counts as one failed file.
import { spawn } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PROJECTS = ["kernel", "unit"] as const; // kernel first: its global setup boots the VM
const args = process.argv.slice(2);
const report = process.env.LVSFLEET_TEST_REPORT;

interface JsonReport {
  success?: boolean;
  startTime?: number;
  testResults?: { name?: string; status?: string; assertionResults?: unknown[]; message?: string }[];
  [k: string]: unknown;
}

const children = new Set<ReturnType<typeof spawn>>();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    for (const c of children) c.kill(sig);
  });
}

function run(project: string): Promise<number> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...(report ? { LVSFLEET_TEST_REPORT: `${report}.${project}.json` } : {}) };
    const child = spawn(process.execPath, [`${REPO_ROOT}node_modules/vitest/vitest.mjs`, "run", "--project", project, "--passWithNoTests", ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: "inherit",
    });
    children.add(child);
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

const t0 = Date.now();
const codes = await Promise.all(PROJECTS.map(async (p) => {
  const code = await run(p);
  process.stderr.write(`[side-by-side] ${p}: exit ${code} after ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  return code;
}));

if (report) {
  const merged: JsonReport = { success: true, testResults: [] };
  for (const [i, p] of PROJECTS.entries()) {
    const file = `${report}.${p}.json`;
    let r: JsonReport | undefined;
    try {
      r = JSON.parse(await readFile(file, "utf8")) as JsonReport;
    } catch {
      r = undefined;
    }
    await rm(file, { force: true });
    if (!r) {
      merged.testResults!.push({ name: `vitest --project ${p}`, status: "failed", assertionResults: [], message: `no report (exit ${codes[i]})` });
      merged.success = false;
      continue;
    }
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === "number" && k !== "startTime") merged[k] = ((merged[k] as number | undefined) ?? 0) + v;
    }
    merged.startTime = Math.min(merged.startTime ?? Infinity, r.startTime ?? Infinity);
    merged.success = merged.success && r.success !== false && codes[i] === 0;
    merged.testResults!.push(...(r.testResults ?? []));
  }
  await writeFile(report, JSON.stringify(merged));
}
process.stderr.write(`[side-by-side] both done in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
process.exit(codes.some((c) => c !== 0) ? 1 : 0);
