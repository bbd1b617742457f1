// Tiny TCP server / client for the IPVS traffic test, run with `node` inside namespaces in the
// kernel target.
//   serve <port> <name> <readyFile>   answers every connection with "<name>\n"
//   get <host> <port> <count>         connects <count> times in a row, prints {"<name>": hits, ...}
import { writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";

const [mode, a, b, c] = process.argv.slice(2);

if (mode === "serve") {
  const server = createServer((s) => s.end(`${b}\n`));
  server.listen(Number(a), "0.0.0.0", () => writeFileSync(c!, "ready"));
} else if (mode === "get") {
  const counts: Record<string, number> = {};
  for (let i = 0; i < Number(c); i++) {
    const body = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: a!, port: Number(b) });
      let data = "";
      s.setTimeout(5000, () => s.destroy(new Error("timeout")));
      s.on("data", (d) => (data += d));
      s.on("end", () => resolve(data.trim()));
      s.on("error", reject);
    }).catch((e: Error) => `error:${e.message}`);
    counts[body] = (counts[body] ?? 0) + 1;
  }
  process.stdout.write(JSON.stringify(counts) + "\n");
} else {
  process.stderr.write("usage: serve <port> <name> <readyFile> | get <host> <port> <count>\n");
  process.exit(2);
}
