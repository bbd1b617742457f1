export { outboxHook, OUTBOX_CHANNEL } from "./outbox.js";
export { DESIRED_BUCKET, emptyDesiredState, MARKER_KEY, RELAY_LOCK_KEY, startRelay, type Relay, type RelayLog, type RelayOptions, type RelayStats } from "./relay.js";
export { loadSiteTopology } from "./topology.js";
