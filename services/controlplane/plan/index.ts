export { diffDesired, serviceKey, warnings, type PlanActionName, type PlanDiff, type PlanKind, type RealServerHealth } from "./diff.js";
export { planSite, type PlanOptions, type SitePlan } from "./plan.js";
