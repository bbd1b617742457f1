import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { DrainPhase, DrainRealServerResponseSchema } from "../gen/lvsfleet/v1/fleet_service_pb.js";
import { directorsText, progressText, resultText } from "./drain.js";
import { ProgressLine } from "./fleet.js";

const NAME = "sites/ams1/virtualServices/web/realServers/rs2";
const msg = (o: Parameters<typeof create<typeof DrainRealServerResponseSchema>>[1]) => create(DrainRealServerResponseSchema, o);

describe("drain progress and result text", () => {
  const waiting = msg({
    phase: DrainPhase.WAITING,
    revision: 12n,
    activeConnections: 3,
    elapsed: { seconds: 75n, nanos: 0 },
    directors: [
      { host: "lb1", applied: true, countersFresh: true, activeConnections: 3 },
      { host: "lb2", applied: true, countersFresh: false },
      { host: "lb3", applied: false },
    ],
  });

  it("names each Director's state: active count only from fresh counters", () => {
    expect(directorsText(waiting)).toBe("lb1 3 active, lb2 waiting for counters, lb3 applying");
    expect(directorsText(msg({ phase: DrainPhase.WAITING }))).toBe("no Directors carry it");
  });

  it("the elapsed time only on a terminal (the line is rewritten in place there)", () => {
    expect(progressText(NAME, waiting, true)).toBe(`draining ${NAME} 1m15s: 3 active connections (lb1 3 active, lb2 waiting for counters, lb3 applying)`);
    expect(progressText(NAME, waiting, false)).toBe(`draining ${NAME}: 3 active connections (lb1 3 active, lb2 waiting for counters, lb3 applying)`);
    const tty = new ProgressLine(true);
    expect(tty.update("a long line")).toBe("\ra long line");
    expect(tty.update("short")).toBe("\rshort      ");
    expect(tty.finish()).toBe("\n");
  });

  it("closing lines per phase", () => {
    expect(resultText(NAME, msg({ phase: DrainPhase.REMOVED, deleteRevision: 14n, elapsed: { seconds: 9n, nanos: 0 } }))).toBe(`${NAME} drained in 9s and deleted at revision 14`);
    expect(resultText(NAME, msg({ phase: DrainPhase.DEADLINE_EXCEEDED, activeConnections: 3, directors: waiting.directors, elapsed: { seconds: 300n, nanos: 0 } }))).toBe(
      `deadline exceeded after 5m00s: 3 active connections (lb1 3 active, lb2 waiting for counters, lb3 applying); ${NAME} left drained, not deleted`,
    );
    expect(resultText(NAME, msg({ phase: DrainPhase.DRAINING, revision: 12n, realServer: { weight: 4, draining: true } }))).toBe(
      `${NAME} draining (weight 0 on its Directors, configured weight 4 kept) at revision 12`,
    );
    expect(resultText(NAME, msg({ phase: DrainPhase.DRAINED, revision: 12n, elapsed: { seconds: 2n, nanos: 0 } }))).toBe(`${NAME} drained in 2s; kept (weight 0), revision 12`);
  });
});
