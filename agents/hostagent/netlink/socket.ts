/**
 * Netlink transport shared by the IPVS generic netlink family (ipvs/) and rtnetlink.
 *
 * API (all methods are async and never block the event loop):
 *
 *   const sock = NetlinkSocket.open(NETLINK_GENERIC);      // or NETLINK_ROUTE
 *   await sock.request({ type, flags?, payload, op });     // NLM_F_REQUEST|NLM_F_ACK; resolves with the
 *                                                          // reply messages before the ACK ([] for a bare
 *                                                          // ACK), rejects with NetlinkError
 *   await sock.dump({ type, flags?, payload, op });        // NLM_F_REQUEST|NLM_F_DUMP; collects the
 *                                                          // NLM_F_MULTI parts until NLMSG_DONE; rejects
 *                                                          // with NetlinkDumpInterruptedError (retryable)
 *                                                          // when a part carries NLM_F_DUMP_INTR
 *   await sock.batch([req, req, ...]);                     // many messages per sendmsg (bulk programming);
 *                                                          // one result { error?, replies } per request
 *   await sock.dumpMany([req, req, ...]);                  // many dumps back to back on this socket, one
 *                                                          // promise; one result { error?, replies } each
 *   await sock.dumpMany(reqs, { onPart });                 // ... handing each reply's bytes to onPart(index,
 *                                                          // buf, start, end) in place (no message objects)
 *   sock.counters.messages                                 // netlink messages sent (requests), for budgets
 *   sock.close();
 *
 * `payload` is everything after the 16-byte nlmsghdr (for genl: genlmsghdr + attributes; see genl.ts,
 * wire.ts). The socket fills nlmsg_len, nlmsg_seq and nlmsg_pid, adds NLM_F_REQUEST, and checks every
 * reply: it must come from the kernel (sender port 0), carry our port id in nlmsg_pid and the
 * sequence number of a request in flight; anything else is dropped and counted in `counters.stray`.
 * Every request has a timeout (default 30 s, per socket and per call) → NetlinkTimeoutError.
 * Errors are NetlinkError { code: "EEXIST" | "ENOENT" | "ESRCH" | ..., op, errno, extack, retryable }.
 *
 * Why the `netlink` npm package (0.3.0) rather than an own N-API addon: its native part is exactly
 * the small piece we would write ourselves — a SOCK_RAW AF_NETLINK socket, made non-blocking and
 * watched by a libuv uv_poll handle, with recvmsg (MSG_PEEK|MSG_TRUNC sizing, so large dump parts
 * are never truncated) and sendmsg (EAGAIN/ENOBUFS → retried when writable) run from the poll
 * callback on the event loop thread without ever waiting. It ships N-API prebuilds (ABI-stable
 * across Node versions, no compiler on hosts or in the test VM), and is MIT and small enough to
 * audit (src/binding.cc, ~570 lines). Everything protocol-related — framing, seq/port checks,
 * multipart, ACKs, errors, batching — is done here in TypeScript where it is unit-tested; we use
 * only its RawNetlinkSocket. The one missing knob (setsockopt NETLINK_EXT_ACK / NETLINK_CAP_ACK)
 * is optional. One exception, for speed only: the ~10^4 back-to-back destination dumps of a full IPVS
 * read run in our own small addon (native-dump.ts, native/dump.c — the dump loop in C on a pool
 * thread), because this package's per-datagram JS round trip cost about 3× ipvsadm's user CPU there.
 *
 * Note on "non-blocking": a netlink sendmsg to the kernel runs the request handler synchronously in
 * the syscall (that is how netlink works). batch() therefore bounds each sendmsg (maxMessages /
 * maxBytes) so one send stays short, and yields to the event loop between chunks.
 */
import netlinkPkg from "netlink";
import type { RawNetlinkSocket as RawSocketType, MessageInfo } from "netlink";
import { NetlinkDumpInterruptedError, NetlinkError, NetlinkTimeoutError, errnoNumber } from "./errors.js";
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_MIN_TYPE,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  decodeErrorPayload,
  encodeMessage,
  type NetlinkMessage,
} from "./wire.js";

export * from "./errors.js";
export type { NetlinkMessage } from "./wire.js";
export { NETLINK_GENERIC, NETLINK_ROUTE } from "./wire.js";

const { RawNetlinkSocket } = netlinkPkg;

export interface NetlinkRequest {
  /** nlmsg_type: the family id for generic netlink, RTM_* for rtnetlink. */
  type: number;
  /** Extra nlmsg_flags (NLM_F_CREATE, NLM_F_EXCL, ...). NLM_F_REQUEST is always added. */
  flags?: number;
  /** Bytes after the nlmsghdr. */
  payload: Uint8Array;
  /** Operation name used in errors, e.g. "IPVS_CMD_NEW_DEST" or "RTM_NEWADDR". */
  op: string;
}

export interface RequestOptions {
  timeoutMs?: number;
}

/**
 * Receives one reply of dump `index` of a dumpMany() call in place: its payload (the bytes after the
 * nlmsghdr) is `buf[start, end)`. `buf` is the received datagram and is only valid during the call
 * (copy what must outlive it). NLMSG_DONE / NLMSG_ERROR never reach it.
 */
export type DumpPartSink = (index: number, buf: Buffer, start: number, end: number) => void;

export interface DumpManyOptions extends RequestOptions {
  /**
   * Hand every reply to this function as it arrives instead of collecting it (the results' `replies`
   * stay empty). A dump that fails afterwards (kernel error, NLM_F_DUMP_INTR) has already delivered
   * some parts: its result carries the error, and the caller must drop what it got for that index.
   * If the sink throws, the call rejects with that error once the running dump has ended (no further
   * dumps are sent).
   */
  onPart?: DumpPartSink;
}

export interface BatchOptions extends RequestOptions {
  /** Messages per sendmsg. Default: what the receive buffer can hold if every one fails. */
  maxMessages?: number;
  /** Bytes per sendmsg (the kernel rejects a send larger than SO_SNDBUF - 32). */
  maxBytes?: number;
}

export interface BatchResult {
  error?: NetlinkError;
  replies: NetlinkMessage[];
}

/** One dump's outcome in dumpMany(): its parts, or why it failed (NetlinkDumpInterruptedError, kernel error). */
export interface DumpResult {
  error?: NetlinkError;
  replies: NetlinkMessage[];
}

export interface NetlinkSocketOptions {
  /** Default per-request timeout (ms). */
  timeoutMs?: number;
  /** SO_RCVBUF wish (the kernel caps it at net.core.rmem_max). */
  recvBufferSize?: number;
  /** SO_SNDBUF wish (capped at net.core.wmem_max). */
  sendBufferSize?: number;
  /**
   * Receive every datagram with one recvmsg into a buffer of this many bytes, instead of the default
   * peek-then-read (two recvmsg per datagram). It also makes the kernel size dump datagrams to it
   * (netlink_recvmsg records the reader's buffer length, netlink_dump allocates up to that, at most
   * 32 KiB), so a dump comes in fewer datagrams. A datagram larger than this fails everything in
   * flight (EMSGSIZE): only for sockets whose replies are known to fit — dumps always do at 32768.
   */
  recvMessageSize?: number;
}

export interface NetlinkCounters {
  /** Netlink request messages sent (each message in a batch counts once). */
  messages: number;
  /** sendmsg calls. */
  sends: number;
  dumps: number;
  /** Replies dropped: unknown seq, wrong port id, not from the kernel, undecodable. */
  stray: number;
}

/** The part of netlink's RawNetlinkSocket this transport uses. */
export interface RawTransport {
  send(msg: Uint8Array, options: { port?: number }, callback: (error?: { errno?: number }) => void): void;
  on(event: "message" | "truncatedMessage", listener: (msg: Buffer, rinfo: MessageInfo) => void): unknown;
  on(event: "error", listener: (err: { errno?: number; code?: string; syscall?: string }) => void): unknown;
  address(): { port: number };
  close(): void;
  ref(): void;
  unref(): void;
  getRecvBufferSize(): number;
  getSendBufferSize(): number;
}

type Pending =
  | { kind: "request"; op: string; replies: NetlinkMessage[]; done: boolean; resolve(m: NetlinkMessage[]): void; reject(e: Error): void; timer?: NodeJS.Timeout }
  | { kind: "dump"; op: string; replies: NetlinkMessage[]; done: boolean; interrupted: boolean; resolve(m: NetlinkMessage[]): void; reject(e: Error): void; timer?: NodeJS.Timeout; release(): void }
  | { kind: "batch"; op: string; chunk: Chunk; index: number }
  | ManyRun;

/** State of one dumpMany() call: a single pending entry, re-keyed to each dump's sequence number. */
interface ManyRun {
  kind: "many";
  op: string;
  reqs: NetlinkRequest[];
  results: DumpResult[];
  index: number;
  seq: number;
  replies: NetlinkMessage[];
  interrupted: boolean;
  startedAt: number;
  timeoutMs: number;
  onPart: DumpPartSink | undefined;
  /** What onPart threw (the call fails with it when the running dump ends). */
  sinkError: unknown;
  sinkFailed: boolean;
  /** The caller has its answer (all done, or failed); a dump may still run in the kernel. */
  settled: boolean;
  /** Dump slot released (no dump of ours runs in the kernel any more). */
  released: boolean;
  resolve(r: DumpResult[]): void;
  reject(e: Error): void;
  release(): void;
  timer?: NodeJS.Timeout;
}

interface Chunk {
  results: BatchResult[];
  seqs: number[];
  finalSeq: number;
  done: boolean;
  resolve(): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class NetlinkSocket {
  readonly protocol: number;
  /** Our port id (nl_pid); replies must carry it in nlmsg_pid. */
  readonly pid: number;
  readonly counters: NetlinkCounters = { messages: 0, sends: 0, dumps: 0, stray: 0 };

  private readonly raw: RawTransport;
  private readonly timeoutMs: number;
  private readonly pending = new Map<number, Pending>();
  private seq: number;
  private closed = false;
  private dumpQueue: Promise<void> = Promise.resolve();
  private referenced = false;
  private unrefScheduled = false;

  private constructor(protocol: number, opts: NetlinkSocketOptions, raw: RawTransport) {
    this.protocol = protocol;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.raw = raw;
    this.pid = this.raw.address().port;
    // Start from a random point so two sockets of one process are easy to tell apart in strace.
    this.seq = (Math.floor(Math.random() * 0x7fff_0000) + 1) >>> 0;
    this.raw.on("message", (buf: Buffer, rinfo: MessageInfo) => this.onDatagram(buf, rinfo));
    this.raw.on("truncatedMessage", () => {
      // Cannot happen with message peeking on; if it does, the data is lost: fail everything.
      this.failAll(new NetlinkError("recvmsg", errnoNumber("EMSGSIZE"), { message: "netlink: truncated datagram", retryable: true }));
    });
    this.raw.on("error", (err: { errno?: number; code?: string; syscall?: string }) => {
      // ENOBUFS: the receive queue overflowed and the kernel dropped replies (acks, dump parts):
      // nothing in flight can be trusted any more, so fail all of it as retryable.
      const errno = typeof err.errno === "number" ? Math.abs(err.errno) : errnoNumber("EIO");
      this.failAll(new NetlinkError(err.syscall ?? "netlink", errno, { retryable: true }));
    });
    this.raw.unref();
  }

  static open(protocol: number, opts: NetlinkSocketOptions = {}): NetlinkSocket {
    const raw: RawSocketType = new RawNetlinkSocket(protocol, {
      recvBufferSize: opts.recvBufferSize ?? 4 << 20,
      sendBufferSize: opts.sendBufferSize ?? 1 << 20,
      ...(opts.recvMessageSize ? { messagePeeking: false, msgBufferSize: opts.recvMessageSize } : {}),
    });
    return new NetlinkSocket(protocol, opts, raw);
  }

  /** Wrap an already-open raw socket (or a scripted one in unit tests of the protocol logic). */
  static fromRaw(protocol: number, raw: RawTransport, opts: NetlinkSocketOptions = {}): NetlinkSocket {
    return new NetlinkSocket(protocol, opts, raw);
  }

  get recvBufferSize(): number {
    return this.raw.getRecvBufferSize();
  }
  get sendBufferSize(): number {
    return this.raw.getSendBufferSize();
  }

  /** Send one request with NLM_F_ACK; resolve with the replies that precede the ACK. */
  request(req: NetlinkRequest, opts: RequestOptions = {}): Promise<NetlinkMessage[]> {
    this.checkOpen(req.op);
    return new Promise<NetlinkMessage[]>((resolve, reject) => {
      const seq = this.nextSeq();
      const p: Pending = { kind: "request", op: req.op, replies: [], done: false, resolve, reject };
      this.pending.set(seq, p);
      p.timer = setTimeout(() => {
        if (p.done) return;
        p.done = true;
        this.pending.delete(seq);
        this.updateRef();
        reject(new NetlinkTimeoutError(req.op, opts.timeoutMs ?? this.timeoutMs));
      }, opts.timeoutMs ?? this.timeoutMs);
      this.updateRef();
      const msg = encodeMessage({ type: req.type, flags: (req.flags ?? 0) | NLM_F_REQUEST | NLM_F_ACK, seq, pid: this.pid, payload: req.payload });
      this.sendRaw(msg, 1, (e) => {
        if (p.done) return;
        p.done = true;
        clearTimeout(p.timer);
        this.pending.delete(seq);
        this.updateRef();
        reject(e);
      }, req.op);
    });
  }

  /**
   * Dump request (NLM_F_DUMP). Dumps on one socket are serialised: the kernel allows one dump in
   * progress per socket (a second gets EBUSY), so a dump waits for the previous one's NLMSG_DONE —
   * even when the previous caller already gave up on a timeout.
   */
  dump(req: NetlinkRequest, opts: RequestOptions = {}): Promise<NetlinkMessage[]> {
    this.checkOpen(req.op);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<NetlinkMessage[]>((resolve, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        reject(e);
      };
      // One timer covers waiting in the queue plus the dump itself.
      const timer = setTimeout(() => fail(new NetlinkTimeoutError(req.op, timeoutMs)), timeoutMs);
      this.dumpQueue = this.dumpQueue.then(
        () =>
          new Promise<void>((release) => {
            if (settled || this.closed) {
              if (!settled) fail(new NetlinkError(req.op, errnoNumber("EBADF"), { message: `${req.op}: netlink socket closed` }));
              release();
              return;
            }
            const seq = this.nextSeq();
            const p: Pending = {
              kind: "dump",
              op: req.op,
              replies: [],
              done: false,
              interrupted: false,
              resolve: (m) => {
                clearTimeout(timer);
                if (!settled) {
                  settled = true;
                  resolve(m);
                }
              },
              reject: (e) => {
                clearTimeout(timer);
                fail(e);
              },
              release: () => {
                release();
              },
            };
            this.pending.set(seq, p);
            this.updateRef();
            this.counters.dumps++;
            const msg = encodeMessage({ type: req.type, flags: (req.flags ?? 0) | NLM_F_REQUEST | NLM_F_DUMP, seq, pid: this.pid, payload: req.payload });
            this.sendRaw(msg, 1, (e) => this.finishDump(seq, p, e), req.op);
          }),
      );
    });
  }

  /**
   * Many dumps back to back on this socket, for one promise. Each next request is sent from the
   * receive callback that saw the previous dump's NLMSG_DONE — no promise, timer or event-loop turn
   * per dump (a full IPVS read is one destination dump per service). Results are per request and in
   * order, like batch(): `{ replies }`, or `{ error }` for a dump that failed (kernel error, a
   * negative NLMSG_DONE status, NetlinkDumpInterruptedError for NLM_F_DUMP_INTR — retry those).
   * The promise rejects only on transport failures (sendmsg error, receive overrun, close) and on
   * NetlinkTimeoutError: every dump must finish within `timeoutMs` of its own start (checked by one
   * timer per call, re-armed only when it fires). Serialised with dump() like any other dump.
   * With `onPart` the replies are handed over in place as they arrive (see DumpManyOptions).
   */
  dumpMany(reqs: NetlinkRequest[], opts: DumpManyOptions = {}): Promise<DumpResult[]> {
    if (reqs.length === 0) return Promise.resolve([]);
    this.checkOpen(reqs[0]!.op);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return new Promise<DumpResult[]>((resolve, reject) => {
      this.dumpQueue = this.dumpQueue.then(
        () =>
          new Promise<void>((release) => {
            if (this.closed) {
              reject(new NetlinkError(reqs[0]!.op, errnoNumber("EBADF"), { message: `${reqs[0]!.op}: netlink socket closed` }));
              release();
              return;
            }
            const run: ManyRun = {
              kind: "many",
              op: reqs[0]!.op,
              reqs,
              results: new Array<DumpResult>(reqs.length),
              index: 0,
              seq: 0,
              replies: [],
              interrupted: false,
              startedAt: 0,
              timeoutMs,
              onPart: opts.onPart,
              sinkError: undefined,
              sinkFailed: false,
              settled: false,
              released: false,
              resolve,
              reject,
              release,
            };
            run.timer = setTimeout(() => this.checkManyDeadline(run), timeoutMs);
            this.sendNextDump(run);
            this.updateRef();
          }),
      );
    });
  }

  /**
   * Send many requests with as few sendmsg calls as the kernel allows. The kernel runs the messages
   * of one send in order (netlink_rcv_skb) and answers each with its own NLMSG_ERROR on failure, so
   * only the last message of each chunk asks for an ACK: that ACK proves every earlier message of
   * the chunk was processed, and any that failed has already reported its error by then. A chunk
   * holds at most `maxMessages` (sized so that even all-failing error replies fit the receive
   * buffer — an overflow would drop replies) and `maxBytes`.
   *
   * Not for dumps. Results are in request order; the promise rejects only on transport failures.
   */
  async batch(reqs: NetlinkRequest[], opts: BatchOptions = {}): Promise<BatchResult[]> {
    if (reqs.length === 0) return [];
    this.checkOpen(reqs[0]!.op);
    const maxMessages = Math.max(1, opts.maxMessages ?? Math.min(1024, Math.floor(this.recvBufferSize / 2048)));
    const maxBytes = Math.max(1024, opts.maxBytes ?? Math.min(256 * 1024, Math.floor(this.sendBufferSize / 2) - 64));
    const results: BatchResult[] = new Array(reqs.length);
    let i = 0;
    while (i < reqs.length) {
      const members: { seq: number; req: NetlinkRequest; index: number }[] = [];
      let bytes = 0;
      while (i < reqs.length && members.length < maxMessages) {
        const req = reqs[i]!;
        const size = 16 + ((req.payload.length + 3) & ~3);
        if (members.length > 0 && bytes + size > maxBytes) break;
        members.push({ seq: this.nextSeq(), req, index: i });
        bytes += size;
        i++;
      }
      // Frame the chunk straight into one buffer (nlmsghdr + payload + padding per message).
      const data = Buffer.allocUnsafe(bytes);
      let off = 0;
      members.forEach((m, k) => {
        const last = k === members.length - 1;
        const len = 16 + m.req.payload.length;
        data.writeUInt32LE(len, off);
        data.writeUInt16LE(m.req.type, off + 4);
        data.writeUInt16LE(((m.req.flags ?? 0) | NLM_F_REQUEST | (last ? NLM_F_ACK : 0)) & 0xffff, off + 6);
        data.writeUInt32LE(m.seq, off + 8);
        data.writeUInt32LE(this.pid, off + 12);
        data.set(m.req.payload, off + 16);
        data.fill(0, off + len, off + ((len + 3) & ~3));
        off += (len + 3) & ~3;
      });
      const chunkResults = await this.sendChunk(members, data, opts.timeoutMs ?? this.timeoutMs);
      members.forEach((m, k) => {
        results[m.index] = chunkResults[k]!;
      });
    }
    return results;
  }

  close(): void {
    if (this.closed) return;
    this.failAll(new NetlinkError("close", errnoNumber("EBADF"), { message: "netlink socket closed" }));
    this.closed = true;
    this.raw.close();
  }

  // ------------------------------------------------------------------------------------------

  private sendChunk(members: { seq: number; req: NetlinkRequest }[], data: Buffer, timeoutMs: number): Promise<BatchResult[]> {
    return new Promise<BatchResult[]>((resolve, reject) => {
      const chunk: Chunk = {
        results: members.map(() => ({ replies: [] })),
        seqs: members.map((m) => m.seq),
        finalSeq: members[members.length - 1]!.seq,
        done: false,
        resolve: () => resolve(chunk.results),
        reject,
      };
      members.forEach((m, index) => this.pending.set(m.seq, { kind: "batch", op: m.req.op, chunk, index }));
      chunk.timer = setTimeout(() => this.finishChunk(chunk, new NetlinkTimeoutError(members[0]!.req.op, timeoutMs)), timeoutMs);
      this.updateRef();
      this.sendRaw(data, members.length, (e) => this.finishChunk(chunk, e), members[0]!.req.op);
    });
  }

  /** Start dump `run.index`, or finish the run when all are done (or the caller gave up). */
  private sendNextDump(run: ManyRun): void {
    if (run.seq !== 0) this.pending.delete(run.seq);
    if (run.settled || run.index >= run.reqs.length || this.closed) {
      this.endMany(run);
      return;
    }
    const req = run.reqs[run.index]!;
    const seq = this.nextSeq();
    run.seq = seq;
    run.op = req.op;
    run.replies = [];
    run.interrupted = false;
    run.startedAt = performance.now();
    this.pending.set(seq, run);
    this.counters.dumps++;
    const msg = encodeMessage({ type: req.type, flags: (req.flags ?? 0) | NLM_F_REQUEST | NLM_F_DUMP, seq, pid: this.pid, payload: req.payload });
    this.sendRaw(msg, 1, (e) => {
      // sendmsg failed: the kernel never started this dump, so the slot is free.
      if (run.seq !== seq || run.released) return;
      this.pending.delete(seq);
      this.failMany(run, e);
      this.endMany(run);
    }, req.op);
  }

  /** NLMSG_DONE or NLMSG_ERROR of the current dump: record its result and go on. */
  private finishManyDump(run: ManyRun, err?: NetlinkError): void {
    if (run.sinkFailed && !run.settled) this.failMany(run, run.sinkError instanceof Error ? run.sinkError : new Error(String(run.sinkError)));
    if (!run.settled) {
      if (err) run.results[run.index] = { error: err, replies: [] };
      else if (run.interrupted) run.results[run.index] = { error: new NetlinkDumpInterruptedError(run.op), replies: [] };
      else run.results[run.index] = { replies: run.replies };
      run.index++;
    }
    this.sendNextDump(run);
  }

  private checkManyDeadline(run: ManyRun): void {
    if (run.settled) return;
    const elapsed = performance.now() - run.startedAt;
    if (elapsed >= run.timeoutMs) {
      // Give up, but keep the dump slot until the running dump's NLMSG_DONE arrives (see dump()).
      this.failMany(run, new NetlinkTimeoutError(run.op, run.timeoutMs));
      return;
    }
    run.timer = setTimeout(() => this.checkManyDeadline(run), run.timeoutMs - elapsed);
  }

  private failMany(run: ManyRun, err: Error): void {
    if (run.settled) return;
    run.settled = true;
    clearTimeout(run.timer);
    run.reject(err);
  }

  private endMany(run: ManyRun): void {
    if (run.seq !== 0) this.pending.delete(run.seq);
    if (!run.settled) {
      run.settled = true;
      clearTimeout(run.timer);
      if (this.closed) run.reject(new NetlinkError(run.op, errnoNumber("EBADF"), { message: `${run.op}: netlink socket closed` }));
      else run.resolve(run.results);
    }
    if (!run.released) {
      run.released = true;
      run.release();
    }
    this.updateRef();
  }

  private finishChunk(chunk: Chunk, err?: Error): void {
    if (chunk.done) return;
    chunk.done = true;
    clearTimeout(chunk.timer);
    for (const s of chunk.seqs) this.pending.delete(s);
    this.updateRef();
    if (err) chunk.reject(err);
    else chunk.resolve();
  }

  private finishDump(seq: number, p: Extract<Pending, { kind: "dump" }>, err?: Error): void {
    if (p.done) return;
    p.done = true;
    this.pending.delete(seq);
    this.updateRef();
    p.release();
    if (err) p.reject(err);
    else if (p.interrupted) p.reject(new NetlinkDumpInterruptedError(p.op));
    else p.resolve(p.replies);
  }

  private sendRaw(data: Buffer, messages: number, onError: (e: Error) => void, op: string): void {
    this.counters.messages += messages;
    this.counters.sends++;
    try {
      this.raw.send(data, { port: 0 }, (e) => {
        if (e) onError(new NetlinkError(op, typeof e.errno === "number" ? Math.abs(e.errno) : errnoNumber("EIO")));
      });
    } catch (e) {
      onError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private onDatagram(buf: Buffer, rinfo: MessageInfo): void {
    if (rinfo.port !== 0) {
      this.counters.stray++; // not from the kernel
      return;
    }
    // Framing first, as decodeMessages() checks it: a datagram that does not frame is dropped whole.
    // Then each message is read in place — no message object or payload view for the parts of a
    // dumpMany() with a sink (a full IPVS read is ~10^5 of them).
    const n = buf.length;
    let off = 0;
    while (off + NLMSG_HDRLEN <= n) {
      const len = buf.readUInt32LE(off);
      if (len < NLMSG_HDRLEN || off + len > n) {
        this.counters.stray++;
        return;
      }
      off += (len + 3) & ~3;
    }
    for (let i = off; i < n; i++) {
      if (buf[i] !== 0) {
        this.counters.stray++; // trailing garbage after the last message
        return;
      }
    }
    off = 0;
    while (off + NLMSG_HDRLEN <= n) {
      const len = buf.readUInt32LE(off);
      this.onMessageAt(buf, off, len);
      off += (len + 3) & ~3;
    }
  }

  private onMessageAt(buf: Buffer, off: number, len: number): void {
    const seq = buf.readUInt32LE(off + 8);
    const p = this.pending.get(seq);
    if (!p || buf.readUInt32LE(off + 12) !== this.pid) {
      this.counters.stray++;
      return;
    }
    const type = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    if (p.kind === "many" && p.onPart !== undefined && type >= NLMSG_MIN_TYPE) {
      if (flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (p.settled || p.sinkFailed) return;
      try {
        p.onPart(p.index, buf, off + NLMSG_HDRLEN, off + len);
      } catch (e) {
        p.sinkFailed = true;
        p.sinkError = e;
      }
      return;
    }
    this.onMessage({ type, flags, seq, pid: this.pid, payload: buf.subarray(off + NLMSG_HDRLEN, off + len) }, p);
  }

  private onMessage(m: NetlinkMessage, p: Pending): void {
    if (m.type === NLMSG_NOOP || m.type === NLMSG_OVERRUN) return;

    if (m.type === NLMSG_ERROR) {
      let e;
      try {
        e = decodeErrorPayload(m);
      } catch {
        e = { errno: errnoNumber("EBADMSG"), extack: undefined };
      }
      const err = e.errno === 0 ? undefined : new NetlinkError(p.op, e.errno, { extack: e.extack });
      if (p.kind === "request") {
        if (p.done) return;
        p.done = true;
        clearTimeout(p.timer);
        this.pending.delete(m.seq);
        this.updateRef();
        if (err) p.reject(err);
        else p.resolve(p.replies);
      } else if (p.kind === "dump") {
        this.finishDump(m.seq, p, err);
      } else if (p.kind === "many") {
        this.finishManyDump(p, err);
      } else {
        if (err) p.chunk.results[p.index]!.error = err;
        if (m.seq === p.chunk.finalSeq) this.finishChunk(p.chunk);
      }
      return;
    }

    if (p.kind === "many") {
      if (m.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG_DONE) {
        const status = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
        this.finishManyDump(p, status < 0 ? new NetlinkError(p.op, -status) : undefined);
        return;
      }
      p.replies.push(m);
      return;
    }
    if (p.kind === "dump") {
      if (m.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG_DONE) {
        // Since Linux 4.x NLMSG_DONE carries the dump's final status as an int.
        const status = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
        this.finishDump(m.seq, p, status < 0 ? new NetlinkError(p.op, -status) : undefined);
        return;
      }
      p.replies.push(m);
      return;
    }
    if (p.kind === "request") {
      if (m.type === NLMSG_DONE) return;
      p.replies.push(m);
      return;
    }
    p.chunk.results[p.index]!.replies.push(m);
  }

  private failAll(err: NetlinkError): void {
    const chunks = new Set<Chunk>();
    for (const [seq, p] of [...this.pending]) {
      if (p.kind === "request") {
        if (!p.done) {
          p.done = true;
          clearTimeout(p.timer);
          p.reject(new NetlinkError(p.op, err.errno, { retryable: err.retryable }));
        }
        this.pending.delete(seq);
      } else if (p.kind === "dump") {
        this.finishDump(seq, p, new NetlinkError(p.op, err.errno, { retryable: err.retryable }));
      } else if (p.kind === "many") {
        this.failMany(p, new NetlinkError(p.op, err.errno, { retryable: err.retryable }));
        this.endMany(p);
      } else {
        chunks.add(p.chunk);
      }
    }
    for (const c of chunks) this.finishChunk(c, err);
    this.updateRef();
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  private checkOpen(op: string): void {
    if (this.closed) throw new NetlinkError(op, errnoNumber("EBADF"), { message: `${op}: netlink socket closed` });
  }

  /**
   * Keep the process alive only while requests are in flight. The unref is deferred to the next
   * loop turn: back-to-back requests (a snapshot runs thousands of dumps) would otherwise pay two
   * native calls each.
   */
  private updateRef(): void {
    if (this.closed) return;
    if (this.pending.size > 0) {
      if (!this.referenced) {
        this.referenced = true;
        this.raw.ref();
      }
      return;
    }
    if (!this.referenced || this.unrefScheduled) return;
    this.unrefScheduled = true;
    setImmediate(() => {
      this.unrefScheduled = false;
      if (!this.closed && this.pending.size === 0 && this.referenced) {
        this.referenced = false;
        this.raw.unref();
      }
    });
  }

}
