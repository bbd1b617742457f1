/**
 * Child process of bench:fanout: runs simulated agents (the real sync code over the recording
 * FakeBackend) so that their CPU work does not share an event loop with the relay being measured.
 * Runs agents d<first> … d<first+count-1> (bench:fanout starts `--agent-procs` of these).
 * Prints `READY` once every agent has started, then one line `A <index> <revision> <epoch ms>` per
 * successful apply. SIGTERM stops the agents, prints `CPU <applies> <user µs> <system µs>` (this
 * process's CPU since READY) and exits.
 */
import { parseArgs } from "node:util";
import { DEFAULTS, type AgentConfig } from "../agents/hostagent/config.js";
import { FakeBackend } from "../agents/hostagent/kernel/fake-backend.js";
import { startAgent, type Agent } from "../agents/hostagent/sync/agent.js";

const { values: a } = parseArgs({
  options: {
    first: { type: "string", default: "0" },
    count: { type: "string" },
    site: { type: "string" },
    bucket: { type: "string" },
    nats: { type: "string" },
    "state-dir": { type: "string" },
    "status-prefix": { type: "string" },
  },
});
const FIRST = Number(a.first);
const N = Number(a.count);
const agents: Agent[] = [];
let appliesDone = 0;
let out = "";
const flush = () => {
  if (out) process.stdout.write(out);
  out = "";
};
setInterval(flush, 5).unref();

async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  }));
}

await pool(N, 50, async (k) => {
  const i = FIRST + k;
  const backend = new FakeBackend();
  const apply = backend.apply.bind(backend);
  backend.apply = async (desired) => {
    const r = await apply(desired);
    // The bench needs no record of past applies (it gets the A lines): 40 000 retained states in
    // a run only made the garbage collector work.
    backend.applies.length = 0;
    appliesDone++;
    out += `A ${i} ${desired.revision} ${Date.now()}\n`;
    return r;
  };
  const config: AgentConfig = {
    ...DEFAULTS,
    site: a.site!,
    host: `d${i}`,
    natsServers: [a.nats!],
    bucket: a.bucket!,
    statusSubjectPrefix: a["status-prefix"]!,
    stateDir: a["state-dir"]!,
    heartbeatSeconds: 30,
    kernel: "fake",
  };
  agents[k] = await startAgent({ config, backend });
});
flush();
const cpu0 = process.cpuUsage();
const applies0 = appliesDone;
process.stdout.write("READY\n");

process.on("SIGTERM", () => {
  const cpu = process.cpuUsage(cpu0);
  const applies = appliesDone - applies0;
  void Promise.all(agents.map((ag) => ag.stop().catch(() => undefined))).then(() => {
    flush();
    process.stdout.write(`CPU ${applies} ${cpu.user} ${cpu.system}\n`, () => process.exit(0));
  });
});
