/**
 * The standard gRPC health service (grpc.health.v1.Health,
 * https://github.com/grpc/grpc/blob/master/doc/health-checking.md), so load balancers, Kubernetes and
 * grpc_health_probe can ask whether the control plane serves.
 */
import { create } from "@bufbuild/protobuf";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { LvsfleetError } from "../../services/controlplane/domain/errors.js";
import type { ServiceImpl } from "./server.js";

export { ServingStatus };

/** Serving status per service name; "" is the whole server. */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Set<() => void>();

  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    for (const l of this.listeners) l();
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Marks every known service NOT_SERVING (on shutdown, before draining). */
  shutdown(): void {
    for (const k of [...this.statuses.keys()]) this.set(k, ServingStatus.NOT_SERVING);
  }

  impl(): ServiceImpl<typeof Health> {
    return {
      check: async (req) => {
        const s = this.statuses.get(req.service);
        if (s === undefined) throw new LvsfleetError("NOT_FOUND", `unknown service ${JSON.stringify(req.service)}`);
        return create(HealthCheckResponseSchema, { status: s });
      },
      watch: (req, ctx) => this.watch(req.service, ctx.signal),
    };
  }

  private async *watch(service: string, signal: AbortSignal) {
    let last: ServingStatus | undefined;
    while (!signal.aborted) {
      const now = this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (now !== last) {
        last = now;
        yield create(HealthCheckResponseSchema, { status: now });
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          this.listeners.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.listeners.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }
}
