// What IpvsClient.snapshot() and its dump workers (dump-worker.ts) exchange: a job (the dump
// requests), and the replies of every dump packed into transferable buffers (one per worker socket,
// each holding a contiguous run of the dumps), so the main thread receives ~10^5 destination payloads
// as a few ArrayBuffers instead of ~10^5 cloned objects. The worker copies each reply straight from
// the received datagram into its socket's buffer (ReplyPacker as NetlinkSocket.dumpMany's onPart).
//
// Packed results, little-endian, per request in order: u32 message count, then per message u32
// length + the genl payload (padded to 4 bytes). A failed dump has an entry in `errors`; whatever it
// delivered before failing may be packed too and is ignored.
import { NetlinkDumpInterruptedError, NetlinkError, NetlinkTimeoutError } from "../errors.js";
import { ensureCapacity } from "../wire.js";

export interface DumpJob {
  id: number;
  familyId: number;
  op: string;
  /** Request payloads (genlmsghdr + attributes), one per dump. */
  payloads: Uint8Array[];
  /** Sockets the worker runs the dumps on, side by side. */
  parallel: number;
  timeoutMs?: number;
}

export interface SerializedNetlinkError {
  name: string;
  op: string;
  errno: number;
  extack?: string;
  retryable: boolean;
  timeoutMs?: number;
  message: string;
}

export type DumpJobResult =
  | { id: number; ok: true; packed: ArrayBuffer[]; errors: (SerializedNetlinkError | null)[]; messages: number }
  | { id: number; ok: false; error: SerializedNetlinkError; messages: number };

export function serializeError(e: unknown): SerializedNetlinkError {
  if (e instanceof NetlinkError) {
    return {
      name: e.name,
      op: e.op,
      errno: e.errno,
      extack: e.extack,
      retryable: e.retryable,
      timeoutMs: e instanceof NetlinkTimeoutError ? e.timeoutMs : undefined,
      message: e.message,
    };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, op: "dump worker", errno: 5 /* EIO */, retryable: false, message: err.message };
}

/** The same typed error on this side of the thread boundary. */
export function deserializeError(s: SerializedNetlinkError): NetlinkError {
  if (s.name === "NetlinkTimeoutError") return new NetlinkTimeoutError(s.op, s.timeoutMs ?? 0);
  if (s.name === "NetlinkDumpInterruptedError") return new NetlinkDumpInterruptedError(s.op);
  return new NetlinkError(s.op, s.errno, { extack: s.extack, retryable: s.retryable, message: s.message });
}

/**
 * Packs the replies of consecutive dumps as they arrive — `add` is a NetlinkSocket.dumpMany onPart —
 * into one growing buffer; `finish(count)` closes the dumps up to `count` and returns the bytes.
 */
export class ReplyPacker {
  private buf: Buffer;
  private len = 0;
  /** Dump whose count slot is open (-1: none yet), where that slot is, and its count so far. */
  private dump = -1;
  private countAt = 0;
  private count = 0;

  constructor(initial = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  add(index: number, data: Buffer, start: number, end: number): void {
    if (index !== this.dump) this.openDump(index);
    const n = end - start;
    const padded = (n + 3) & ~3;
    this.reserve(4 + padded);
    const b = this.buf;
    b.writeUInt32LE(n, this.len);
    data.copy(b, this.len + 4, start, end);
    for (let i = this.len + 4 + n; i < this.len + 4 + padded; i++) b[i] = 0;
    this.len += 4 + padded;
    this.count++;
  }

  /** The packed dumps 0..count-1 (dumps that delivered nothing get count 0) as an ArrayBuffer of their own. */
  finish(count: number): ArrayBuffer {
    if (count > 0) this.openDump(count - 1);
    this.closeDump();
    const out = new ArrayBuffer(this.len);
    new Uint8Array(out).set(this.buf.subarray(0, this.len));
    return out;
  }

  private openDump(index: number): void {
    if (index < this.dump) throw new Error(`dump worker: parts of dump ${index} after dump ${this.dump}`);
    while (this.dump < index) {
      this.closeDump();
      this.reserve(4);
      this.dump++;
      this.countAt = this.len;
      this.count = 0;
      this.len += 4;
    }
  }

  private closeDump(): void {
    if (this.dump >= 0) this.buf.writeUInt32LE(this.count, this.countAt);
  }

  private reserve(n: number): void {
    this.buf = ensureCapacity(this.buf, this.len, n);
  }
}

/**
 * Walk packed buffers holding `count` dumps in all, in order: `onDump(index, parts)` at the start
 * of each dump, then `onPart(index, buf, start, end)` for each of its payloads (buf[start, end), in
 * place). Throws on malformed input.
 */
export function unpackParts(
  packed: ArrayBuffer[],
  count: number,
  onDump: (index: number, parts: number) => void,
  onPart: (index: number, buf: Buffer, start: number, end: number) => void,
): void {
  let i = 0;
  for (const ab of packed) {
    const b = Buffer.from(ab);
    let off = 0;
    while (off < b.length) {
      if (i >= count) throw new Error(`dump worker: ${b.length - off} bytes left after ${count} dumps`);
      if (off + 4 > b.length) throw new Error(`dump worker: packed replies end early (dump ${i} of ${count})`);
      const n = b.readUInt32LE(off);
      off += 4;
      onDump(i, n);
      for (let j = 0; j < n; j++) {
        const len = off + 4 <= b.length ? b.readUInt32LE(off) : -1;
        if (len < 0 || off + 4 + len > b.length) throw new Error(`dump worker: packed reply out of bounds (dump ${i})`);
        onPart(i, b, off + 4, off + 4 + len);
        off += 4 + ((len + 3) & ~3);
      }
      i++;
    }
  }
  if (i !== count) throw new Error(`dump worker: packed replies end early (dump ${i} of ${count})`);
}
