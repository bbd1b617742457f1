/**
 * What a handler knows about its caller: plain data, no transport types. The gRPC binding
 * (topology-service.ts) builds it from request metadata.
 */
import { LvsfleetError } from "../domain/errors.js";
import type { WriteMeta } from "../store/index.js";

export interface RequestContext {
  /** Caller identity; "anonymous" until authentication lands. */
  actor: string;
  /** Optional reason for the audit log (request metadata `x-lvsfleet-reason`). */
  reason?: string;
}

export const REASON_METADATA_KEY = "x-lvsfleet-reason";
export const ANONYMOUS = "anonymous";
const MAX_REASON = 1024;

/** The audit metadata of a write, after checking the reason is sane. */
export function writeMeta(ctx: RequestContext, operation: string): WriteMeta {
  const reason = ctx.reason ?? "";
  if ([...reason].length > MAX_REASON) {
    throw LvsfleetError.invalid([
      { field: REASON_METADATA_KEY, reason: "REASON_TOO_LONG", description: `the reason is at most ${MAX_REASON} characters` },
    ]);
  }
  return { actor: ctx.actor || ANONYMOUS, operation, reason: reason || undefined };
}
