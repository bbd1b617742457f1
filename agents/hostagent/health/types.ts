// Shared shapes of the Director's health checks (issue 5, "Health checks").

/** What one probe found. `detail` is what the report shows as last_result ("HTTP 503", "connect ECONNREFUSED"). */
export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** The real server a probe talks to (the port is the check's port, or the real server's when 0). */
export interface Target {
  address: string;
  port: number;
}

/** One probe: resolves (never rejects) within about `timeoutMs`. */
export type Probe = (target: Target, timeoutMs: number) => Promise<CheckResult>;

export function timeoutResult(timeoutMs: number): CheckResult {
  return { ok: false, detail: `timeout after ${timeoutMs}ms` };
}

/** "connect ECONNREFUSED" from a Node error with a code, else its message. */
export function errorDetail(prefix: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return `${prefix} ${e?.code ?? e?.message ?? String(err)}`;
}
