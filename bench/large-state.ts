/**
 * A Director desired state above NATS max_payload, through the state-object path (relay/state-object.ts,
 * sync/state-object.ts) on the NATS at NATS_URL (default the shared 127.0.0.1:4222, max_payload 1 MiB):
 *
 *   npx tsx bench/large-state.ts [-- --services 10000 --reals 10]
 *
 * Builds a host part of `--services` NAT services × `--reals` real servers (issue 3: 10 000 × 10),
 * then for deflate on and off: pack (deflate + SHA-256 + reference), put into an Object Store
 * bucket of its own (chunks of 128 KiB, each confirmed), get it back, check and decode (what the
 * agent does). One line per mode; the reference is the KV value the relay puts instead of the state.
 */
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { HostDesiredStateSchema } from "../gen/lvsfleet/v1/desired_state_pb.js";
import { ForwardMethod, Protocol } from "../gen/lvsfleet/v1/types_pb.js";
import { hashDesiredState } from "../services/controlplane/compile/index.js";
import { inlineLimit, packStateObject } from "../services/controlplane/relay/state-object.js";
import { fetchStateObject, unpackStateObject } from "../agents/hostagent/sync/state-object.js";

const { values } = parseArgs({ options: { services: { type: "string", default: "10000" }, reals: { type: "string", default: "10" } } });
const n = Number(values.services);
const reals = Number(values.reals);
const ds = create(HostDesiredStateSchema, {
  site: "fra1",
  host: "lb1",
  director: {
    services: Array.from({ length: n }, (_, i) => ({
      virtualService: `sites/fra1/virtualServices/web${i}`,
      protocol: Protocol.TCP,
      address: `198.18.${(i >> 8) & 255}.${i & 255}`,
      port: 443,
      scheduler: "wlc",
      destinations: Array.from({ length: reals }, (_, j) => ({
        realServer: `sites/fra1/virtualServices/web${i}/realServers/r${j}`,
        address: `198.19.${(i >> 8) & 255}.${(i + j) & 255}`,
        port: 8443,
        forwardMethod: ForwardMethod.NAT,
        weight: 1 + j,
      })),
    })),
  },
});
ds.hash = hashDesiredState(ds);
ds.revision = 7n;
const state = toBinary(HostDesiredStateSchema, ds);
const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const bucket = `lvsfleet-bench-large-${process.pid}`;
const os = await new Objm(jetstream(nc, { timeout: 30_000 })).create(bucket);
const maxPayload = nc.info!.max_payload;
const lines: string[] = [];
try {
  for (const deflate of [false, true]) {
    let t = performance.now();
    const so = await packStateObject(state, { deflate });
    const pack = performance.now() - t;
    t = performance.now();
    await os.putBlob({ name: so.name, options: { max_chunk_size: Math.min(128 * 1024, inlineLimit(maxPayload)) } }, so.bytes);
    const put = performance.now() - t;
    t = performance.now();
    const bytes = await fetchStateObject(os, so.name, { maxBytes: so.bytes.length, timeoutMs: 120_000 });
    const get = performance.now() - t;
    t = performance.now();
    const back = await unpackStateObject(fromBinary(HostDesiredStateSchema, so.reference), bytes);
    const unpack = performance.now() - t;
    if (back.hash !== ds.hash || back.director!.services.length !== n) throw new Error("state did not come back whole");
    lines.push(
      `deflate=${deflate} services=${n} reals=${reals} state_bytes=${state.length} max_payload=${maxPayload} object_bytes=${so.bytes.length} ` +
        `reference_bytes=${so.reference.length} pack_ms=${pack.toFixed(0)} put_ms=${put.toFixed(0)} get_ms=${get.toFixed(0)} check_decode_ms=${unpack.toFixed(0)}`,
    );
  }
} finally {
  await os.destroy().catch(() => undefined);
  await nc.close();
}
for (const l of lines) console.log(l);
