// The agent's side of host parts stored in the Object Store (the relay's side and the why:
// services/controlplane/relay/state-object.ts). A KV value with `state_object` set is only a
// reference; the host part is fetched, checked and decoded here. Nothing is handed on unless every
// check passes — a missing, truncated, corrupt or mismatching object is an error, never a partial
// state:
//   size == state_object.size, SHA-256 == state_object.sha256, inflated length == state_size,
//   and the decoded part's site, host, revision, hash and site_revision == the reference's.
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { inflate } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import type { ObjectStore } from "@nats-io/obj";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";

const inflateAsync = promisify(inflate);

/** Host parts above this are refused before anything is fetched or inflated (a broken reference must not exhaust memory). */
export const MAX_STATE_BYTES = 512 * 1024 * 1024;

export class StateObjectError extends Error {
  override name = "StateObjectError";
}

/** Reads the object `name` whole; null when it does not exist (or was deleted). */
export async function fetchStateObject(os: ObjectStore, name: string, opts: { maxBytes: number; timeoutMs: number }): Promise<Uint8Array | null> {
  const r = await os.get(name);
  if (!r) return null;
  const reader = r.data.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  // A chunk stream whose chunks were purged meanwhile (the object was deleted while we read) would
  // wait for its next chunk until the consumer's idle heartbeat: give up after timeoutMs instead.
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StateObjectError(`object ${name} not read within ${opts.timeoutMs} ms`)), opts.timeoutMs);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      size += value.length;
      if (size > opts.maxBytes) throw new StateObjectError(`object ${name} is larger than its reference says (${opts.maxBytes} bytes)`);
      chunks.push(value);
    }
  } catch (err) {
    void reader.cancel().catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks);
}

/**
 * The host part a reference (`ref`, a KV value with state_object set) points at, from the object's
 * bytes (null = the object is missing). Throws StateObjectError unless every check passes.
 */
export async function unpackStateObject(ref: HostDesiredState, bytes: Uint8Array | null): Promise<HostDesiredState> {
  const o = ref.stateObject;
  if (!o) throw new StateObjectError("not a reference: state_object is unset");
  if (bytes === null) throw new StateObjectError(`object ${o.name} is missing`);
  if (BigInt(bytes.length) !== o.size) throw new StateObjectError(`object ${o.name} has ${bytes.length} bytes, reference says ${o.size}`);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (sha256 !== o.sha256) throw new StateObjectError(`object ${o.name} has SHA-256 ${sha256}, reference says ${o.sha256}`);
  if (o.stateSize === 0n || o.stateSize > BigInt(MAX_STATE_BYTES)) throw new StateObjectError(`object ${o.name}: state size ${o.stateSize} out of range`);
  let state: Uint8Array = bytes;
  if (o.deflate) {
    try {
      // The reference says how long the state is: inflating more than that is an error, not an allocation.
      state = await inflateAsync(bytes, { maxOutputLength: Number(o.stateSize) });
    } catch (err) {
      throw new StateObjectError(`object ${o.name} does not inflate: ${String((err as Error)?.message ?? err)}`);
    }
  }
  if (BigInt(state.length) !== o.stateSize) throw new StateObjectError(`object ${o.name} holds ${state.length} state bytes, reference says ${o.stateSize}`);
  let ds: HostDesiredState;
  try {
    ds = fromBinary(HostDesiredStateSchema, state);
  } catch (err) {
    throw new StateObjectError(`object ${o.name} does not decode: ${String((err as Error)?.message ?? err)}`);
  }
  if (ds.stateObject) throw new StateObjectError(`object ${o.name} is itself a reference`);
  for (const f of ["site", "host", "revision", "hash", "siteRevision"] as const) {
    if (ds[f] !== ref[f]) throw new StateObjectError(`object ${o.name}: ${f} ${String(ds[f])}, reference says ${String(ref[f])}`);
  }
  return ds;
}
