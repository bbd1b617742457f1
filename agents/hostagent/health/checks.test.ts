// Every checker against real servers on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dnsProbe, buildQuery } from "./dns.js";
import { execProbe } from "./exec.js";
import { httpProbe } from "./http.js";
import { tcpProbe } from "./tcp.js";
import { blackholePort, closedPort, dnsResponder, httpServer, httpsServer, selfSignedCert, tcpServer, type Handler, type TestServer } from "./testing.js";

const lo = "127.0.0.1";
const http = (o: Partial<Parameters<typeof httpProbe>[0]> = {}) =>
  httpProbe({ path: "/", expectedStatus: 0, bodyRegex: "", hostHeader: "", tls: false, tlsSkipVerify: false, ...o });

describe("tcp", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await tcpServer();
  });
  afterAll(() => server.stop());

  it("connects to a listening port", async () => {
    expect(await tcpProbe({ address: lo, port: server.port }, 1000)).toEqual({ ok: true, detail: "connected" });
  });

  it("reports ECONNREFUSED on a closed port", async () => {
    expect(await tcpProbe({ address: lo, port: await closedPort() }, 1000)).toEqual({ ok: false, detail: "connect ECONNREFUSED" });
  });

  it("times out when the handshake never completes", async () => {
    const hole = await blackholePort();
    try {
      const started = Date.now();
      expect(await tcpProbe({ address: lo, port: hole.port }, 250)).toEqual({ ok: false, detail: "timeout after 250ms" });
      expect(Date.now() - started).toBeGreaterThanOrEqual(240);
      expect(Date.now() - started).toBeLessThan(1500);
    } finally {
      hole.close();
    }
  });
});

describe("http", () => {
  let server: TestServer;
  let status = 200;
  let body = "all good";
  let seenHost = "";
  let seenPath = "";
  const handler: Handler = (req, res) => {
    seenHost = req.headers.host ?? "";
    seenPath = req.url ?? "";
    if (req.url === "/slow") return void setTimeout(() => res.end("late"), 2000);
    res.statusCode = status;
    res.end(body);
  };
  beforeAll(async () => {
    server = await httpServer(handler);
  });
  afterAll(() => server.stop());
  const t = () => ({ address: lo, port: server.port });

  it("any 2xx by default; 503 fails with the status", async () => {
    status = 204;
    expect(await http()(t(), 1000)).toEqual({ ok: true, detail: "HTTP 204" });
    status = 503;
    expect(await http()(t(), 1000)).toEqual({ ok: false, detail: "HTTP 503" });
  });

  it("an expected status must match exactly", async () => {
    status = 200;
    expect((await http({ expectedStatus: 200 })(t(), 1000)).ok).toBe(true);
    expect(await http({ expectedStatus: 301 })(t(), 1000)).toEqual({ ok: false, detail: "HTTP 200" });
    status = 418;
    expect((await http({ expectedStatus: 418 })(t(), 1000)).ok).toBe(true);
  });

  it("body regex (u flag) must match", async () => {
    status = 200;
    body = "status: ✓ ready";
    expect((await http({ bodyRegex: "^status: \\u{2713} ready$" })(t(), 1000)).ok).toBe(true);
    body = "status: starting";
    expect(await http({ bodyRegex: "ready" })(t(), 1000)).toEqual({ ok: false, detail: "HTTP 200, body does not match /ready/" });
  });

  it("an invalid regex fails every check with a clear detail", async () => {
    const r = await http({ bodyRegex: "(" })(t(), 1000);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/^invalid body_regex/);
  });

  it("sends the Host header (default: address:port) and the path", async () => {
    status = 200;
    await http({ path: "/healthz" })(t(), 1000);
    expect(seenHost).toBe(`127.0.0.1:${server.port}`);
    expect(seenPath).toBe("/healthz");
    await http({ hostHeader: "www.example.test" })(t(), 1000);
    expect(seenHost).toBe("www.example.test");
  });

  it("times out on a slow server, within the timeout", async () => {
    const started = Date.now();
    expect(await http({ path: "/slow" })(t(), 200)).toEqual({ ok: false, detail: "timeout after 200ms" });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("refused connection", async () => {
    expect(await http()({ address: lo, port: await closedPort() }, 1000)).toEqual({ ok: false, detail: "connect ECONNREFUSED" });
  });
});

describe("https", () => {
  let server: TestServer;
  let status = 200;
  beforeAll(async () => {
    server = await httpsServer(selfSignedCert(), (_req, res) => {
      res.statusCode = status;
      res.end("secure ok");
    });
  });
  afterAll(() => server.stop());
  const t = () => ({ address: lo, port: server.port });

  it("a self-signed certificate fails verification unless tls_skip_verify", async () => {
    const strict = await http({ tls: true })(t(), 2000);
    expect(strict.ok).toBe(false);
    expect(strict.detail).toMatch(/SELF_SIGNED/);
    expect(await http({ tls: true, tlsSkipVerify: true, bodyRegex: "secure" })(t(), 2000)).toEqual({ ok: true, detail: "HTTP 200" });
  });

  it("status over TLS", async () => {
    status = 500;
    expect(await http({ tls: true, tlsSkipVerify: true })(t(), 2000)).toEqual({ ok: false, detail: "HTTP 500" });
    status = 200;
  });

  it("plain HTTP against the TLS port fails", async () => {
    expect((await http()(t(), 1000)).ok).toBe(false);
  });
});

describe("dns", () => {
  it("builds the query packet of RFC 1035", () => {
    const q = buildQuery(0x1234, "www.example.test", 28);
    expect(q.subarray(0, 12)).toEqual(Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]));
    expect(q.subarray(12).toString("latin1")).toBe("\x03www\x07example\x04test\x00\x00\x1c\x00\x01");
    expect(() => buildQuery(1, `${"a".repeat(64)}.test`, 1)).toThrow(/bad label/);
  });

  it("NOERROR is healthy, NXDOMAIN is not; the query carries name and type", async () => {
    const dns = await dnsResponder(["svc.example.test"]);
    try {
      const t = { address: lo, port: dns.port };
      expect(await dnsProbe({ queryName: "svc.example.test", queryType: "AAAA" })(t, 1000)).toEqual({ ok: true, detail: "NOERROR" });
      expect(dns.queries.at(-1)).toMatchObject({ name: "svc.example.test", qtype: 28 });
      expect(await dnsProbe({ queryName: "gone.example.test", queryType: "" })(t, 1000)).toEqual({ ok: false, detail: "NXDOMAIN" });
      expect(dns.queries.at(-1)).toMatchObject({ name: "gone.example.test", qtype: 1 });
      expect(new Set(dns.queries.map((q) => q.id)).size).toBeGreaterThan(0);
    } finally {
      await dns.close();
    }
  });

  it("ignores an answer with another id and takes its own", async () => {
    const dns = await dnsResponder([], { wrongIdFirst: true });
    try {
      // The wrong-id reply says NOERROR, the real one NXDOMAIN: NXDOMAIN proves the id was checked.
      expect(await dnsProbe({ queryName: "x.test", queryType: "A" })({ address: lo, port: dns.port }, 1000)).toEqual({ ok: false, detail: "NXDOMAIN" });
    } finally {
      await dns.close();
    }
  });

  it("times out on a silent server; refused on a closed port", async () => {
    const dns = await dnsResponder([], { silent: true });
    try {
      expect(await dnsProbe({ queryName: "x.test", queryType: "A" })({ address: lo, port: dns.port }, 150)).toEqual({ ok: false, detail: "timeout after 150ms" });
    } finally {
      await dns.close();
    }
    const port = dns.port; // closed now
    expect(await dnsProbe({ queryName: "x.test", queryType: "A" })({ address: lo, port }, 1000)).toEqual({ ok: false, detail: "dns ECONNREFUSED" });
  });

  it("an unknown query type fails with a clear detail", async () => {
    expect(await dnsProbe({ queryName: "x.test", queryType: "BOGUS" })({ address: lo, port: 53 }, 100)).toEqual({ ok: false, detail: 'unknown query_type "BOGUS"' });
  });
});

describe("exec", () => {
  const t = { address: "192.0.2.10", port: 8080 };
  it("exit 0 healthy, non-zero not", async () => {
    expect(await execProbe({ argv: ["true"] })(t, 2000)).toEqual({ ok: true, detail: "exit 0" });
    expect(await execProbe({ argv: ["false"] })(t, 2000)).toEqual({ ok: false, detail: "exit 1" });
  });

  it("passes the real server in the environment and shows stderr on failure", async () => {
    const script = 'test "$LVSFLEET_RS_ADDRESS:$LVSFLEET_RS_PORT" = "192.0.2.10:8080" || { echo "got $LVSFLEET_RS_ADDRESS:$LVSFLEET_RS_PORT" >&2; exit 3; }';
    expect(await execProbe({ argv: ["sh", "-c", script] })(t, 2000)).toEqual({ ok: true, detail: "exit 0" });
    expect(await execProbe({ argv: ["sh", "-c", script] })({ address: "192.0.2.11", port: 80 }, 2000)).toEqual({ ok: false, detail: "exit 3: got 192.0.2.11:80" });
  });

  it("is killed at the timeout, children included", async () => {
    const started = Date.now();
    expect(await execProbe({ argv: ["sh", "-c", "sleep 30; true"] })(t, 200)).toEqual({ ok: false, detail: "timeout after 200ms" });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("a missing program fails", async () => {
    expect(await execProbe({ argv: ["/nonexistent/lvsfleet-check"] })(t, 1000)).toEqual({ ok: false, detail: "spawn ENOENT" });
    expect(await execProbe({ argv: [] })(t, 1000)).toEqual({ ok: false, detail: "exec: empty argv" });
  });
});
