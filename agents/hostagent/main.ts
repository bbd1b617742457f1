// lvsfleet-agent: runs on every LVS host; see sync/agent.ts for the loop and config.ts for options.
import pino from "pino";
import { ConfigError, loadConfig } from "./config.js";
import { FakeBackend } from "./kernel/fake-backend.js";
import type { KernelBackend } from "./kernel/backend.js";
import { LinuxBackend } from "./kernel/linux-backend.js";
import { startAgent } from "./sync/agent.js";

async function main(): Promise<void> {
  // --kernel linux|fake (default linux): which KernelBackend; taken out before config.ts's strict parse.
  const argv = process.argv.slice(2);
  const at = argv.findIndex((a) => a === "--kernel" || a.startsWith("--kernel="));
  const kernel = at < 0 ? "linux" : argv[at]!.includes("=") ? argv[at]!.slice(9) : argv[at + 1];
  if (at >= 0) argv.splice(at, argv[at]!.includes("=") ? 1 : 2);
  if (kernel !== "linux" && kernel !== "fake") {
    process.stderr.write(`lvsfleet-agent: --kernel must be linux or fake, got ${JSON.stringify(kernel)}\n`);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`lvsfleet-agent: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ name: "lvsfleet-agent", base: { site: config.site, host: config.host } });
  let backend: KernelBackend;
  if (kernel === "linux") {
    const linux = new LinuxBackend({ site: config.site, host: config.host, stateDir: config.stateDir, log });
    linux.startResync(config.resyncSeconds * 1000); // drift: changes made behind the agent's back
    backend = linux;
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
