// The VM harness tells a wedged guest (soft lockup past WEDGED_AFTER_S) from a slow one
// (test/harness/vm/channel.ts wedgedGuest), from serial console text as the 2026-11-26 run logged it.
import { describe, expect, it } from "vitest";
import { WEDGED_AFTER_S, wedgedGuest } from "../harness/vm/channel.js";

const boot = "lvsfleet-vm: stage1 on 6.1.0-56-amd64\nlvsfleet-vm: ready (doorbell /dev/vport2p1)\n";
const stall =
  "[  328.476941] rcu: INFO: rcu_preempt self-detected stall on CPU\n" +
  "[  328.480678] rcu: \tPossible timer handling issue on cpu=1 timer-softirq=7050\n";
const lockup = (cpu: number, s: number) => `[  356.354654] watchdog: BUG: soft lockup - CPU#${cpu} stuck for ${s}s! [node:481]\n`;

describe("wedgedGuest", () => {
  it("a healthy or merely stalled guest is not wedged", () => {
    expect(wedgedGuest(boot)).toBeUndefined();
    expect(wedgedGuest(boot + stall)).toBeUndefined();
    expect(wedgedGuest(boot + stall + lockup(0, 48) + lockup(1, 48))).toBeUndefined();
    expect(wedgedGuest(boot + lockup(0, WEDGED_AFTER_S - 1))).toBeUndefined();
  });

  it("a vCPU stuck for WEDGED_AFTER_S or more is, named with its longest report", () => {
    expect(wedgedGuest(boot + stall + lockup(0, 48) + lockup(1, 130) + lockup(0, 104))).toBe("the guest kernel is wedged: soft lockup, CPU#1 stuck for 130s");
    expect(wedgedGuest(boot + lockup(0, 600) + lockup(1, 600))).toBe("the guest kernel is wedged: soft lockup, CPU#0 stuck for 600s");
  });
});
