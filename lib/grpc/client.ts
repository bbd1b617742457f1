/**
 * A typed promise client for a protobuf-es service over @grpc/grpc-js: the client-side twin of
 * ./server.ts. Errors come back as RpcError with the google.rpc details decoded (./status.ts).
 *
 *   const topo = createClient(TopologyService, "127.0.0.1:50051");
 *   const { site, revision } = await topo.createSite({ siteId: "ams1", site: {} });
 */
import * as grpc from "@grpc/grpc-js";
import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { deserializer, serializer } from "./server.js";
import { fromServiceError } from "./status.js";

export interface CallOptions {
  /** Request metadata (e.g. { "x-lvsfleet-reason": "ticket 42" }). */
  metadata?: Record<string, string>;
  /** Deadline relative to now, in milliseconds. */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

type Init<D extends DescMessage> = MessageInitShape<D> | MessageShape<D>;

type ClientMethod<M extends DescMethod> = M extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? (req: Init<I>, opts?: CallOptions) => Promise<MessageShape<O>>
  : M extends { methodKind: "server_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (req: Init<I>, opts?: CallOptions) => AsyncIterable<MessageShape<O>>
    : M extends { methodKind: "bidi_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
      ? (reqs: AsyncIterable<Init<I>>, opts?: CallOptions) => AsyncIterable<MessageShape<O>>
      : never;

export type Client<S extends DescService> = { [K in keyof S["method"]]: ClientMethod<S["method"][K]> } & {
  /** Closes the channel. */
  close(): void;
  /** Resolves when the channel is connected, or rejects after timeoutMs. */
  waitForReady(timeoutMs: number): Promise<void>;
};

export interface ClientOptions {
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
}

function toMetadata(opts?: CallOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts?.metadata ?? {})) md.set(k, v);
  return md;
}

function callOptions(opts?: CallOptions): grpc.CallOptions {
  return opts?.timeoutMs ? { deadline: new Date(Date.now() + opts.timeoutMs) } : {};
}

/** Wraps a grpc-js readable stream as an AsyncIterable that throws RpcError. */
async function* iterate<T>(stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>, signal?: AbortSignal): AsyncIterable<T> {
  const onAbort = () => stream.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const m of stream as AsyncIterable<T>) yield m;
  } catch (err) {
    if ((err as grpc.ServiceError).code === grpc.status.CANCELLED && signal?.aborted) return;
    throw fromServiceError(err as grpc.ServiceError);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stream.cancel();
  }
}

export function createClient<S extends DescService>(desc: S, address: string, options: ClientOptions = {}): Client<S> {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of desc.methods) {
    definition[m.localName] = {
      path: `/${desc.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: serializer(m.input),
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(definition, desc.typeName);
  const raw = new Ctor(address, options.credentials ?? grpc.credentials.createInsecure(), options.channelOptions) as unknown as Record<string, (...a: unknown[]) => unknown> & grpc.Client;
  const client: Record<string, unknown> = {
    close: () => raw.close(),
    waitForReady: (timeoutMs: number) =>
      new Promise<void>((resolve, reject) => raw.waitForReady(new Date(Date.now() + timeoutMs), (err) => (err ? reject(err) : resolve()))),
  };
  for (const m of desc.methods) {
    const fn = raw[m.localName]!.bind(raw);
    switch (m.methodKind) {
      case "unary":
        client[m.localName] = (req: unknown, opts?: CallOptions) =>
          new Promise((resolve, reject) => {
            const call = fn(req, toMetadata(opts), callOptions(opts), (err: grpc.ServiceError | null, res: unknown) =>
              err ? reject(fromServiceError(err)) : resolve(res),
            ) as grpc.ClientUnaryCall;
            opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
          });
        break;
      case "server_streaming":
        client[m.localName] = (req: unknown, opts?: CallOptions) =>
          iterate(fn(req, toMetadata(opts), callOptions(opts)) as grpc.ClientReadableStream<unknown>, opts?.signal);
        break;
      case "bidi_streaming":
        client[m.localName] = (reqs: AsyncIterable<unknown>, opts?: CallOptions) => {
          const stream = fn(toMetadata(opts), callOptions(opts)) as grpc.ClientDuplexStream<unknown, unknown>;
          void (async () => {
            try {
              for await (const r of reqs) stream.write(r);
              stream.end();
            } catch {
              stream.cancel();
            }
          })();
          return iterate(stream, opts?.signal);
        };
        break;
      default:
        client[m.localName] = () => {
          throw new Error(`${m.methodKind} methods are not supported by this client`);
        };
    }
  }
  return client as Client<S>;
}
