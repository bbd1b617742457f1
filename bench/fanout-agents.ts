/**
 * Child process of bench:fanout: runs simulated agents (the real sync code over the recording
 * FakeBackend) so that their CPU work does not share an event loop with the relay being measured.
 * Prints `READY` once every agent has started, then one line `A <index> <revision> <epoch ms>` per
 * successful apply. SIGTERM stops the agents and exits.
 */
import { parseArgs } from "node:util";
import { DEFAULTS, type AgentConfig } from "../agents/hostagent/config.js";
import { FakeBackend } from "../agents/hostagent/kernel/fake-backend.js";
import { startAgent, type Agent } from "../agents/hostagent/sync/agent.js";

const { values: a } = parseArgs({
  options: {
    agents: { type: "string" },
    site: { type: "string" },
    bucket: { type: "string" },
    nats: { type: "string" },
    "state-dir": { type: "string" },
    "status-prefix": { type: "string" },
  },
});
const N = Number(a.agents);
const agents: Agent[] = [];
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

await pool(N, 50, async (i) => {
  const backend = new FakeBackend();
  const apply = backend.apply.bind(backend);
  backend.apply = async (desired) => {
    const r = await apply(desired);
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
  agents[i] = await startAgent({ config, backend });
});
flush();
process.stdout.write("READY\n");

process.on("SIGTERM", () => {
  void Promise.all(agents.map((ag) => ag.stop().catch(() => undefined))).then(() => {
    flush();
    process.exit(0);
  });
});
