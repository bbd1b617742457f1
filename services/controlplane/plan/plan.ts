// Plans a topology change: compile the site before and after, diff each host. Pure.
import { compileSite, type SiteTopology } from "../compile/index.js";
import { diffDesired, warnings, type PlanDiff, type RealServerHealth } from "./diff.js";

export interface SitePlan {
  /** Host id → its items; only hosts with at least one item, sorted by host id. */
  hosts: Map<string, PlanDiff[]>;
  warnings: string[];
}

export interface PlanOptions {
  /**
   * Reported health per real server resource name, one entry per Director (the control plane's
   * store of the agents' health reports). Given, the plan warns when a change takes out the last
   * real server reported healthy, or cannot tell because health is unknown. Absent: no health
   * warnings (only the weight-based "last real server" one).
   */
  health?: ReadonlyMap<string, readonly RealServerHealth[]>;
}

/** `before`/`after` undefined = the site does not exist (then no host holds anything). */
export function planSite(before: SiteTopology | undefined, after: SiteTopology | undefined, opts: PlanOptions = {}): SitePlan {
  const a = before ? compileSite(before, 0n) : new Map();
  const b = after ? compileSite(after, 0n) : new Map();
  const hosts = new Map<string, PlanDiff[]>();
  for (const h of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const items = diffDesired(a.get(h), b.get(h));
    if (items.length) hosts.set(h, items);
  }
  return { hosts, warnings: warnings(before, after, hosts, opts.health) };
}
