import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

describe("control-plane config", () => {
  it("defaults to the embedded Postgres, local NATS and the lvsfleet-desired bucket", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ grpcAddr: "127.0.0.1:50051", databaseUrl: undefined, natsUrl: "nats://127.0.0.1:4222", desiredBucket: "lvsfleet-desired" });
  });

  it("reads every variable it documents", () => {
    const c = loadConfig({
      LVSFLEET_GRPC_ADDR: "0.0.0.0:6000",
      DATABASE_URL: "postgres://x@y/z",
      NATS_URL: "nats://n:1",
      LVSFLEET_DESIRED_BUCKET: "b2",
      LVSFLEET_DB_POOL_SIZE: "7",
      LVSFLEET_SHUTDOWN_GRACE_MS: "5",
    });
    expect(c).toMatchObject({ grpcAddr: "0.0.0.0:6000", databaseUrl: "postgres://x@y/z", natsUrl: "nats://n:1", desiredBucket: "b2", dbPoolSize: 7, shutdownGraceMs: 5 });
  });

  it("refuses numbers out of range", () => {
    expect(() => loadConfig({ LVSFLEET_DB_POOL_SIZE: "0" })).toThrow(/LVSFLEET_DB_POOL_SIZE/);
    expect(() => loadConfig({ LVSFLEET_EMBEDDED_PG_PORT: "70000" })).toThrow(/LVSFLEET_EMBEDDED_PG_PORT/);
  });
});
