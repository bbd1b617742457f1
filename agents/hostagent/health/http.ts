// HTTP/HTTPS GET check: expected status (0 = any 2xx), optional body regex (compiled once, `u` flag),
// Host header (default: the real server address). One hard timeout covers connect, TLS, headers
// and body, so a server that trickles its body cannot hold the check longer than `timeout`.
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import type { HttpCheck } from "../../../gen/lvsfleet/v1/types_pb.js";
import { errorDetail, timeoutResult, type CheckResult, type Probe } from "./types.js";

/** Bodies are read up to this many bytes for the regex (a health page, not a download). */
export const MAX_BODY_BYTES = 64 * 1024;

export function httpProbe(spec: Pick<HttpCheck, "path" | "expectedStatus" | "bodyRegex" | "hostHeader" | "tls" | "tlsSkipVerify">): Probe {
  let regex: RegExp | undefined;
  let regexError: string | undefined;
  if (spec.bodyRegex !== "") {
    try {
      regex = new RegExp(spec.bodyRegex, "u");
    } catch (err) {
      regexError = `invalid body_regex: ${(err as Error).message}`;
    }
  }
  const path = spec.path === "" ? "/" : spec.path.startsWith("/") ? spec.path : `/${spec.path}`;
  const defaultPort = spec.tls ? 443 : 80;

  return (target, timeoutMs) =>
    new Promise<CheckResult>((resolve) => {
      if (regexError) return resolve({ ok: false, detail: regexError });
      const hostOnly = isIP(target.address) === 6 ? `[${target.address}]` : target.address;
      const host = spec.hostHeader !== "" ? spec.hostHeader : target.port === defaultPort ? hostOnly : `${hostOnly}:${target.port}`;
      const sniName = spec.hostHeader !== "" ? spec.hostHeader.replace(/:\d+$/, "") : undefined;
      const options = {
        host: target.address,
        port: target.port,
        path,
        method: "GET",
        headers: { Host: host, "User-Agent": "lvsfleet-healthcheck", Connection: "close" },
        agent: false as const,
        // TLS: SNI from the Host header when it names a host (SNI may not carry an IP address).
        ...(spec.tls
          ? { rejectUnauthorized: !spec.tlsSkipVerify, servername: sniName && isIP(sniName) === 0 ? sniName : undefined }
          : {}),
      };
      let settled = false;
      const finish = (r: CheckResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        resolve(r);
      };
      const onResponse = (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const statusOk = spec.expectedStatus === 0 ? status >= 200 && status < 300 : status === spec.expectedStatus;
        if (!statusOk) {
          res.resume();
          return finish({ ok: false, detail: `HTTP ${status}` });
        }
        if (!regex) {
          res.resume();
          return finish({ ok: true, detail: `HTTP ${status}` });
        }
        const chunks: Buffer[] = [];
        let size = 0;
        const test = () => {
          const body = Buffer.concat(chunks).toString("utf8");
          finish(regex!.test(body) ? { ok: true, detail: `HTTP ${status}` } : { ok: false, detail: `HTTP ${status}, body does not match /${spec.bodyRegex}/` });
        };
        res.on("data", (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= MAX_BODY_BYTES) test();
        });
        res.once("end", test);
        res.once("error", (err) => finish({ ok: false, detail: errorDetail("read", err) }));
      };
      const req = (spec.tls ? httpsRequest : httpRequest)(options, onResponse);
      const timer = setTimeout(() => finish(timeoutResult(timeoutMs)), timeoutMs);
      req.once("error", (err) => finish({ ok: false, detail: errorDetail("connect", err) }));
      req.end();
    });
}
