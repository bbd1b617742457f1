// Plans a topology change: compile the site before and after, diff each host. Pure.
import { compileSite, type SiteTopology } from "../compile/index.js";
import { diffDesired, warnings, type PlanDiff } from "./diff.js";

export interface SitePlan {
  /** Host id → its items; only hosts with at least one item, sorted by host id. */
  hosts: Map<string, PlanDiff[]>;
  warnings: string[];
}

/** `before`/`after` undefined = the site does not exist (then no host holds anything). */
export function planSite(before: SiteTopology | undefined, after: SiteTopology | undefined): SitePlan {
  const a = before ? compileSite(before, 0n) : new Map();
  const b = after ? compileSite(after, 0n) : new Map();
  const hosts = new Map<string, PlanDiff[]>();
  for (const h of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const items = diffDesired(a.get(h), b.get(h));
    if (items.length) hosts.set(h, items);
  }
  return { hosts, warnings: warnings(before, after, hosts) };
}
