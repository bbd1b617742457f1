// lvsfleet-agent: runs on every LVS host; see sync/agent.ts for the loop and config.ts for options.
import pino from "pino";
import { ConfigError, loadConfig } from "./config.js";
import { HealthCheckedBackend } from "./health/backend.js";
import { FakeBackend } from "./kernel/fake-backend.js";
import type { KernelBackend } from "./kernel/backend.js";
import { LinuxBackend } from "./kernel/linux-backend.js";
import { startAgent } from "./sync/agent.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`lvsfleet-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ name: "lvsfleet-agent", base: { site: config.site, host: config.host } });
  let backend: KernelBackend;
  if (config.kernel === "linux") {
    const linux = new LinuxBackend({ site: config.site, host: config.host, stateDir: config.stateDir, log });
    linux.startResync(config.resyncSeconds * 1000); // drift: changes made behind the agent's back
    // Health checks (Directors): every desired state, and every health transition, reaches the kernel
    // as applyHealth(desired, health). Not with --kernel fake: its real servers are not ours to probe.
    const health = new HealthCheckedBackend(linux, { log, stateDir: config.stateDir, site: config.site, host: config.host });
    await health.load();
    backend = health;
  } else {
    backend = new FakeBackend();
    log.warn("using the fake kernel backend: nothing is changed in this host's kernel");
  }
  const agent = await startAgent({ config, backend, log });
  log.info({ agentId: agent.agentId, nats: config.natsServers, bucket: config.bucket }, "agent started");
  const shutdown = async (signal: string) => {
    log.info({ signal }, "stopping");
    await agent.stop();
    await backend.close?.();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

await main();
