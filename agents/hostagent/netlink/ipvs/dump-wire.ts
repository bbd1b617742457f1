// What IpvsClient.snapshot() and its dump workers (dump-worker.ts) exchange: a job (the dump
// requests), and the replies of every dump packed into one transferable buffer, so the main thread
// receives ~10^5 destination payloads as one ArrayBuffer instead of ~10^5 cloned objects.
//
// Packed results, little-endian, per request in order: u32 message count, then per message u32
// length + the genl payload (padded to 4 bytes). Failed dumps have count 0 and an entry in `errors`.
import { NetlinkDumpInterruptedError, NetlinkError, NetlinkTimeoutError } from "../errors.js";

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
  | { id: number; ok: true; packed: ArrayBuffer; errors: (SerializedNetlinkError | null)[]; messages: number }
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

/** Pack the payloads of each dump's replies (see the file comment). */
export function packReplies(results: { replies: { payload: Uint8Array }[] }[]): ArrayBuffer {
  let size = 0;
  for (const r of results) {
    size += 4;
    for (const m of r.replies) size += 4 + ((m.payload.length + 3) & ~3);
  }
  const out = Buffer.alloc(size);
  let off = 0;
  for (const r of results) {
    out.writeUInt32LE(r.replies.length, off);
    off += 4;
    for (const m of r.replies) {
      out.writeUInt32LE(m.payload.length, off);
      out.set(m.payload, off + 4);
      off += 4 + ((m.payload.length + 3) & ~3);
    }
  }
  // Buffer.alloc may hand out a slice of a shared pool: copy to an ArrayBuffer of our own to transfer.
  return out.byteOffset === 0 && out.buffer.byteLength === size ? (out.buffer as ArrayBuffer) : out.buffer.slice(out.byteOffset, out.byteOffset + size) as ArrayBuffer;
}

/** Call `each(index, payloads)` for every dump of a packed buffer, in order; throws on malformed input. */
export function unpackReplies(packed: ArrayBuffer, count: number, each: (index: number, payloads: Buffer[]) => void): void {
  const b = Buffer.from(packed);
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > b.length) throw new Error(`dump worker: packed replies end early (dump ${i} of ${count})`);
    const n = b.readUInt32LE(off);
    off += 4;
    const payloads: Buffer[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const len = off + 4 <= b.length ? b.readUInt32LE(off) : -1;
      if (len < 0 || off + 4 + len > b.length) throw new Error(`dump worker: packed reply out of bounds (dump ${i})`);
      payloads[j] = b.subarray(off + 4, off + 4 + len);
      off += 4 + ((len + 3) & ~3);
    }
    each(i, payloads);
  }
  if (off !== b.length) throw new Error(`dump worker: ${b.length - off} bytes left after ${count} dumps`);
}
