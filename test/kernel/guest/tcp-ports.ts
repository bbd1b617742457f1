// Multi-port TCP server / client for test/kernel/ipvs-traffic-tun-fwmark.test.ts, run with `node`
// inside namespaces in the kernel target (one process per real server, however many ports).
//   serve <name> <readyFile> <port>...      answers every connection on every port with "<name>\n";
//                                           readyFile appears once all ports listen
//   seq <host> <port,port,...> <rounds>     for each round connects to each port in turn (one connection
//                                           at a time); prints [{"port", "name"}, ...] in order
import { writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";

const [mode, ...args] = process.argv.slice(2);

if (mode === "serve") {
  const [name, ready, ...ports] = args;
  let listening = 0;
  for (const p of ports) {
    createServer((s) => s.end(`${name}\n`)).listen(Number(p), "0.0.0.0", () => {
      if (++listening === ports.length) writeFileSync(ready!, "ready");
    });
  }
} else if (mode === "seq") {
  const [host, ports, rounds] = args;
  const seen: { port: number; name: string }[] = [];
  for (let r = 0; r < Number(rounds); r++) {
    for (const port of ports!.split(",").map(Number)) {
      const name = await new Promise<string>((resolve, reject) => {
        const s = connect({ host: host!, port });
        let data = "";
        s.setTimeout(5000, () => s.destroy(new Error("timeout")));
        s.on("data", (d) => (data += d));
        s.on("end", () => resolve(data.trim()));
        s.on("error", reject);
      }).catch((e: Error) => `error:${e.message}`);
      seen.push({ port, name });
    }
  }
  process.stdout.write(JSON.stringify(seen) + "\n");
} else {
  process.stderr.write("usage: serve <name> <readyFile> <port>... | seq <host> <port,port,...> <rounds>\n");
  process.exit(2);
}
