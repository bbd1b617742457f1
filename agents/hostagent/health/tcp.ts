// TCP connect check: healthy when the three-way handshake completes within the timeout.
import { connect } from "node:net";
import { errorDetail, timeoutResult, type CheckResult, type Probe } from "./types.js";

export const tcpProbe: Probe = (target, timeoutMs) =>
  new Promise<CheckResult>((resolve) => {
    const socket = connect({ host: target.address, port: target.port });
    const done = (r: CheckResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(timeoutResult(timeoutMs)), timeoutMs);
    socket.once("connect", () => done({ ok: true, detail: "connected" }));
    socket.once("error", (err) => done({ ok: false, detail: errorDetail("connect", err) }));
  });
