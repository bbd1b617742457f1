export { fleetService, type FleetServiceDeps } from "./fleet-service.js";
export { startStatusIngest, STATUS_SUBJECT_PREFIX, type StatusIngest, type StatusIngestOptions } from "./ingest.js";
export { deriveState, MISSED_HEARTBEATS, upToDate } from "./state.js";
export { StatusStore, type StatusFilter } from "./store.js";
export {
  listRealServerHealth,
  listRealServerHealthStatus,
  listHealthTransitions,
  virtualServiceName,
  type DirectorHealth,
  type HealthWord,
  type Queryable,
} from "./health-store.js";
