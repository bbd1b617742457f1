// A resync queued while an apply runs must hold the kernel to the state that apply brought, not to the
// one it replaced (found by test/kernel/e2e-fleet.test.ts: a scheduler change undone for one resync
// interval right after an agent restart).
import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { HostDesiredStateSchema, type HostDesiredState } from "../../../gen/lvsfleet/v1/desired_state_pb.js";
import { AddressFamily, ForwardMethod, Protocol } from "../../../gen/lvsfleet/v1/types_pb.js";
import { FakeIpvs } from "./fake-ipvs.js";
import { createFakeKernel } from "./fakes.js";
import { LinuxBackend } from "./linux-backend.js";

const desired = (scheduler: string): HostDesiredState =>
  create(HostDesiredStateSchema, {
    site: "s1",
    host: "h1",
    revision: 1n,
    director: {
      services: [
        {
          virtualService: "v",
          addressFamily: AddressFamily.IPV4,
          protocol: Protocol.TCP,
          address: "192.0.2.10",
          port: 80,
          scheduler,
          persistencePrefixLength: 32,
          destinations: [{ realServer: "r", addressFamily: AddressFamily.IPV4, address: "198.51.100.11", port: 80, forwardMethod: ForwardMethod.DR, weight: 1 }],
        },
      ],
    },
  });

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "lvsfleet-lbr-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("a resync queued behind an apply uses the newly applied desired state", async () => {
  const ipvs = new FakeIpvs();
  const fk = createFakeKernel();
  const b = new LinuxBackend({ site: "s1", host: "h1", stateDir: dir, openIpvs: async () => ipvs, ipvsLoaded: () => false, links: fk.links, addresses: fk.addresses, fwmarks: fk.fwmarks, sysctls: fk.sysctls });
  expect((await b.apply(desired("rr"))).errors).toEqual([]);
  // The resync is requested while the apply to wlc is in flight (queued behind it).
  const applying = b.apply(desired("wlc"));
  const resync = b.resync();
  await applying;
  const r = await resync;
  expect(r!.drift).toEqual([]);
  expect(r!.writes).toBe(0);
  expect(ipvs.table.get("tcp 192.0.2.10 80")!.service.scheduler).toBe("wlc");
  await b.close();
});
