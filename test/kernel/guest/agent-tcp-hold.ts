// A long-lived TCP connection through a VIP, for test/kernel/agent-reconcile.test.ts.
//   serve <port> <name> <readyFile>                    echo server: answers each line with "<name> <line>"
//   hold <host> <port> <readyFile> <stopFile> <outFile> one connection, a line every 100 ms, until stopFile
//        exists; writes {"server", "sent", "received", "error"} to outFile. readyFile gets the server
//        name after the first answer.
import { existsSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";

const [mode, a, b, c, d, e] = process.argv.slice(2);
if (mode === "serve") {
  const server = createServer((s) => {
    let buf = "";
    s.on("data", (x) => {
      buf += x;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        s.write(`${b} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    s.on("error", () => undefined);
  });
  server.listen(Number(a), "0.0.0.0", () => writeFileSync(c!, "ready"));
} else if (mode === "hold") {
  let sent = 0;
  let received = 0;
  let server = "";
  let error = "";
  let buf = "";
  const s = connect({ host: a!, port: Number(b) });
  s.on("data", (x) => {
    buf += x;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      received++;
      if (!server) {
        server = line.split(" ")[0]!;
        writeFileSync(c!, server);
      }
    }
  });
  s.on("error", (err) => (error ||= err.message));
  s.on("close", () => (error ||= "closed by peer"));
  const timer = setInterval(() => {
    if (existsSync(d!) || error) {
      clearInterval(timer);
      setTimeout(() => {
        writeFileSync(e!, JSON.stringify({ server, sent, received, error }));
        s.destroy();
        process.exit(0);
      }, 500);
      return;
    }
    s.write(`ping ${++sent}\n`);
  }, 100);
} else {
  process.stderr.write("usage: serve <port> <name> <readyFile> | hold <host> <port> <readyFile> <stopFile> <outFile>\n");
  process.exit(2);
}
