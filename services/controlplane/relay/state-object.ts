// Host parts too large for one NATS message: stored as an object, referenced from the KV value.
//
// nats-server refuses any message above its max_payload (1 MiB by default): a Director carrying
// 10 000 services × 10 real servers has a host part of several MB, and a KV put of it would fail
// forever. Such a part goes to the JetStream Object Store bucket named like the KV bucket (chunked
// there below max_payload), and the KV value becomes a small HostDesiredState with the part's
// site, host, revision, hash and site_revision plus `state_object` (name, size, SHA-256, deflate).
// The KV put stays the one atomic "new revision" signal: the relay puts it only after the object's
// every chunk and its metadata are confirmed by PubAck.
//
//   desired_states.state (HostDesiredState encoding, N bytes)
//     └─ zlib deflate (optional) ─▶ object bytes (size, sha256) ─▶ $O.<bucket>  name <site>.<host>.<sha256>
//   KV <site>.<host> = HostDesiredState{site, host, revision, hash, site_revision, state_object}
//
// The agent's side (fetch, check, inflate, decode) is agents/hostagent/sync/state-object.ts.
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import { deflate } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { DesiredStateObjectSchema, HostDesiredStateSchema } from "../../../gen/lvsfleet/v1/desired_state_pb.js";

const deflateAsync = promisify(deflate);

/** A host part prepared for the Object Store, and the KV value that references it. */
export interface StateObject {
  /** Object name, `<site>.<host>.<sha256 of the object>`. */
  name: string;
  /** What goes into the object (deflated when asked). */
  bytes: Uint8Array;
  /** Hex SHA-256 of `bytes`. */
  sha256: string;
  /** The KV value: the reference (a HostDesiredState of a few hundred bytes). */
  reference: Uint8Array;
}

/**
 * The inline limit for a connection: a value above it goes to the Object Store. 1/16 of max_payload
 * is left for the subject, reply and headers that travel with the payload (and for a server that a
 * reconnect lands on with a slightly smaller limit).
 */
export function inlineLimit(maxPayload: number): number {
  return Math.floor((maxPayload * 15) / 16);
}

/**
 * Reads only the stamp of an encoded HostDesiredState (site 1, host 2, revision 3, hash 4,
 * site_revision 8), skipping the large fields (director 5, real_server 6, sysctls 7) without decoding
 * them: the reference needs only these.
 */
export function readStamp(state: Uint8Array): { site: string; host: string; revision: bigint; hash: string; siteRevision: bigint } {
  const out = { site: "", host: "", revision: 0n, hash: "", siteRevision: 0n };
  const r = new BinaryReader(state);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) out.site = r.string();
    else if (no === 2 && wt === WireType.LengthDelimited) out.host = r.string();
    else if (no === 3 && wt === WireType.Varint) out.revision = BigInt(r.int64());
    else if (no === 4 && wt === WireType.LengthDelimited) out.hash = r.string();
    else if (no === 8 && wt === WireType.Varint) out.siteRevision = BigInt(r.int64());
    else r.skip(wt, no);
  }
  return out;
}

/** The object for an encoded host part (`state`, as in desired_states.state) and its KV reference. */
export async function packStateObject(state: Uint8Array, opts: { deflate: boolean }): Promise<StateObject> {
  const stamp = readStamp(state);
  const bytes = opts.deflate ? new Uint8Array(await deflateAsync(state)) : state;
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  // Site and host are single subject tokens (no dots), so the name splits back unambiguously.
  const name = `${stamp.site}.${stamp.host}.${sha256}`;
  const reference = toBinary(
    HostDesiredStateSchema,
    create(HostDesiredStateSchema, {
      ...stamp,
      stateObject: create(DesiredStateObjectSchema, { name, size: BigInt(bytes.length), sha256, deflate: opts.deflate, stateSize: BigInt(state.length) }),
    }),
  );
  return { name, bytes, sha256, reference };
}

/** `<site>.<host>` of an object name made by packStateObject (undefined for anything else). */
export function objectHostKey(name: string): string | undefined {
  const m = /^([^.]+\.[^.]+)\.[0-9a-f]{64}$/.exec(name);
  return m?.[1];
}

/** The Object Store's digest of `sha256` (hex): "SHA-256=" + base64url with padding, as @nats-io/obj writes it. */
export function objectStoreDigest(sha256: string): string {
  return `SHA-256=${Buffer.from(sha256, "hex").toString("base64").replace(/\+/g, "-").replace(/\//g, "_")}`;
}
