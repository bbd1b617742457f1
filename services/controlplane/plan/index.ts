export { diffDesired, serviceKey, warnings, type PlanActionName, type PlanDiff, type PlanKind } from "./diff.js";
export { planSite, type SitePlan } from "./plan.js";
