// The end-to-end test's client in the VM (test/kernel/e2e-fleet.test.ts): one long-running process in
// the client namespace, which has a leg on the management network (the control plane's gRPC) and
// routes to the VIPs. Starting node under TCG costs seconds (tens under load), so the test hands it
// requests as files instead of starting a process per call.
//
//   node e2e-api.mjs <request dir> <grpc address>
//
// The host writes <dir>/<id>.req.json (temp + rename); the driver answers <dir>/<id>.res.json
// ({"ok": result} or {"error": message}). Requests:
//   { "kind": "api", "steps": ApiStep[] }   → { results, ms, error? } (see ApiStep below)
//   { "kind": "get", "host", "port", "count" } → { "<name>": hits, "error:...": n }: HTTP GETs, one
//        connection each (the body is the real server's name: guest/e2e-http.ts serve)
//   { "kind": "holdStart", "id", "host", "port" } → the first answer's name, once it came: a keep-alive
//        connection sending a GET every 200 ms
//   { "kind": "holdStop", "id" } → { servers: {"<name>": answers}, sent, received, error }
//
// ApiStep:
//   { "call": "topology.createSite", "req": {...proto JSON...} }
//   { "poll": "fleet.getHostStatus", "req": {...}, "until": { "path": "status.state", "equals": "HOST_STATE_CONVERGED" }, "timeoutMs": 30000 }
//        repeats the call every 300 ms until the condition holds (equals / notEquals: JSON; contains:
//        the JSON text of the value contains the string; gte: number ≥); fails at the timeout with
//        the last response.
// A string "${i.path}" anywhere in a request is replaced by that field of result i (e.g. "${2.revision}").
// A failed step ends the steps: { results, ms, error: { step, code, message } }.
import { fromJson, toJson, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { FleetService } from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import { OperatorService } from "../../../gen/lvsfleet/v1/operator_service_pb.js";
import { TopologyService } from "../../../gen/lvsfleet/v1/topology_service_pb.js";
import { createClient } from "../../../lib/grpc/client.js";

export type ApiStep =
  | { call: string; req: JsonValue }
  | { poll: string; req: JsonValue; until: { path: string; equals?: JsonValue; notEquals?: JsonValue; contains?: string; gte?: number }; timeoutMs?: number };

export type DriverRequest =
  | { kind: "api"; steps: ApiStep[] }
  | { kind: "get"; host: string; port: number; count: number }
  | { kind: "holdStart"; id: string; host: string; port: number }
  | { kind: "holdStop"; id: string };

export interface HoldResult {
  servers: Record<string, number>;
  sent: number;
  received: number;
  error: string;
}

const SERVICES: Record<string, DescService> = { topology: TopologyService, fleet: FleetService, operator: OperatorService };

function at(v: unknown, path: string): unknown {
  let cur = v;
  for (const k of path.split(".").filter(Boolean)) cur = cur == null ? undefined : (cur as Record<string, unknown>)[k];
  return cur;
}

function substitute(v: JsonValue, results: unknown[]): JsonValue {
  if (typeof v === "string") {
    const m = /^\$\{(\d+)\.([^}]*)\}$/.exec(v);
    return m ? (at(results[Number(m[1])], m[2]!) as JsonValue) : v;
  }
  if (Array.isArray(v)) return v.map((x) => substitute(x, results));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x as JsonValue, results)]));
  return v;
}

function holds(res: unknown, u: Extract<ApiStep, { poll: string }>["until"]): boolean {
  const v = at(res, u.path);
  if (u.equals !== undefined) return JSON.stringify(v) === JSON.stringify(u.equals);
  if (u.notEquals !== undefined) return v !== undefined && JSON.stringify(v) !== JSON.stringify(u.notEquals);
  if (u.contains !== undefined) return v !== undefined && JSON.stringify(v).includes(u.contains);
  if (u.gte !== undefined) return Number(v) >= u.gte;
  return v !== undefined;
}

const [dir, address] = process.argv.slice(2) as [string, string];
const clients = new Map<string, ReturnType<typeof createClient>>();
function method(name: string) {
  const [svc, m] = name.split(".") as [string, string];
  const desc = SERVICES[svc];
  const md = desc?.method[m];
  if (!desc || !md || md.methodKind !== "unary") throw new Error(`unknown unary method ${name}`);
  if (!clients.has(svc)) clients.set(svc, createClient(desc, address));
  const client = clients.get(svc)! as unknown as Record<string, (req: unknown, o?: { timeoutMs?: number }) => Promise<unknown>>;
  return async (req: JsonValue) => toJson(md.output, (await client[m]!(fromJson(md.input, req), { timeoutMs: 200_000 })) as never) as unknown;
}

async function api(steps: ApiStep[]) {
  const results: unknown[] = [];
  const ms: number[] = [];
  let error: { step: number; code?: number; message: string } | undefined;
  for (const [i, s] of steps.entries()) {
    const t0 = Date.now();
    try {
      if ("call" in s) {
        results.push(await method(s.call)(substitute(s.req, results)));
      } else {
        const call = method(s.poll);
        const req = substitute(s.req, results);
        const deadline = Date.now() + (s.timeoutMs ?? 30_000);
        let last: unknown;
        for (;;) {
          last = await call(req);
          if (holds(last, s.until)) break;
          if (Date.now() > deadline) throw new Error(`poll ${s.poll}: ${JSON.stringify(s.until)} not reached in ${s.timeoutMs ?? 30_000} ms; last: ${JSON.stringify(last)}`);
          await new Promise((r) => setTimeout(r, 300));
        }
        results.push(last);
      }
      ms.push(Date.now() - t0);
    } catch (e) {
      error = { step: i, code: (e as { code?: number }).code, message: String((e as Error).message ?? e) };
      break;
    }
  }
  return { results, ms, ...(error ? { error } : {}) };
}

async function get(host: string, port: number, count: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const name = await new Promise<string>((resolve, reject) => {
      const req = request({ host, port, path: "/", agent: false, timeout: 10_000 }, (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (x: string) => (data += x));
        res.on("end", () => resolve(res.statusCode === 200 ? data.trim() : `status:${res.statusCode}`));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end();
    }).catch((err: Error) => `error:${err.message}`);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** One keep-alive HTTP connection, a GET every 200 ms; any reset, close or 20 s without an answer is `error`. */
class Hold {
  readonly r: HoldResult = { servers: {}, sent: 0, received: 0, error: "" };
  readonly first: Promise<string>;
  private buf = Buffer.alloc(0);
  private last = Date.now();
  private readonly s: Socket;
  private readonly timer: NodeJS.Timeout;

  constructor(host: string, port: number) {
    let firstName!: (n: string) => void;
    let firstErr!: (e: Error) => void;
    this.first = new Promise((res, rej) => ((firstName = res), (firstErr = rej)));
    this.s = connect({ host, port });
    this.s.on("data", (x: Buffer) => {
      this.buf = Buffer.concat([this.buf, x]);
      for (;;) {
        const end = this.buf.indexOf("\r\n\r\n");
        if (end < 0) break;
        const head = this.buf.subarray(0, end).toString("latin1");
        const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
        if (!Number.isFinite(len)) {
          this.fail(`bad response: ${head.slice(0, 80)}`);
          break;
        }
        if (this.buf.length < end + 4 + len) break;
        const name = this.buf.subarray(end + 4, end + 4 + len).toString().trim();
        this.buf = this.buf.subarray(end + 4 + len);
        this.r.received++;
        this.last = Date.now();
        if (Object.keys(this.r.servers).length === 0) firstName(name);
        this.r.servers[name] = (this.r.servers[name] ?? 0) + 1;
      }
    });
    this.s.on("error", (err) => this.fail(err.message));
    this.s.on("close", () => this.fail("closed by peer"));
    this.first.catch(() => undefined);
    const fail0 = firstErr;
    this.fail = (m: string) => {
      this.r.error ||= m;
      fail0(new Error(m));
    };
    this.timer = setInterval(() => {
      if (this.r.error) return;
      if (this.r.sent > this.r.received && Date.now() - this.last > 20_000) this.fail(`no answer for 20 s (sent ${this.r.sent}, received ${this.r.received})`);
      if (this.s.connecting) return;
      if (this.r.sent === this.r.received) this.last = Date.now();
      this.s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      this.r.sent++;
    }, 200);
  }

  private fail: (m: string) => void;

  async stop(): Promise<HoldResult> {
    clearInterval(this.timer);
    // The answers to the last requests.
    const deadline = Date.now() + 10_000;
    while (!this.r.error && this.r.received < this.r.sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const out = { ...this.r, servers: { ...this.r.servers } };
    this.s.removeAllListeners("close");
    this.s.destroy();
    return out;
  }
}

const holdsById = new Map<string, Hold>();

async function handle(req: DriverRequest): Promise<unknown> {
  switch (req.kind) {
    case "api":
      return api(req.steps);
    case "get":
      return get(req.host, req.port, req.count);
    case "holdStart": {
      const h = new Hold(req.host, req.port);
      holdsById.set(req.id, h);
      return h.first;
    }
    case "holdStop": {
      const h = holdsById.get(req.id);
      if (!h) throw new Error(`no hold ${req.id}`);
      holdsById.delete(req.id);
      return h.stop();
    }
  }
}

const seen = new Set<string>();
writeFileSync(`${dir}/driver.ready`, String(process.pid));
setInterval(() => {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".req.json") && !seen.has(n));
  } catch {
    return;
  }
  for (const n of names) {
    seen.add(n);
    const id = n.slice(0, -".req.json".length);
    let req: DriverRequest;
    try {
      req = JSON.parse(readFileSync(`${dir}/${n}`, "utf8")) as DriverRequest;
      unlinkSync(`${dir}/${n}`);
    } catch (e) {
      seen.delete(n); // half-visible: next round
      continue;
    }
    void handle(req).then(
      (ok) => answer(id, { ok }),
      (e: unknown) => answer(id, { error: String((e as Error)?.stack ?? e) }),
    );
  }
}, 100);

function answer(id: string, body: unknown) {
  writeFileSync(`${dir}/${id}.res.tmp`, JSON.stringify(body));
  renameSync(`${dir}/${id}.res.tmp`, `${dir}/${id}.res.json`);
}
process.once("SIGTERM", () => {
  for (const c of clients.values()) c.close();
  process.exit(0);
});
