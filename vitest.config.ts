import { defineConfig } from "vitest/config";

// Two projects:
//  - "unit": pure logic plus integration tests against the real Postgres and NATS on this machine.
//  - "kernel": tests that need a real kernel (network namespaces on the host; IPVS on the host when
//    it has ip_vs, otherwise inside the qemu VM booted once per run by test/harness).
// .ci/run sets LVSFLEET_TEST_REPORT to count passed/failed tests from vitest's JSON report.
const report = process.env.LVSFLEET_TEST_REPORT;

export default defineConfig({
  test: {
    reporters: report ? ["default", ["json", { outputFile: report }]] : ["default"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["lib/**/*.test.ts", "services/**/*.test.ts", "agents/**/*.test.ts", "cli/**/*.test.ts", "test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "kernel",
          include: ["test/kernel/**/*.test.ts"],
          // Starts the kernel target once per run (the qemu VM when the host kernel has no ip_vs) and
          // provides it to the test files: see test/harness/README.md.
          globalSetup: ["test/harness/vm/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // Kernel tests share namespaces / one VM: run files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
