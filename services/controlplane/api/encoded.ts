/**
 * The wire form of a cached read's response: the cached bytes (everything but the revision) plus the
 * revision field — field 2 of every Get*Response, field 3 of every List*Response (see
 * store/cached-reads.ts and lib/grpc/encoded.ts). Byte-identical to toBinary of the response message;
 * test/integration/read-cache.test.ts checks it for every resource kind.
 */
import { appendInt64Field } from "../../../lib/grpc/encoded.js";
import type { CachedGet, CachedPage } from "../store/cached-reads.js";

export const getBytes = (r: CachedGet<unknown>): Uint8Array => appendInt64Field(r.encoded, 2, r.revision);
export const listBytes = (p: CachedPage<unknown>): Uint8Array => appendInt64Field(p.encoded, 3, p.revision);
