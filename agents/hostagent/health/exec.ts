// Exec check: runs argv on the Director (no shell) with LVSFLEET_RS_ADDRESS / LVSFLEET_RS_PORT in
// the environment; exit 0 = healthy. At the timeout the whole process group is SIGKILLed, so a
// script's children (`sh -c 'sleep 60'`) do not outlive the check.
import { spawn } from "node:child_process";
import type { ExecCheck } from "../../../gen/lvsfleet/v1/types_pb.js";
import { errorDetail, timeoutResult, type CheckResult, type Probe } from "./types.js";

/** The last bytes of stderr go into the detail of a failed check. */
const STDERR_TAIL = 200;

export function execProbe(spec: Pick<ExecCheck, "argv">): Probe {
  return (target, timeoutMs) =>
    new Promise<CheckResult>((resolve) => {
      if (spec.argv.length === 0) return resolve({ ok: false, detail: "exec: empty argv" });
      const child = spawn(spec.argv[0]!, spec.argv.slice(1), {
        env: { ...process.env, LVSFLEET_RS_ADDRESS: target.address, LVSFLEET_RS_PORT: String(target.port) },
        stdio: ["ignore", "ignore", "pipe"],
        detached: true, // own process group, killed as a whole at the timeout
      });
      let stderr = "";
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (s: string) => {
        stderr = (stderr + s).slice(-STDERR_TAIL);
      });
      let settled = false;
      const finish = (r: CheckResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
        finish(timeoutResult(timeoutMs));
      }, timeoutMs);
      child.once("error", (err) => finish({ ok: false, detail: errorDetail("spawn", err) }));
      child.once("close", (code, signal) => {
        if (code === 0) return finish({ ok: true, detail: "exit 0" });
        const why = code !== null ? `exit ${code}` : `killed by ${signal}`;
        const tail = stderr.trim().split("\n").pop();
        finish({ ok: false, detail: tail ? `${why}: ${tail}` : why });
      });
    });
}
