// Many netlink dumps run back to back in C on a libuv pool thread (native/dump.c, our own N-API
// addon; why: see the comment at its top — the `netlink` package's per-datagram JS round trip made a
// full IPVS read cost ~3× ipvsadm's user CPU). One call = one socket of its own, its dumps in order;
// the reply payloads come back packed in one buffer (the ipvs/dump-wire.ts format: per dump u32 part
// count, per part u32 length + payload padded to 4), read with unpackParts().
//
// Same contract as NetlinkSocket.dumpMany: one result per dump (a kernel error → NetlinkError, a part
// with NLM_F_DUMP_INTR → NetlinkDumpInterruptedError, retryable); the call rejects on transport
// failures (sendmsg/recvmsg errors, ENOBUFS overrun, truncated datagram → EMSGSIZE) and with
// NetlinkTimeoutError when a dump does not end within timeoutMs of its start.
//
// The addon is built by `npm ci` (package.json "install": node-gyp rebuild in native/). It is found
// next to this file's source (native/build/Release) or, from an esbuild bundle elsewhere in the
// checkout (test/harness bundleForGuest: .lvsfleet/vm/bundles), by walking up to the checkout root;
// LVSFLEET_NETLINK_DUMP_ADDON names another path.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NetlinkDumpInterruptedError, NetlinkError, NetlinkTimeoutError, errnoName } from "./errors.js";

interface Binding {
  dump(protocol: number, type: number, flags: number, requests: Buffer, count: number, timeoutMs: number): Promise<RawResult>;
}

interface RawResult {
  packed: ArrayBuffer;
  status: Int32Array;
  messages: number;
  stray: number;
  failErrno: number;
  failSyscall: string;
  failIndex: number;
}

export interface NativeDumpResult {
  /** Replies of every dump, packed (dump-wire.ts format); a failed dump has 0 parts. */
  packed: ArrayBuffer;
  /** Per dump: undefined when it completed, else why it failed. */
  errors: (NetlinkError | undefined)[];
  /** Dump requests sent. */
  messages: number;
  /** Replies dropped (not from the kernel, wrong seq or port id). */
  stray: number;
}

const ADDON = "lvsfleet_netlink_dump.node";
const REL = join("native", "build", "Release", ADDON);
const FROM_ROOT = join("agents", "hostagent", "netlink", REL);

let binding: Binding | undefined;
let loadError: Error | undefined;
let loaded = false;

function locate(): string | undefined {
  const env = process.env.LVSFLEET_NETLINK_DUMP_ADDON;
  if (env) return env;
  const here = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(here, REL))) return join(here, REL);
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, FROM_ROOT))) return join(dir, FROM_ROOT);
    if (dirname(dir) === dir) return undefined;
  }
}

function load(): Binding | undefined {
  if (loaded) return binding;
  loaded = true;
  const path = locate();
  if (!path) {
    loadError = new Error(`netlink dump addon ${ADDON} not found (build it with \`npm ci\` or \`npm run install\`; looked under ${FROM_ROOT} upwards from ${dirname(fileURLToPath(import.meta.url))})`);
    return undefined;
  }
  try {
    binding = createRequire(import.meta.url)(path) as Binding;
  } catch (e) {
    loadError = new Error(`netlink dump addon ${path} failed to load: ${(e as Error).message}`);
  }
  return binding;
}

/** Whether the addon loaded (callers fall back to NetlinkSocket.dumpMany when not). */
export function nativeDumpAvailable(): boolean {
  return load() !== undefined;
}

/** Why the addon is not available (undefined when it is). */
export function nativeDumpLoadError(): Error | undefined {
  load();
  return loadError;
}

/** Request payloads as the addon takes them: per dump u32 length + payload, padded to 4. */
export function packRequests(payloads: Uint8Array[]): Buffer {
  let size = 0;
  for (const p of payloads) size += 4 + ((p.length + 3) & ~3);
  const b = Buffer.alloc(size);
  let off = 0;
  for (const p of payloads) {
    b.writeUInt32LE(p.length, off);
    b.set(p, off + 4);
    off += 4 + ((p.length + 3) & ~3);
  }
  return b;
}

/**
 * Run `payloads.length` dumps (nlmsg_type `type`, NLM_F_REQUEST|NLM_F_DUMP|`flags`) on a new socket of
 * `protocol`, in order, off the event loop. Throws when the addon is not available.
 */
export async function nativeDumpMany(
  protocol: number,
  type: number,
  payloads: Uint8Array[],
  op: string,
  opts: { timeoutMs?: number; flags?: number } = {},
): Promise<NativeDumpResult> {
  return nativeDumpPacked(protocol, type, packRequests(payloads), payloads.length, op, opts);
}

/** nativeDumpMany() with the requests already packed (packRequests' format), `count` of them. */
export async function nativeDumpPacked(
  protocol: number,
  type: number,
  requests: Buffer,
  count: number,
  op: string,
  opts: { timeoutMs?: number; flags?: number } = {},
): Promise<NativeDumpResult> {
  const b = load();
  if (!b) throw loadError!;
  const timeoutMs = Math.max(1, Math.round(opts.timeoutMs ?? 30_000));
  if (count === 0) return { packed: new ArrayBuffer(0), errors: [], messages: 0, stray: 0 };
  const r = await b.dump(protocol, type, opts.flags ?? 0, requests, count, timeoutMs);
  if (r.failErrno !== 0) {
    if (r.failSyscall === "timeout") throw new NetlinkTimeoutError(op, timeoutMs);
    // Receive-side failures (ENOBUFS: the kernel dropped replies; EMSGSIZE: truncated datagram) lose
    // data but a new attempt may work, as in socket.ts.
    const retryable = r.failSyscall === "recvmsg" ? true : undefined;
    throw new NetlinkError(op, r.failErrno, { retryable, message: `${op}: ${errnoName(r.failErrno)} (${r.failSyscall}, dump ${r.failIndex + 1} of ${count})` });
  }
  const errors = new Array<NetlinkError | undefined>(count);
  for (let i = 0; i < count; i++) {
    const s = r.status[i]!;
    errors[i] = s === 0 ? undefined : s === -1 ? new NetlinkDumpInterruptedError(op) : new NetlinkError(op, s);
  }
  return { packed: r.packed, errors, messages: r.messages, stray: r.stray };
}
