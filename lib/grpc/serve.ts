/**
 * Binds protobuf-es services to one grpc-js server, with grpc.health.v1 and server reflection, and
 * a graceful shutdown that drains in-flight calls. The transport is bound here and nowhere else.
 */
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import * as reflV1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as reflV1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { HealthStatus, ServingStatus } from "./health.js";
import { reflectionServices } from "./reflection.js";
import { addService, type ErrorObserver, type ServiceImpl } from "./server.js";

export interface ServiceBinding<S extends DescService = DescService> {
  desc: S;
  impl: ServiceImpl<S>;
}

/** Pairs a service with its handlers, keeping the handler types checked. */
export function bind<S extends DescService>(desc: S, impl: ServiceImpl<S>): ServiceBinding {
  return { desc, impl } as unknown as ServiceBinding;
}

export interface RunningServer {
  server: grpc.Server;
  /** The bound port (useful with port 0). */
  port: number;
  /** "host:port" clients can dial. */
  address: string;
  health: HealthStatus;
  /** Marks NOT_SERVING, drains in-flight calls for up to graceMs, then cancels the rest. */
  shutdown(graceMs?: number): Promise<void>;
}

export async function startGrpcServer(opts: {
  address: string;
  services: ServiceBinding[];
  onError?: ErrorObserver;
  serverOptions?: grpc.ServerOptions;
}): Promise<RunningServer> {
  const server = new grpc.Server(opts.serverOptions);
  const health = new HealthStatus();
  for (const s of opts.services) addService(server, s.desc, s.impl, opts.onError);
  addService(server, Health, health.impl(), opts.onError);
  const refl = reflectionServices([...opts.services.map((s) => s.desc), Health]);
  addService(server, reflV1.ServerReflection, refl.v1, opts.onError);
  addService(server, reflV1alpha.ServerReflection, refl.v1alpha, opts.onError);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  health.set("", ServingStatus.SERVING);
  for (const s of opts.services) health.set(s.desc.typeName, ServingStatus.SERVING);
  const host = opts.address.replace(/:\d+$/, "");
  return {
    server,
    port,
    address: `${host}:${port}`,
    health,
    shutdown: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        health.shutdown();
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
