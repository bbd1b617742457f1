/**
 * OpenTelemetry, preloaded with `node --import` (see the "start" script) so the gRPC and pg
 * instrumentations can patch @grpc/grpc-js and pg before anything imports them. Under ESM that
 * needs the instrumentation's loader hook (import-in-the-middle), registered here first.
 *
 * Off unless the standard variables ask for it: OTEL_TRACES_EXPORTER (not "none") or
 * OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. Everything else (service name,
 * sampler, headers, protocol) comes from the usual OTEL_* variables read by the SDK.
 */
import { register } from "node:module";

const env = process.env;
const exporter = env.OTEL_TRACES_EXPORTER;
const enabled =
  env.OTEL_SDK_DISABLED !== "true" &&
  ((exporter !== undefined && exporter !== "" && exporter !== "none") ||
    !!env.OTEL_EXPORTER_OTLP_ENDPOINT ||
    !!env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);

if (enabled) {
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);
  env.OTEL_SERVICE_NAME ??= "lvsfleet-controlplane";
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const { GrpcInstrumentation } = await import("@opentelemetry/instrumentation-grpc");
  const { PgInstrumentation } = await import("@opentelemetry/instrumentation-pg");
  const sdk = new NodeSDK({ instrumentations: [new GrpcInstrumentation(), new PgInstrumentation()] });
  sdk.start();
  // main.ts exits via process.exit after its own shutdown; flush spans on the way out.
  (globalThis as { __lvsfleetOtelShutdown?: () => Promise<void> }).__lvsfleetOtelShutdown = () => sdk.shutdown();
}
