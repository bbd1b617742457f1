// Typed IPVS API over generic netlink: socket.ts moves bytes, codec.ts builds and reads them, this
// file only pairs requests with decoders and names the operations.
//
// Request budget (asserted by bench/ipvs.ts): one destination change is one IPVS_CMD_SET_DEST
// message; `requests` counts every netlink message this client sent (all sockets).
import { Worker } from "node:worker_threads";
import { NetlinkError, NetlinkDumpInterruptedError } from "../errors.js";
import { resolveFamily } from "../genl.js";
import { nativeDumpAvailable, nativeDumpPacked, packRequests } from "../native-dump.js";
import { NETLINK_GENERIC, NetlinkSocket, type BatchOptions, type NetlinkSocketOptions } from "../socket.js";
import {
  cmdName,
  decodeDaemon,
  decodeDestination,
  decodeDestinationAt,
  decodeInfo,
  decodeService,
  decodeTimeouts,
  encodeDelDaemon,
  encodeDelDest,
  encodeDelService,
  encodeDumpDaemons,
  encodeDumpDests,
  encodeDumpServices,
  encodeFlush,
  encodeGetConfig,
  encodeGetInfo,
  encodeGetService,
  encodeNewDaemon,
  encodeNewDest,
  encodeNewService,
  encodeSetConfig,
  encodeSetDest,
  encodeSetService,
  encodeZero,
  packDumpDestsFromServiceReplies,
  type DecodeOptions,
  type IpvsDaemon,
  type IpvsDaemonState,
  type IpvsDestination,
  type IpvsDestinationKey,
  type IpvsInfo,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsTimeouts,
} from "./codec.js";
import * as C from "./constants.js";
import { deserializeError, serializeError, unpackParts, type DumpJob, type DumpJobResult } from "./dump-wire.js";

export * from "./codec.js";

/** NEW/SET_SERVICE failed with ENOENT: the kernel has no such scheduler (or persistence engine). */
export class IpvsSchedulerUnavailableError extends NetlinkError {
  override name = "IpvsSchedulerUnavailableError";
  readonly scheduler: string;
  constructor(op: string, scheduler: string, peName: string | undefined) {
    super(op, 2 /* ENOENT */, {
      message: `${op}: scheduler "${scheduler}"${peName ? ` or persistence engine "${peName}"` : ""} is not available in this kernel (ENOENT; module ip_vs_${scheduler} missing?)`,
      retryable: false,
    });
    this.scheduler = scheduler;
  }
}

export interface IpvsServiceState {
  service: IpvsService;
  destinations: IpvsDestination[];
}

/** One change for IpvsClient.batch(). Order matters: services before their destinations. */
export type IpvsOperation =
  | { op: "newService"; service: IpvsService }
  | { op: "setService"; service: IpvsService }
  | { op: "delService"; service: IpvsServiceKey }
  | { op: "newDestination"; service: IpvsServiceKey; destination: IpvsDestination }
  | { op: "setDestination"; service: IpvsServiceKey; destination: IpvsDestination }
  | { op: "delDestination"; service: IpvsServiceKey; destination: IpvsDestinationKey };

/**
 * recvmsg buffer of the client's sockets (NetlinkSocketOptions.recvMessageSize): one recvmsg per
 * datagram instead of peek + read, and the kernel then fills dump datagrams up to this size instead
 * of ~3.7 KiB (NLMSG_GOODSIZE), so the destination dump of a service with 10 real servers (~380 bytes
 * each with counters) is one datagram plus NLMSG_DONE instead of three datagrams. Every IPVS reply
 * fits: dump datagrams are sized to the reader's buffer, the other replies are built with
 * NLMSG_GOODSIZE. 8 KiB rather than the kernel's 32 KiB cap: the addon zero-fills a buffer of this
 * size per datagram (measured on the host: 32 KiB cost more per dump than it saved).
 */
export const IPVS_RECV_MESSAGE_SIZE = 8192;

export interface IpvsClientOptions extends NetlinkSocketOptions {
  /** Sockets used to run per-service destination dumps side by side in snapshot(). Default 8. */
  dumpParallelism?: number;
  /** Attempts for a dump that comes back with NLM_F_DUMP_INTR. Default 3. */
  dumpAttempts?: number;
  /**
   * Worker threads (dump-worker.ts) that run part of snapshot()'s destination dumps on sockets of
   * their own, so a full read uses more than one CPU. Default 0 (everything on this thread). They
   * are started by open() and stopped by close().
   */
  dumpWorkers?: number;
  /** Share of the destination dumps given to the workers (0..1). Default 1.3 × workers / (workers + 1) (0.65 for one: this thread also decodes everything), at most 0.9. */
  dumpWorkerShare?: number;
  /** Sockets per worker. Default: dumpParallelism. */
  dumpWorkerParallelism?: number;
  /** The worker's entry (dump-worker.ts / .js next to this file by default; a bundle must pass its own). */
  dumpWorkerScript?: string | URL;
  /**
   * Run snapshot()'s destination dumps in the netlink dump addon (../native-dump.ts: the dump loop in
   * C on libuv pool threads, replies packed per batch, decoded here as batches arrive). Default: when
   * the addon loaded. true with the addon missing fails snapshot() with the load error. When on, the
   * dump workers and dumpParallelism are not used by snapshot().
   */
  nativeDumps?: boolean;
  /**
   * Addon batches in flight at once (each on its own pool thread and socket), 1..4. Default 1: the
   * kernel runs IPVS dumps one at a time anyway (ip_vs_genl_dump_dests holds __ip_vs_mutex; in the VM
   * at 2 000 services two threads took 0.6–1.7 s, one 0.7–1.5 s), and the other CPU decodes the
   * previous batch meanwhile.
   */
  nativeDumpThreads?: number;
  /** Services per addon batch. Default: enough for ~16 batches per thread, 64..512. */
  nativeDumpBatch?: number;
}

interface DumpWorker {
  worker: Worker;
  /** Messages the worker's sockets sent, as last reported. */
  messages: number;
  jobs: Map<number, { resolve(r: DumpJobResult): void; reject(e: Error): void }>;
  failed?: Error;
}

export class IpvsClient {
  readonly familyId: number;
  private readonly sock: NetlinkSocket;
  private readonly extra: NetlinkSocket[] = [];
  private readonly opts: IpvsClientOptions;
  private workers: DumpWorker[] = [];
  private jobIds = 0;
  /** Dump requests the addon sent. */
  private nativeMessages = 0;

  private constructor(sock: NetlinkSocket, familyId: number, opts: IpvsClientOptions) {
    this.sock = sock;
    this.familyId = familyId;
    this.opts = opts;
  }

  /** Open a generic netlink socket and resolve the "IPVS" family (ENOENT: no ip_vs in this kernel). */
  static async open(options: IpvsClientOptions = {}): Promise<IpvsClient> {
    const opts: IpvsClientOptions = { ...options, recvMessageSize: options.recvMessageSize ?? IPVS_RECV_MESSAGE_SIZE };
    const sock = NetlinkSocket.open(NETLINK_GENERIC, opts);
    try {
      const fam = await resolveFamily(sock, C.IPVS_GENL_NAME);
      const client = new IpvsClient(sock, fam.id, opts);
      try {
        await client.startWorkers(opts.dumpWorkers ?? 0);
      } catch (e) {
        client.close();
        throw e;
      }
      return client;
    } catch (e) {
      sock.close();
      throw e;
    }
  }

  /** Netlink messages sent by this client so far (family lookup and its dump workers' dumps included). */
  get requests(): number {
    return this.sock.counters.messages + this.extra.reduce((n, s) => n + s.counters.messages, 0) + this.workers.reduce((n, w) => n + w.messages, 0) + this.nativeMessages;
  }

  /** Whether snapshot() runs its destination dumps in the netlink dump addon. */
  get nativeDumps(): boolean {
    return this.opts.nativeDumps ?? nativeDumpAvailable();
  }

  close(): void {
    this.sock.close();
    for (const s of this.extra) s.close();
    for (const w of this.workers.splice(0)) {
      w.failed ??= new NetlinkError("close", 9 /* EBADF */, { message: "IPVS client closed" });
      for (const j of w.jobs.values()) j.reject(w.failed);
      w.jobs.clear();
      void w.worker.terminate();
    }
  }

  // ---- services ----

  /** All virtual services, one dump. `{ stats: false }` skips decoding the counters. */
  async listServices(opts: DecodeOptions = {}): Promise<IpvsService[]> {
    const msgs = await this.dump(this.sock, encodeDumpServices(), "IPVS_CMD_GET_SERVICE(dump)");
    return msgs.map((m) => decodeService(m.payload, opts));
  }

  /** One service, or undefined when the kernel has none with this key (ESRCH). */
  async getService(key: IpvsServiceKey): Promise<IpvsService | undefined> {
    try {
      const [reply] = await this.do(encodeGetService(key), C.IPVS_CMD_GET_SERVICE);
      return reply ? decodeService(reply) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === "ESRCH") return undefined;
      throw e;
    }
  }

  async newService(svc: IpvsService): Promise<void> {
    await this.doService(C.IPVS_CMD_NEW_SERVICE, svc);
  }

  async setService(svc: IpvsService): Promise<void> {
    await this.doService(C.IPVS_CMD_SET_SERVICE, svc);
  }

  async delService(key: IpvsServiceKey): Promise<void> {
    await this.do(encodeDelService(key), C.IPVS_CMD_DEL_SERVICE);
  }

  // ---- destinations ----

  async listDestinations(key: IpvsServiceKey, opts: DecodeOptions = {}): Promise<IpvsDestination[]> {
    return this.destsOn(this.sock, key, opts);
  }

  async newDestination(key: IpvsServiceKey, dest: IpvsDestination): Promise<void> {
    await this.do(encodeNewDest(key, dest), C.IPVS_CMD_NEW_DEST);
  }

  async setDestination(key: IpvsServiceKey, dest: IpvsDestination): Promise<void> {
    await this.do(encodeSetDest(key, dest), C.IPVS_CMD_SET_DEST);
  }

  async delDestination(key: IpvsServiceKey, dest: IpvsDestinationKey): Promise<void> {
    await this.do(encodeDelDest(key, dest), C.IPVS_CMD_DEL_DEST);
  }

  // ---- config, info, counters ----

  async getConfig(): Promise<IpvsTimeouts> {
    const [reply] = await this.do(encodeGetConfig(), C.IPVS_CMD_GET_CONFIG);
    if (!reply) throw new NetlinkError("IPVS_CMD_GET_CONFIG", 61 /* ENODATA */, { message: "IPVS_CMD_GET_CONFIG: no reply" });
    return decodeTimeouts(reply);
  }

  /** Set connection timeouts (seconds); 0 or missing leaves a value unchanged. */
  async setConfig(t: Partial<IpvsTimeouts>): Promise<void> {
    await this.do(encodeSetConfig(t), C.IPVS_CMD_SET_CONFIG);
  }

  async getInfo(): Promise<IpvsInfo> {
    const [reply] = await this.do(encodeGetInfo(), C.IPVS_CMD_GET_INFO);
    if (!reply) throw new NetlinkError("IPVS_CMD_GET_INFO", 61 /* ENODATA */, { message: "IPVS_CMD_GET_INFO: no reply" });
    return decodeInfo(reply);
  }

  /** Zero the counters of one service, or of all services. */
  async zero(key?: IpvsServiceKey): Promise<void> {
    await this.do(encodeZero(key), C.IPVS_CMD_ZERO);
  }

  /** Remove every service and destination. */
  async flush(): Promise<void> {
    await this.do(encodeFlush(), C.IPVS_CMD_FLUSH);
  }

  // ---- sync daemons ----

  async listDaemons(): Promise<IpvsDaemon[]> {
    const msgs = await this.dump(this.sock, encodeDumpDaemons(), "IPVS_CMD_GET_DAEMON(dump)");
    return msgs.map((m) => decodeDaemon(m.payload));
  }

  async newDaemon(d: IpvsDaemon): Promise<void> {
    await this.do(encodeNewDaemon(d), C.IPVS_CMD_NEW_DAEMON);
  }

  async delDaemon(state: IpvsDaemonState): Promise<void> {
    await this.do(encodeDelDaemon({ state }), C.IPVS_CMD_DEL_DAEMON);
  }

  // ---- bulk ----

  /**
   * Apply many changes with few sendmsg calls (socket.batch). Returns one entry per operation:
   * undefined on success, the typed error otherwise. The kernel runs them in the given order.
   */
  async batch(ops: IpvsOperation[], opts?: BatchOptions): Promise<(NetlinkError | undefined)[]> {
    const reqs = ops.map((o) => {
      const [payload, cmd] = encodeOperation(o);
      return { type: this.familyId, payload, op: cmdName(cmd) };
    });
    const results = await this.sock.batch(reqs, opts);
    return results.map((r, i) => (r.error ? this.mapError(r.error, ops[i]!) : undefined));
  }

  /**
   * Everything IPVS holds: one dump of all services, then the destinations of each service. IPVS
   * can only dump the destinations of one service at a time (IPVS_CMD_GET_DEST needs a service
   * and has no doit), so those dumps are spread over `dumpParallelism` sockets, each running its
   * share back to back (NetlinkSocket.dumpMany: no promise or timer per dump), and every reply is
   * decoded in place as it arrives (onPart: no message object or payload view per destination).
   * With `dumpWorkers`, worker threads run `dumpWorkerShare` of them on sockets of their own and pass
   * back the raw payloads; all decoding happens here. A dump interrupted by a concurrent change
   * (NLM_F_DUMP_INTR) is run again, up to `dumpAttempts` times in all. A worker that dies fails this
   * call; later calls run without it.
   */
  async snapshot(opts: DecodeOptions = {}): Promise<IpvsServiceState[]> {
    const op = "IPVS_CMD_GET_DEST(dump)";
    if (this.nativeDumps) {
      const replies = await this.nativeServiceReplies();
      const out = new Array<IpvsServiceState>(replies.length);
      // The destination dumps start now (from the raw replies); the services are decoded meanwhile,
      // before any batch can come back.
      const dests = this.nativeDests(out, replies, opts, op);
      dests.catch(() => {}); // awaited below; a decode error here must not leave it unhandled
      for (let i = 0; i < replies.length; i++) out[i] = { service: decodeService(replies[i]!, opts), destinations: [] };
      await dests;
      return out;
    }
    const services = await this.listServices(opts);
    const out: IpvsServiceState[] = services.map((service) => ({ service, destinations: [] }));
    // The first `split` services go to the workers (each a contiguous part), the rest stay here.
    const workers = this.workers.filter((w) => !w.failed);
    const share = workers.length === 0 ? 0 : Math.min(0.9, Math.max(0, this.opts.dumpWorkerShare ?? Math.min(0.9, (1.3 * workers.length) / (workers.length + 1))));
    const split = Math.floor(out.length * share);
    const local = out.length - split;
    const parallel = Math.max(1, Math.min(this.opts.dumpParallelism ?? 8, local));
    while (this.extra.length < parallel - 1) this.extra.push(NetlinkSocket.open(NETLINK_GENERIC, this.opts));
    const socks = local === 0 ? [] : [this.sock, ...this.extra.slice(0, parallel - 1)];
    const retry = async (i: number, error: NetlinkError, sock: NetlinkSocket) => {
      if (!(error instanceof NetlinkDumpInterruptedError) || (this.opts.dumpAttempts ?? 3) <= 1) throw error;
      // dump() makes the remaining attempts.
      out[i]!.destinations = await this.destsOn(sock, out[i]!.service, opts, 1);
    };
    await Promise.all([
      ...workers.map(async (w, k) => {
        const from = Math.floor((k * split) / workers.length);
        const to = Math.floor(((k + 1) * split) / workers.length);
        if (to <= from) return;
        const payloads: Uint8Array[] = [];
        for (let i = from; i < to; i++) payloads.push(encodeDumpDests(out[i]!.service));
        const res = await this.runJob(w, { familyId: this.familyId, op, payloads, parallel: this.opts.dumpWorkerParallelism ?? this.opts.dumpParallelism ?? 8, timeoutMs: this.opts.timeoutMs });
        if (!res.ok) throw deserializeError(res.error);
        const errors = res.errors;
        unpackParts(
          res.packed,
          to - from,
          () => {},
          (j, buf, start, end) => {
            if (errors[j]) return; // parts of a dump that failed afterwards
            const e = out[from + j]!;
            e.destinations.push(decodeDestinationAt(buf, start, end, e.service.family, opts));
          },
        );
        for (let j = 0; j < errors.length; j++) {
          const e = errors[j];
          if (e) await retry(from + j, deserializeError(e), this.sock);
        }
      }),
      ...socks.map(async (s, k) => {
        // Socket k takes a contiguous share of the services.
        const from = split + Math.floor((k * local) / socks.length);
        const to = split + Math.floor(((k + 1) * local) / socks.length);
        const reqs = [];
        for (let i = from; i < to; i++) reqs.push({ type: this.familyId, payload: encodeDumpDests(out[i]!.service), op });
        const results = await s.dumpMany(reqs, {
          onPart: (j, buf, start, end) => {
            const e = out[from + j]!;
            e.destinations.push(decodeDestinationAt(buf, start, end, e.service.family, opts));
          },
        });
        for (let i = from; i < to; i++) {
          const r = results[i - from]!;
          if (r.error) {
            out[i]!.destinations = []; // what it delivered before failing
            await retry(i, r.error, s);
          }
        }
      }),
    ]);
    return out;
  }

  // ------------------------------------------------------------------------------------------

  /**
   * snapshot()'s destination dumps through the addon: the services cut into batches, `threads`
   * batches in flight (each a pool thread with its own socket), each batch decoded on this thread
   * when it arrives while the others keep dumping. Same outcome rules as the dumpMany path: a dump
   * with NLM_F_DUMP_INTR is run again (dump(), up to dumpAttempts in all), any other error fails the
   * call, as do transport errors and timeouts.
   */
  /**
   * The service dump's reply payloads, through the addon too (32 KiB datagrams, no JS per datagram),
   * retried on NLM_F_DUMP_INTR like dump().
   */
  private async nativeServiceReplies(): Promise<Buffer[]> {
    const op = "IPVS_CMD_GET_SERVICE(dump)";
    const attempts = Math.max(1, this.opts.dumpAttempts ?? 3);
    for (let i = 1; ; i++) {
      const res = await nativeDumpPacked(NETLINK_GENERIC, this.familyId, packRequests([encodeDumpServices()]), 1, op, { timeoutMs: this.opts.timeoutMs });
      this.nativeMessages += res.messages;
      const err = res.errors[0];
      if (err && (!(err instanceof NetlinkDumpInterruptedError) || i >= attempts)) throw err;
      if (err) continue;
      const replies: Buffer[] = [];
      unpackParts([res.packed], 1, () => {}, (_j, buf, start, end) => replies.push(buf.subarray(start, end)));
      return replies;
    }
  }

  private async nativeDests(out: IpvsServiceState[], serviceReplies: Buffer[], opts: DecodeOptions, op: string): Promise<void> {
    const n = out.length;
    if (n === 0) return;
    const threads = Math.max(1, Math.min(4, this.opts.nativeDumpThreads ?? 1));
    const size = Math.max(1, this.opts.nativeDumpBatch ?? Math.min(512, Math.max(64, Math.ceil(n / (threads * 16)))));
    const batches: [number, number][] = [];
    for (let from = 0; from < n; from += size) batches.push([from, Math.min(n, from + size)]);
    let next = 0;
    // After a failure no new batch starts; the ones in flight end on their own (their sockets close).
    let failed = false;
    const interrupted: number[] = [];
    const lane = async () => {
      try {
        await run();
      } catch (e) {
        failed = true;
        throw e;
      }
    };
    const run = async () => {
      for (let pending = start(); pending; ) {
        const { from, res } = await pending;
        pending = start(); // keep the pool thread busy while this batch is decoded
        this.nativeMessages += res.messages;
        unpackParts(
          [res.packed],
          res.errors.length,
          () => {},
          (j, buf, s, e) => {
            const st = out[from + j]!;
            st.destinations.push(decodeDestinationAt(buf, s, e, st.service.family, opts));
          },
        );
        res.errors.forEach((err, j) => {
          if (!err) return;
          if (!(err instanceof NetlinkDumpInterruptedError) || (this.opts.dumpAttempts ?? 3) <= 1) throw err;
          interrupted.push(from + j);
        });
      }
    };
    const start = () => {
      if (failed || next >= batches.length) return undefined;
      const [from, to] = batches[next++]!;
      const reqs = packDumpDestsFromServiceReplies(serviceReplies, from, to);
      const p = nativeDumpPacked(NETLINK_GENERIC, this.familyId, reqs, to - from, op, { timeoutMs: this.opts.timeoutMs }).then((res) => ({ from, res }));
      p.catch(() => {
        failed = true; // and no unhandled rejection for a batch whose lane already gave up
      });
      return p;
    };
    await Promise.all(Array.from({ length: Math.min(threads, batches.length) }, lane));
    // dump() makes the remaining attempts.
    for (const i of interrupted) out[i]!.destinations = await this.destsOn(this.sock, out[i]!.service, opts, 1);
  }

  private async startWorkers(n: number): Promise<void> {
    if (n <= 0) return;
    const script = this.opts.dumpWorkerScript ?? new URL(import.meta.url.endsWith(".ts") ? "./dump-worker.ts" : "./dump-worker.js", import.meta.url);
    const socket = { timeoutMs: this.opts.timeoutMs, recvBufferSize: this.opts.recvBufferSize, sendBufferSize: this.opts.sendBufferSize, recvMessageSize: this.opts.recvMessageSize };
    const started = Array.from({ length: n }, () => {
      const w: DumpWorker = { worker: new Worker(script, { workerData: { socket } }), messages: 0, jobs: new Map() };
      this.workers.push(w);
      return new Promise<void>((resolve, reject) => {
        const fail = (e: Error) => {
          w.failed ??= e;
          for (const j of w.jobs.values()) j.reject(e);
          w.jobs.clear();
          reject(e);
        };
        w.worker.on("message", (m: DumpJobResult | { ready: true }) => {
          if ("ready" in m) {
            w.worker.unref(); // idle workers never keep the process alive
            resolve();
            return;
          }
          w.messages = Math.max(w.messages, m.messages);
          const job = w.jobs.get(m.id);
          w.jobs.delete(m.id);
          if (w.jobs.size === 0) w.worker.unref();
          job?.resolve(m);
        });
        w.worker.on("error", (e) => fail(e));
        w.worker.on("exit", (code) => fail(new Error(`IPVS dump worker exited (code ${code})`)));
      });
    });
    await Promise.all(started);
  }

  private runJob(w: DumpWorker, job: Omit<DumpJob, "id">): Promise<DumpJobResult> {
    if (w.failed) return Promise.resolve({ id: -1, ok: false, error: serializeError(w.failed), messages: w.messages });
    const id = ++this.jobIds;
    return new Promise<DumpJobResult>((resolve, reject) => {
      w.jobs.set(id, { resolve, reject });
      w.worker.ref();
      w.worker.postMessage({ ...job, id } satisfies DumpJob);
    });
  }

  private async destsOn(sock: NetlinkSocket, key: IpvsServiceKey, opts: DecodeOptions, attemptsMade = 0): Promise<IpvsDestination[]> {
    const msgs = await this.dump(sock, encodeDumpDests(key), "IPVS_CMD_GET_DEST(dump)", attemptsMade);
    return msgs.map((m) => decodeDestination(m.payload, key.family, opts));
  }

  private async dump(sock: NetlinkSocket, payload: Buffer, op: string, attemptsMade = 0) {
    const attempts = Math.max(1, this.opts.dumpAttempts ?? 3);
    for (let i = attemptsMade + 1; ; i++) {
      try {
        return await sock.dump({ type: this.familyId, payload, op });
      } catch (e) {
        if (!(e instanceof NetlinkDumpInterruptedError) || i >= attempts) throw e;
      }
    }
  }

  private async do(payload: Buffer, cmd: number) {
    const replies = await this.sock.request({ type: this.familyId, payload, op: cmdName(cmd) });
    return replies.map((r) => r.payload);
  }

  private async doService(cmd: number, svc: IpvsService): Promise<void> {
    // HASHED is the kernel's own bookkeeping bit: passing it to NEW_SERVICE would make the kernel
    // believe the service is already hashed and never insert it (ip_vs_svc_hash).
    const clean = { ...svc, flags: svc.flags & ~C.IP_VS_SVC_F_HASHED };
    const payload = cmd === C.IPVS_CMD_NEW_SERVICE ? encodeNewService(clean) : encodeSetService(clean);
    try {
      await this.do(payload, cmd);
    } catch (e) {
      throw e instanceof NetlinkError ? this.mapError(e, { op: cmd === C.IPVS_CMD_NEW_SERVICE ? "newService" : "setService", service: clean }) : e;
    }
  }

  private mapError(e: NetlinkError, o: IpvsOperation): NetlinkError {
    if (e.code === "ENOENT" && (o.op === "newService" || o.op === "setService")) {
      return new IpvsSchedulerUnavailableError(e.op, o.service.scheduler, o.service.peName);
    }
    return e;
  }
}

function encodeOperation(o: IpvsOperation): [Buffer, number] {
  switch (o.op) {
    case "newService":
      return [encodeNewService({ ...o.service, flags: o.service.flags & ~C.IP_VS_SVC_F_HASHED }), C.IPVS_CMD_NEW_SERVICE];
    case "setService":
      return [encodeSetService({ ...o.service, flags: o.service.flags & ~C.IP_VS_SVC_F_HASHED }), C.IPVS_CMD_SET_SERVICE];
    case "delService":
      return [encodeDelService(o.service), C.IPVS_CMD_DEL_SERVICE];
    case "newDestination":
      return [encodeNewDest(o.service, o.destination), C.IPVS_CMD_NEW_DEST];
    case "setDestination":
      return [encodeSetDest(o.service, o.destination), C.IPVS_CMD_SET_DEST];
    case "delDestination":
      return [encodeDelDest(o.service, o.destination), C.IPVS_CMD_DEL_DEST];
  }
}
