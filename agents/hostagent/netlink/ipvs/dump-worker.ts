// Worker thread for IpvsClient.snapshot({ dumpWorkers }): runs its share of the per-service
// destination dumps on netlink sockets of its own — the same NetlinkSocket.dumpMany transport (seq /
// port checks, multipart, NLM_F_DUMP_INTR, errors, timeouts) as the main thread — and posts the reply
// payloads back packed in transferred buffers, copied there straight from the received datagrams
// (dump-wire.ts ReplyPacker). Decoding stays on the main thread.
// Sockets are opened on the first job and kept until the worker is terminated.
import { parentPort, workerData } from "node:worker_threads";
import { NETLINK_GENERIC, NetlinkSocket, type NetlinkSocketOptions } from "../socket.js";
import { ReplyPacker, serializeError, type DumpJob, type DumpJobResult } from "./dump-wire.js";

const port = parentPort;
if (!port) throw new Error("dump-worker.ts runs only as a worker thread (IpvsClient dumpWorkers)");
const sockOpts = ((workerData as { socket?: NetlinkSocketOptions } | undefined)?.socket ?? {}) as NetlinkSocketOptions;
const socks: NetlinkSocket[] = [];

/** Netlink messages the worker's sockets have sent so far (reported with each answer). */
const sent = () => socks.reduce((n, s) => n + s.counters.messages, 0);

async function run(job: DumpJob): Promise<DumpJobResult> {
  const parallel = Math.max(1, Math.min(job.parallel, job.payloads.length));
  while (socks.length < parallel) socks.push(NetlinkSocket.open(NETLINK_GENERIC, sockOpts));
  const errors = new Array<ReturnType<typeof serializeError> | null>(job.payloads.length).fill(null);
  const packed = await Promise.all(
    socks.slice(0, parallel).map(async (s, k) => {
      const from = Math.floor((k * job.payloads.length) / parallel);
      const to = Math.floor(((k + 1) * job.payloads.length) / parallel);
      const reqs = job.payloads.slice(from, to).map((payload) => ({ type: job.familyId, payload, op: job.op }));
      const packer = new ReplyPacker();
      const onPart = (i: number, buf: Buffer, start: number, end: number) => packer.add(i, buf, start, end);
      const res = await s.dumpMany(reqs, job.timeoutMs === undefined ? { onPart } : { timeoutMs: job.timeoutMs, onPart });
      for (let i = 0; i < res.length; i++) if (res[i]!.error) errors[from + i] = serializeError(res[i]!.error);
      return packer.finish(to - from);
    }),
  );
  return { id: job.id, ok: true, packed, errors, messages: sent() };
}

port.on("message", (job: DumpJob) => {
  run(job).then(
    (res) => port.postMessage(res, res.ok ? res.packed : []),
    (e: unknown) => port.postMessage({ id: job.id, ok: false, error: serializeError(e), messages: sent() } satisfies DumpJobResult),
  );
});
port.postMessage({ ready: true });
