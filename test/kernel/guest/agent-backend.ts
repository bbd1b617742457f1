// Guest side of test/kernel/agent-reconcile.test.ts: one agent "process life" — a LinuxBackend with
// the real adapters (IPVS genl, rtnetlink, nft, /proc/sys) on the kernel target, running the steps
// in the JSON file argv[2] with its owned-set file in argv[3]. A new run of this entry is an agent
// restart. `exec` steps capture the oracles (ipvsadm, ip, nft, sysctl) between steps verbatim.
import { fromBinary } from "@bufbuild/protobuf";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { HostDesiredStateSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { LinuxBackend } from "../../../agents/hostagent/kernel/linux-backend.js";

export type AgentStep = { do: "apply"; desired: string /* base64 toBinary(HostDesiredState) */ } | { do: "resync" } | { do: "exec"; cmd: string };

const steps = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as AgentStep[];
const backend = new LinuxBackend({ site: "vm", host: "director", stateDir: process.argv[3]! });
const results: unknown[] = [];
for (const s of steps) {
  try {
    if (s.do === "apply") {
      const r = await backend.apply(fromBinary(HostDesiredStateSchema, Buffer.from(s.desired, "base64")));
      results.push({ ...backend.lastCycle, errors: r.errors });
    } else if (s.do === "resync") {
      results.push((await backend.resync()) ?? null);
    } else {
      results.push(execFileSync("bash", ["-c", s.cmd], { encoding: "utf8" }));
    }
  } catch (e) {
    results.push({ thrown: String((e as Error)?.stack ?? e) });
  }
}
await backend.close();
process.stdout.write(JSON.stringify({ results }) + "\n");
