import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AgentPhase, ObjectErrorSchema } from "../gen/lvsfleet/v1/agent_report_pb.js";
import { HostState, HostStatusSchema, WaitForRolloutResponseSchema, type HostStatus } from "../gen/lvsfleet/v1/fleet_service_pb.js";
import {
  formatAge,
  formatHostStatuses,
  formatProgress,
  formatRolloutOutcome,
  hasRevision,
  mergeRollouts,
  parseDuration,
  parseStates,
  ProgressLine,
  runFleet,
  type FleetClient,
} from "./fleet.js";

const NOW = new Date("2026-11-25T12:00:00Z");
const st = (host: string, init: Omit<Partial<HostStatus>, "$typeName"> = {}): HostStatus =>
  create(HostStatusSchema, { site: "ams1", host, heartbeatSeconds: 5, phase: AgentPhase.IDLE, ...init });

describe("parsing", () => {
  it("parses durations", () => {
    expect(parseDuration("60s")).toBe(60_000);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("45")).toBe(45_000);
    for (const bad of ["", "5x", "s", "10s garbage", "-1s"]) expect(() => parseDuration(bad), bad).toThrow(/bad duration/);
  });
  it("parses states, case-insensitive and comma-separated", () => {
    expect(parseStates(["converged", "OFFLINE,stale"])).toEqual([HostState.CONVERGED, HostState.OFFLINE, HostState.STALE]);
    expect(parseStates(["HOST_STATE_ERROR", "error"])).toEqual([HostState.ERROR]);
    expect(() => parseStates(["busy"])).toThrow(/unknown state "busy"/);
  });
});

describe("formatting", () => {
  it("prints ages", () => {
    expect(formatAge(undefined, NOW)).toBe("never");
    expect(formatAge(new Date(NOW.getTime() - 4_200), NOW)).toBe("4s ago");
    expect(formatAge(new Date(NOW.getTime() - 300_000), NOW)).toBe("5m ago");
    expect(formatAge(new Date(NOW.getTime() - 3 * 3600_000), NOW)).toBe("3h ago");
    expect(formatAge(new Date(NOW.getTime() - 3 * 86_400_000), NOW)).toBe("3d ago");
  });

  it("prints the hosts table sorted, with states, revisions, last seen and errors", () => {
    const out = formatHostStatuses(
      [
        st("web1", { state: HostState.OFFLINE, desiredRevision: 12n }),
        st("lb1", {
          state: HostState.ERROR,
          appliedRevision: 10n,
          desiredRevision: 12n,
          lastSeen: timestampFromDate(new Date(NOW.getTime() - 3000)),
          errors: [create(ObjectErrorSchema, { object: "ipvs-service tcp 192.0.2.1:80", operation: "add", message: "EEXIST" })],
        }),
        create(HostStatusSchema, { site: "ams0", host: "lb9", state: HostState.CONVERGED, appliedRevision: 7n, desiredRevision: 7n, lastSeen: timestampFromDate(NOW) }),
      ],
      NOW,
    );
    expect(out).toBe(
      [
        "HOST       STATE      APPLIED  DESIRED  LAST SEEN  ERRORS",
        "ams0/lb9   CONVERGED  7        7        0s ago     0",
        "ams1/lb1   ERROR      10       12       3s ago     1",
        "ams1/web1  OFFLINE    -        12       never      0",
        "error: ams1/lb1: ipvs-service tcp 192.0.2.1:80: add: EEXIST",
        "",
      ].join("\n"),
    );
    expect(formatHostStatuses([], NOW)).toBe("no hosts\n");
  });

  it("counts a host as at the revision by applied revision or converged hash", () => {
    expect(hasRevision(st("a", { appliedRevision: 5n }), 5n)).toBe(true);
    expect(hasRevision(st("a", { appliedRevision: 4n }), 5n)).toBe(false);
    const same = { appliedRevision: 3n, desiredRevision: 3n, appliedHash: "h", desiredHash: "h" };
    expect(hasRevision(st("a", { ...same, state: HostState.CONVERGED }), 5n)).toBe(true);
    expect(hasRevision(st("a", { ...same, state: HostState.OFFLINE }), 5n)).toBe(false);
    expect(hasRevision(st("a", { ...same, appliedHash: "", desiredHash: "", state: HostState.CONVERGED }), 5n)).toBe(false);
  });

  it("rewrites the progress line in place on a terminal, plain lines otherwise", () => {
    const tty = new ProgressLine(true);
    expect(tty.update(formatProgress(3, 50, 1234n))).toBe("\r3/50 hosts at revision 1234");
    expect(tty.update(formatProgress(3, 50, 1234n))).toBe("");
    expect(tty.update("9/9 ok")).toBe("\r9/9 ok".padEnd("\r3/50 hosts at revision 1234".length));
    expect(tty.finish()).toBe("\n");
    const plain = new ProgressLine(false);
    expect(plain.update(formatProgress(0, 2, 7n))).toBe("0/2 hosts at revision 7\n");
    expect(plain.update(formatProgress(0, 2, 7n))).toBe("");
    expect(plain.update(formatProgress(1, 2, 7n))).toBe("1/2 hosts at revision 7\n");
    expect(plain.finish()).toBe("");
  });

  it("sums per-site rollouts and lists who has not", () => {
    const done = create(WaitForRolloutResponseSchema, { complete: true, totalHosts: 3, doneHosts: 3 });
    const late = create(WaitForRolloutResponseSchema, {
      complete: false,
      totalHosts: 2,
      doneHosts: 1,
      pending: [st("web2", { state: HostState.STALE, appliedRevision: 40n, desiredRevision: 42n, lastSeen: timestampFromDate(NOW) })],
    });
    const ok = mergeRollouts(42n, [done]);
    expect(formatRolloutOutcome(ok, 60_000, NOW)).toBe("rollout complete: 3/3 hosts at revision 42\n");
    const bad = mergeRollouts(42n, [done, late]);
    expect(bad).toMatchObject({ complete: false, totalHosts: 5, doneHosts: 4 });
    expect(formatRolloutOutcome(bad, 60_000, NOW)).toBe(
      "rollout of revision 42 not complete after 60s: 4/5 hosts at revision 42; 1 host has not:\n" +
        "HOST       STATE  APPLIED  DESIRED  LAST SEEN  ERRORS\n" +
        "ams1/web2  STALE  40       42       0s ago     0\n",
    );
  });
});

/** An in-memory FleetService client: just enough for the runner's control flow. */
function fakeClient(statuses: HostStatus[], verdict: (site: string) => { complete: boolean; pending: HostStatus[] }, calls: string[]): FleetClient {
  return {
    async listHostStatuses(req: { site?: string; states?: HostState[] }) {
      calls.push(`list ${req.site ?? ""} ${(req.states ?? []).join(",")}`);
      return { statuses: statuses.filter((s) => (!req.site || s.site === req.site) && (!req.states?.length || req.states.includes(s.state))), nextPageToken: "" };
    },
    async *watchHostStatuses(_req: unknown, opts?: { signal?: AbortSignal }) {
      for (const s of statuses) yield { status: { ...s, appliedRevision: 99n }, initial: false };
      if (!opts?.signal?.aborted) await new Promise((r) => opts?.signal?.addEventListener("abort", r));
    },
    async waitForRollout(req: { site: string; revision: bigint }) {
      calls.push(`wait ${req.site} ${req.revision}`);
      const hosts = statuses.filter((s) => s.site === req.site);
      const v = verdict(req.site);
      return { complete: v.complete, totalHosts: hosts.length, doneHosts: hosts.length - v.pending.length, pending: v.pending };
    },
    close() {},
  } as unknown as FleetClient;
}

describe("runFleet", () => {
  const statuses = [
    st("lb1", { state: HostState.CONVERGED, appliedRevision: 8n, desiredRevision: 8n }),
    create(HostStatusSchema, { site: "fra1", host: "lb2", state: HostState.OFFLINE, desiredRevision: 9n }),
  ];
  const io = () => {
    const o = { out: "", err: "", stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) };
    return o;
  };

  it("leaves other commands alone", async () => {
    expect(await runFleet(["site", "list"], {}, io(), () => fakeClient([], () => ({ complete: true, pending: [] }), []))).toBeUndefined();
  });

  it("hosts: filters and prints", async () => {
    const calls: string[] = [];
    const o = io();
    expect(await runFleet(["hosts", "--state", "offline"], {}, o, () => fakeClient(statuses, () => ({ complete: true, pending: [] }), calls), () => NOW)).toBe(0);
    expect(calls).toEqual([`list  ${HostState.OFFLINE}`]);
    expect(o.out).toContain("fra1/lb2  OFFLINE");
    expect(o.out).not.toContain("ams1/lb1");
    const j = io();
    expect(await runFleet(["--json", "hosts"], {}, j, () => fakeClient(statuses, () => ({ complete: true, pending: [] }), []))).toBe(0);
    expect((JSON.parse(j.out) as { statuses: unknown[] }).statuses).toHaveLength(2);
  });

  it("usage errors exit 2", async () => {
    const mk = () => fakeClient(statuses, () => ({ complete: true, pending: [] }), []);
    for (const argv of [["hosts", "--state", "busy"], ["rollout"], ["rollout", "go"], ["rollout", "wait", "--revision", "x"], ["rollout", "wait", "--timeout", "soon"]]) {
      const o = io();
      expect(await runFleet(argv, {}, o, mk), argv.join(" ")).toBe(2);
      expect(o.err).toMatch(/^error: /);
    }
  });

  it("rollout wait: one call per site, newest revision by default, exit 0 when complete", async () => {
    const calls: string[] = [];
    const o = io();
    expect(await runFleet(["rollout", "wait"], {}, o, () => fakeClient(statuses, () => ({ complete: true, pending: [] }), calls), () => NOW)).toBe(0);
    expect(calls.filter((c) => c.startsWith("wait")).sort()).toEqual(["wait ams1 9", "wait fra1 9"]);
    expect(o.out).toContain("rollout complete: 2/2 hosts at revision 9\n");
    expect(o.out.split("\n")[0]).toMatch(/^\d\/2 hosts at revision 9$/);
  });

  it("rollout wait: exit 1 with the hosts that have not", async () => {
    const o = io();
    const code = await runFleet(
      ["rollout", "wait", "--site", "fra1", "--revision", "9", "--timeout", "1s"],
      {},
      o,
      () => fakeClient(statuses, (site) => ({ complete: false, pending: statuses.filter((s) => s.site === site) }), []),
      () => NOW,
    );
    expect(code).toBe(1);
    expect(o.out).toContain("not complete after 1s: 0/1 hosts at revision 9; 1 host has not:");
    expect(o.out).toContain("fra1/lb2  OFFLINE");
  });
});
