// The HTTP real server of the end-to-end test (test/kernel/e2e-fleet.test.ts), run with `node` inside
// a real server's namespace (the clients are in guest/e2e-api.ts).
//   serve <port> <name> <readyFile>
//        HTTP/1.1 server answering every request with the body "<name>\n" (keep-alive kept 60 s);
//        writes readyFile once listening. Stop it with SIGTERM.
//        SIGUSR1: stop listening and drop every connection (a health check now gets "connection
//        refused", as from a stopped server), then remove readyFile; SIGUSR2: listen again, then write
//        readyFile. Taking a real server down and up this way costs no node start (seconds under TCG).
import { rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";

const [mode, a, b, c] = process.argv.slice(2);

if (mode === "serve") {
  const body = `${b}\n`;
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 61_000;
  const listen = () => server.listen(Number(a), "0.0.0.0", () => writeFileSync(c!, "ready"));
  listen();
  // While down nothing else would keep the event loop alive: node would exit.
  setInterval(() => {}, 3_600_000);
  process.on("SIGUSR1", () => {
    if (!server.listening) return void rmSync(c!, { force: true });
    server.close(() => rmSync(c!, { force: true }));
    server.closeAllConnections();
  });
  process.on("SIGUSR2", () => {
    if (!server.listening) listen();
    else writeFileSync(c!, "ready");
  });
  process.once("SIGTERM", () => process.exit(0));
} else {
  process.stderr.write("usage: serve <port> <name> <readyFile>\n");
  process.exit(2);
}
