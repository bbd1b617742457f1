// The host agent's pure reconciler: desired (HostDesiredState → DesiredHost) + observed kernel state
// + what the agent owns → ordered kernel operations. See reconcile.ts for the rules.
export * from "./types.js";
export { reconcile, emptyOwned, PHASES, type Phase } from "./reconcile.js";
export { desiredFromProto, emptyDesired, serviceSpecFromProto, serviceStateFromProto, destinationSpecFromProto, DesiredStateError, type DesiredOptions } from "./desired.js";
export { nextOwned, serializeOwned, parseOwned, OwnedFileError, type OwnedUpdate } from "./owned.js";
export * from "./keys.js";
