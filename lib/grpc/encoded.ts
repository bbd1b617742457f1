/**
 * Pre-encoded responses: a handler may attach the exact protobuf bytes of the message it returns, so
 * the server writes them as they are instead of running `toBinary` again (./server.ts `serializer`).
 * The read cache of the control plane keeps each resource's (or list page's) bytes with its revision
 * and only appends the per-read `revision` field on each call.
 *
 * The bytes must be what `toBinary(schema, msg)` gives for the same message — a test checks it for
 * every cached read. Protobuf-es writes fields in field-number order and a message field is
 * `tag + length + toBinary(submessage)`, so concatenating a cached prefix (fields 1..n-1) and the last
 * field (the revision, the highest number in every Get/List response) reproduces it byte for byte.
 *
 *   message GetVirtualServiceResponse { VirtualService virtual_service = 1; int64 revision = 2; }
 *
 *   0x0a <varint len> <VirtualService bytes>   field 1, wire type 2 (length-delimited)
 *   0x10 <varint revision>                     field 2, wire type 0 (varint); absent when 0
 */

/** Where a message carries its own encoding (non-enumerable: invisible to equals/toEqual/JSON). */
export const ENCODED: unique symbol = Symbol("lvsfleet.grpc.encoded");

/** Attaches `bytes` as the wire form of `msg` (returned as is, for chaining). */
export function withEncoding<T extends object>(msg: T, bytes: Uint8Array): T {
  Object.defineProperty(msg, ENCODED, { value: bytes, enumerable: false, configurable: true, writable: true });
  return msg;
}

/** The bytes attached by withEncoding, if any. */
export function encodingOf(msg: unknown): Uint8Array | undefined {
  if (typeof msg !== "object" || msg === null) return undefined;
  const b = (msg as { [ENCODED]?: unknown })[ENCODED];
  return b instanceof Uint8Array ? b : undefined;
}

function varintLength(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/**
 * `prefix` followed by an int64 field `field` = `value` (varint, omitted when 0 as proto3 does for
 * implicit presence). Non-negative values only (revisions). One allocation, one copy.
 */
export function appendInt64Field(prefix: Uint8Array, field: number, value: bigint): Buffer {
  if (value < 0n) throw new RangeError(`negative int64 field ${field}: ${value}`);
  if (field < 1 || field > 15) throw new RangeError(`field ${field}: only one-byte tags are supported`);
  if (value === 0n) return Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const out = Buffer.allocUnsafe(prefix.byteLength + 1 + varintLength(value));
  out.set(prefix, 0);
  let i = prefix.byteLength;
  out[i++] = field << 3; // wire type 0 (varint)
  let v = value;
  while (v >= 0x80n) {
    out[i++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[i++] = Number(v);
  return out;
}
