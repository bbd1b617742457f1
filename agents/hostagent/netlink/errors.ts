// Typed errors of the netlink layer. Pure (no I/O, no native addon): the codecs import this file,
// the socket re-exports it. Every failure that leaves this layer is one of these classes.
import { constants as osConstants } from "node:os";

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) {
  // os.constants.errno has aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK): keep the first.
  if (!errnoNames.has(num)) errnoNames.set(num, name);
}

/** "EEXIST" for 17, "ENOENT" for 2, ... ("E<n>" when Node does not know the number). */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

export function errnoNumber(name: string): number {
  const n = (osConstants.errno as Record<string, number>)[name];
  if (n === undefined) throw new RangeError(`unknown errno name ${name}`);
  return n;
}

/**
 * The kernel (or the socket) refused an operation. `code` is the errno name (EEXIST, ENOENT, ESRCH,
 * EBUSY, ENOBUFS, ...), `op` the operation ("IPVS_CMD_NEW_SERVICE", "RTM_NEWADDR", ...), `extack` the
 * kernel's extended-ack text when it sent one.
 */
export class NetlinkError extends Error {
  override name = "NetlinkError";
  readonly errno: number;
  readonly code: string;
  readonly op: string;
  readonly extack: string | undefined;
  /** True when the same request may simply be sent again (interrupted dump, overrun, EBUSY, EINTR). */
  readonly retryable: boolean;

  constructor(op: string, errno: number, opts: { extack?: string; message?: string; retryable?: boolean } = {}) {
    const code = errnoName(errno);
    super(opts.message ?? `${op}: ${code}${opts.extack ? ` (${opts.extack})` : ""}`);
    this.errno = Math.abs(errno);
    this.code = code;
    this.op = op;
    this.extack = opts.extack;
    this.retryable = opts.retryable ?? (code === "EBUSY" || code === "EINTR" || code === "EAGAIN" || code === "ENOBUFS");
  }
}

/**
 * A dump reply carried NLM_F_DUMP_INTR: the object set changed while the kernel walked it, so the
 * result may be inconsistent. Always retryable: run the dump again.
 */
export class NetlinkDumpInterruptedError extends NetlinkError {
  override name = "NetlinkDumpInterruptedError";
  constructor(op: string) {
    super(op, errnoNumber("EINTR"), { message: `${op}: dump interrupted (NLM_F_DUMP_INTR), retry`, retryable: true });
  }
}

/** No final answer (ACK, error, NLMSG_DONE) arrived within the request's timeout. */
export class NetlinkTimeoutError extends NetlinkError {
  override name = "NetlinkTimeoutError";
  readonly timeoutMs: number;
  constructor(op: string, timeoutMs: number) {
    super(op, errnoNumber("ETIMEDOUT"), { message: `${op}: no reply within ${timeoutMs} ms`, retryable: true });
    this.timeoutMs = timeoutMs;
  }
}

/** Bytes that are not a well-formed netlink message / attribute / IPVS object. */
export class NetlinkDecodeError extends Error {
  override name = "NetlinkDecodeError";
  readonly offset: number | undefined;
  constructor(message: string, offset?: number) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`);
    this.offset = offset;
  }
}

/** A value cannot be put on the wire (out of range, wrong address family, name too long). */
export class NetlinkEncodeError extends Error {
  override name = "NetlinkEncodeError";
}
