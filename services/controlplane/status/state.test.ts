import { describe, expect, it } from "vitest";
import { AgentPhase } from "../../../gen/lvsfleet/v1/agent_report_pb.js";
import { HostState } from "../../../gen/lvsfleet/v1/fleet_service_pb.js";
import { deriveState, type StatusFacts } from "./state.js";

const now = new Date("2026-01-01T00:00:10Z");
const base: StatusFacts = {
  desiredRevision: 10n,
  desiredHash: "h10",
  appliedRevision: 10n,
  appliedHash: "h10",
  seenRevision: 10n,
  phase: AgentPhase.IDLE,
  lastSeen: new Date("2026-01-01T00:00:09Z"),
  heartbeatSeconds: 2,
};

describe("deriveState", () => {
  it.each([
    ["applied the latest", {}, HostState.CONVERGED],
    ["applied a newer revision than published (relay catching up)", { appliedRevision: 11n, appliedHash: "x" }, HostState.CONVERGED],
    ["same hash stamped with an older revision", { appliedRevision: 8n }, HostState.CONVERGED],
    ["behind, has not seen the new one", { appliedRevision: 8n, appliedHash: "h8", seenRevision: 8n }, HostState.STALE],
    ["saw the new one", { appliedRevision: 8n, appliedHash: "h8", seenRevision: 10n }, HostState.APPLYING],
    ["applying", { appliedRevision: 8n, appliedHash: "h8", seenRevision: 8n, phase: AgentPhase.APPLYING }, HostState.APPLYING],
    ["failed", { appliedRevision: 8n, appliedHash: "h8", seenRevision: 10n, phase: AgentPhase.ERROR }, HostState.ERROR],
    ["never reported", { lastSeen: undefined }, HostState.OFFLINE],
    ["heartbeats stopped (3 × 2 s)", { lastSeen: new Date("2026-01-01T00:00:03Z") }, HostState.OFFLINE],
    ["within 3 heartbeats", { lastSeen: new Date("2026-01-01T00:00:04Z") }, HostState.CONVERGED],
    ["nothing published yet", { desiredRevision: 0n, desiredHash: "", appliedRevision: 0n, appliedHash: "" }, HostState.CONVERGED],
  ] as const)("%s", (_name, patch, want) => {
    expect(deriveState({ ...base, ...patch }, now)).toBe(want);
  });
});
