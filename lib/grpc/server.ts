/**
 * The one place where protobuf-es services meet @grpc/grpc-js on the server side.
 *
 * Handlers are plain async functions `(request, ctx) => response` over protobuf-es messages; they never
 * see a grpc-js call object. `serviceDefinition` turns a generated `DescService` plus such handlers into
 * a grpc-js `ServiceDefinition`, binary (de)serialisation by protobuf-es, and maps every thrown error to
 * a gRPC status here (see ./status.ts) — so error mapping exists exactly once.
 *
 * Streaming: server-streaming handlers return an AsyncIterable; bidi handlers receive an AsyncIterable
 * of requests and return an AsyncIterable of responses (used by server reflection).
 */
import type { Readable } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { encodingOf } from "./encoded.js";
import { toServiceError } from "./status.js";

/** What a handler may know about its call: plain data, no grpc types. */
export interface CallContext {
  /** Request metadata, lower-case keys, first value of each (binary headers omitted). */
  metadata: Record<string, string>;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  /** Remote address, e.g. "ipv4:127.0.0.1:53412". */
  peer: string;
}

type Init<D extends DescMessage> = MessageInitShape<D> | MessageShape<D>;

type HandlerFor<M extends DescMethod> = M extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? (req: MessageShape<I>, ctx: CallContext) => Promise<Init<O>>
  : M extends { methodKind: "server_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (req: MessageShape<I>, ctx: CallContext) => AsyncIterable<Init<O>>
    : M extends { methodKind: "bidi_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
      ? (reqs: AsyncIterable<MessageShape<I>>, ctx: CallContext) => AsyncIterable<Init<O>>
      : M extends { methodKind: "client_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
        ? (reqs: AsyncIterable<MessageShape<I>>, ctx: CallContext) => Promise<Init<O>>
        : never;

/** Handlers for every method of a service, keyed by the method's localName (lowerCamelCase). */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: HandlerFor<S["method"][K]>;
};

/** Logs unexpected (non-LvsfleetError) failures; injected so this module has no logger of its own. */
export type ErrorObserver = (method: string, err: unknown) => void;

type AnyServerCall = { metadata: grpc.Metadata; cancelled: boolean; getPeer(): string; on(event: "cancelled", listener: () => void): unknown };

function callContext(call: AnyServerCall): CallContext {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(call.metadata.getMap())) {
    if (typeof v === "string") metadata[k.toLowerCase()] = v;
  }
  // The AbortController is made on first use: most unary handlers never look at it, and making one
  // (an EventTarget) plus its 'cancelled' listener took ≈ 2 % of the server's profile samples under bench:api.
  let signal: AbortSignal | undefined;
  return {
    metadata,
    get signal(): AbortSignal {
      if (!signal) {
        const ac = new AbortController();
        signal = ac.signal;
        // A call whose client went away before this was asked (or before the handler ran).
        if (call.cancelled) ac.abort(new Error("call cancelled"));
        else call.on("cancelled", () => ac.abort(new Error("call cancelled")));
      }
      return signal;
    },
    peer: call.getPeer(),
  };
}

export function serializer<D extends DescMessage>(schema: D): (value: unknown) => Buffer {
  return (value: unknown): Buffer => {
    // A response that carries its own wire form (./encoded.ts: cached reads) is written as is.
    const pre = (value as { $typeName?: string }).$typeName === schema.typeName ? encodingOf(value) : undefined;
    if (pre) return Buffer.isBuffer(pre) ? pre : Buffer.from(pre.buffer, pre.byteOffset, pre.byteLength);
    const msg = (value as { $typeName?: string }).$typeName === schema.typeName ? (value as MessageShape<D>) : create(schema, value as MessageInitShape<D>);
    const bytes = toBinary(schema, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

export function deserializer<D extends DescMessage>(schema: D): (buf: Buffer) => MessageShape<D> {
  return (buf: Buffer): MessageShape<D> => fromBinary(schema, buf);
}

/**
 * Reads a grpc-js readable call as an AsyncIterable of messages. `destroyOnReturn: false` matters:
 * a plain `for await` destroys the stream when the loop ends, and a destroyed server duplex never
 * sends its final status, so the client would hang.
 */
async function* readAll<T>(stream: Readable): AsyncIterable<T> {
  for await (const m of stream.iterator({ destroyOnReturn: false })) yield m as T;
}

/** Builds the grpc-js definition and handlers for one protobuf-es service. */
export function serviceDefinition<S extends DescService>(
  desc: S,
  impl: ServiceImpl<S>,
  onError: ErrorObserver = () => {},
): { definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation } {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of desc.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName] as (...a: unknown[]) => unknown;
    if (typeof fn !== "function") throw new Error(`no handler for ${desc.typeName}.${method.name}`);
    const path = `/${desc.typeName}/${method.name}`;
    const fail = (err: unknown) => {
      const se = toServiceError(err);
      if (se.code === grpc.status.INTERNAL || se.code === grpc.status.UNKNOWN) onError(path, err);
      return se;
    };
    definition[method.localName] = {
      path,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.name,
    };
    switch (method.methodKind) {
      case "unary":
        handlers[method.localName] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          Promise.resolve()
            .then(() => fn(call.request, callContext(call)))
            .then(
              (res) => cb(null, res),
              (err) => cb(fail(err)),
            );
        }) as grpc.handleUnaryCall<unknown, unknown>;
        break;
      case "client_streaming":
        handlers[method.localName] = ((call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          Promise.resolve()
            .then(() => fn(readAll(call), callContext(call)))
            .then(
              (res) => cb(null, res),
              (err) => cb(fail(err)),
            );
        }) as grpc.handleClientStreamingCall<unknown, unknown>;
        break;
      case "server_streaming":
      case "bidi_streaming":
        handlers[method.localName] = (async (call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
          const ctx = callContext(call);
          try {
            const input = method.methodKind === "bidi_streaming" ? readAll(call as grpc.ServerDuplexStream<unknown, unknown>) : (call as grpc.ServerWritableStream<unknown, unknown>).request;
            for await (const res of fn(input, ctx) as AsyncIterable<unknown>) {
              if (ctx.signal.aborted) break;
              // Respect backpressure so a slow Watch client cannot make us buffer without bound.
              if (!call.write(res)) await new Promise<void>((r) => call.once("drain", () => r()));
            }
            call.end();
          } catch (err) {
            // grpc-js turns an 'error' event on a server stream into the call's final status.
            if (!ctx.signal.aborted) call.emit("error", fail(err));
          }
        }) as grpc.handleServerStreamingCall<unknown, unknown>;
        break;
    }
  }
  return { definition, handlers };
}

/** Adds a protobuf-es service to a grpc-js server. */
export function addService<S extends DescService>(server: grpc.Server, desc: S, impl: ServiceImpl<S>, onError?: ErrorObserver): void {
  const { definition, handlers } = serviceDefinition(desc, impl, onError);
  server.addService(definition, handlers);
}
