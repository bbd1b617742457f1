/**
 * `lvsfleet`: the command line client of the lvsfleet control plane. bin/lvsfleet.mjs loads this
 * file through tsx, so it runs from a checkout without a build step.
 */
import { runFleet } from "./fleet.js";
import { runImportExport } from "./import-export.js";
import { runPlan } from "./plan.js";
import { run } from "./run.js";
import { runDrain } from "./drain.js";
import { runHealth } from "./health.js";
import { runStats } from "./stats.js";

// `lvsfleet audit | head`: a reader that goes away is not an error worth a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

const io = { stdout: (s: string) => void process.stdout.write(s), stderr: (s: string) => void process.stderr.write(s) };
const code =
  (await runImportExport(process.argv.slice(2), process.env, io)) ??
  (await runPlan(process.argv.slice(2), process.env, io)) ??
  (await runFleet(process.argv.slice(2), process.env, { ...io, isTTY: process.stdout.isTTY === true })) ??
  (await runStats(process.argv.slice(2), process.env, io)) ??
  (await runHealth(process.argv.slice(2), process.env, io)) ??
  (await runDrain(process.argv.slice(2), process.env, { ...io, isTTY: process.stdout.isTTY === true })) ??
  (await run(process.argv.slice(2), process.env, io));
// Let stdout drain (it may be a pipe) before the process ends.
process.exitCode = code;
