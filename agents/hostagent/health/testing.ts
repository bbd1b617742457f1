// Real servers on 127.0.0.1 for the health-check tests: TCP, HTTP, HTTPS (self-signed cert made by
// `openssl` at test time) and a UDP DNS responder. Each listens on port 0 and can be stopped and
// restarted on the same port (to watch a check go down and come back).
import { execFileSync } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestServer {
  port: number;
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

function listenable(make: () => Server, port0 = 0): Promise<TestServer> {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let port = port0;
  const api: TestServer = {
    get port() {
      return port;
    },
    async start() {
      const s = make();
      s.on("connection", (c: Socket) => {
        sockets.add(c);
        c.on("close", () => sockets.delete(c));
      });
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve());
      });
      port = (s.address() as { port: number }).port;
      server = s;
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      for (const c of sockets) c.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  return api.start().then(() => api);
}

export function tcpServer(): Promise<TestServer> {
  return listenable(() => createNetServer((c) => c.end()));
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function httpServer(handler: Handler): Promise<TestServer> {
  return listenable(() => createHttpServer(handler));
}

export interface Cert {
  key: string;
  cert: string;
}

/** A self-signed certificate for CN=health.test (and 127.0.0.1), made by the openssl CLI. */
export function selfSignedCert(): Cert {
  const dir = mkdtempSync(join(tmpdir(), "lvsfleet-health-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=health.test",
      "-addext", "subjectAltName=DNS:health.test,IP:127.0.0.1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function httpsServer(cert: Cert, handler: Handler): Promise<TestServer> {
  return listenable(() => createHttpsServer({ key: cert.key, cert: cert.cert }, handler));
}

export interface DnsResponder {
  port: number;
  /** Every query seen: id, name, qtype. */
  queries: Array<{ id: number; name: string; qtype: number }>;
  close(): Promise<void>;
}

/**
 * A UDP DNS responder: answers NOERROR for names in `zone` and NXDOMAIN otherwise (no answer
 * records: the check looks at the header only). `mode` can make it send a wrong id first, or stay
 * silent, to test that the check waits for its own id and times out.
 */
export async function dnsResponder(zone: string[], mode: { wrongIdFirst?: boolean; silent?: boolean } = {}): Promise<DnsResponder> {
  const sock: UdpSocket = createSocket("udp4");
  const queries: DnsResponder["queries"] = [];
  sock.on("message", (msg, rinfo) => {
    const id = msg.readUInt16BE(0);
    const labels: string[] = [];
    let i = 12;
    while (msg[i]! !== 0) {
      const n = msg[i]!;
      labels.push(msg.subarray(i + 1, i + 1 + n).toString("utf8"));
      i += 1 + n;
    }
    const qtype = msg.readUInt16BE(i + 1);
    const name = labels.join(".");
    queries.push({ id, name, qtype });
    if (mode.silent) return;
    const question = msg.subarray(12, i + 5);
    const reply = (rid: number, rcode: number) => {
      const h = Buffer.alloc(12);
      h.writeUInt16BE(rid, 0);
      h.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA
      h.writeUInt16BE(1, 4);
      sock.send(Buffer.concat([h, question]), rinfo.port, rinfo.address);
    };
    if (mode.wrongIdFirst) reply((id + 1) & 0xffff, 0);
    reply(id, zone.includes(name.toLowerCase()) ? 0 : 3);
  });
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
  return {
    port: sock.address().port,
    queries,
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}

/** A port on 127.0.0.1 nothing listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface Blackhole {
  port: number;
  close(): void;
}

/**
 * A port on 127.0.0.1 where connect() hangs: a stopped (SIGSTOP) listener with backlog 1 (Node reads 0 as "default") whose
 * accept queue is filled, so the kernel drops further SYNs. For timeout tests on loopback.
 */
export async function blackholePort(): Promise<Blackhole> {
  const { spawn } = await import("node:child_process");
  const { connect } = await import("node:net");
  const child = spawn(process.execPath, ["-e", "require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},function(){console.log(this.address().port)})"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("error", reject);
  });
  child.kill("SIGSTOP");
  const fillers: Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const c = connect({ host: "127.0.0.1", port });
    c.on("error", () => undefined);
    fillers.push(c);
    const connected = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 300);
      c.once("connect", () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!connected) break;
  }
  return {
    port,
    close() {
      for (const c of fillers) c.destroy();
      child.kill("SIGKILL");
    },
  };
}
