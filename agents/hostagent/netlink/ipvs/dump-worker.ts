// Worker thread for IpvsClient.snapshot({ dumpWorkers }): runs its share of the per-service
// destination dumps on netlink sockets of its own — the same NetlinkSocket.dumpMany transport (seq /
// port checks, multipart, NLM_F_DUMP_INTR, errors, timeouts) as the main thread — and posts the reply
// payloads back packed in one transferred buffer (dump-wire.ts). Decoding stays on the main thread.
// Sockets are opened on the first job and kept until the worker is terminated.
import { parentPort, workerData } from "node:worker_threads";
import { NETLINK_GENERIC, NetlinkSocket, type NetlinkSocketOptions } from "../socket.js";
import { packReplies, serializeError, type DumpJob, type DumpJobResult } from "./dump-wire.js";

const port = parentPort;
if (!port) throw new Error("dump-worker.ts runs only as a worker thread (IpvsClient dumpWorkers)");
const sockOpts = ((workerData as { socket?: NetlinkSocketOptions } | undefined)?.socket ?? {}) as NetlinkSocketOptions;
const socks: NetlinkSocket[] = [];

/** Netlink messages the worker's sockets have sent so far (reported with each answer). */
const sent = () => socks.reduce((n, s) => n + s.counters.messages, 0);

async function run(job: DumpJob): Promise<DumpJobResult> {
  const parallel = Math.max(1, Math.min(job.parallel, job.payloads.length));
  while (socks.length < parallel) socks.push(NetlinkSocket.open(NETLINK_GENERIC, sockOpts));
  const results = new Array<{ error?: unknown; replies: { payload: Uint8Array }[] }>(job.payloads.length);
  await Promise.all(
    socks.slice(0, parallel).map(async (s, k) => {
      const from = Math.floor((k * job.payloads.length) / parallel);
      const to = Math.floor(((k + 1) * job.payloads.length) / parallel);
      const reqs = job.payloads.slice(from, to).map((payload) => ({ type: job.familyId, payload, op: job.op }));
      const res = await s.dumpMany(reqs, job.timeoutMs === undefined ? {} : { timeoutMs: job.timeoutMs });
      for (let i = 0; i < res.length; i++) results[from + i] = res[i]!;
    }),
  );
  const errors = results.map((r) => (r.error ? serializeError(r.error) : null));
  return { id: job.id, ok: true, packed: packReplies(results.map((r) => (r.error ? { replies: [] } : r))), errors, messages: sent() };
}

port.on("message", (job: DumpJob) => {
  run(job).then(
    (res) => port.postMessage(res, res.ok ? [res.packed] : []),
    (e: unknown) => port.postMessage({ id: job.id, ok: false, error: serializeError(e), messages: sent() } satisfies DumpJobResult),
  );
});
port.postMessage({ ready: true });
