import type { WriteMeta } from "./db.js";
export type { Page } from "./rows.js";

/** A written (or validated) resource and the revision of the write (0n for validate_only). */
export interface Written<T> {
  resource: T;
  revision: bigint;
}

export interface Read<T> {
  resource: T;
  /** The global revision the read saw. */
  revision: bigint;
}

export interface ListOptions {
  pageSize?: number;
  pageToken?: string;
}

export interface CreateOptions {
  validateOnly?: boolean;
}

export interface UpdateOptions {
  /** update_mask paths; empty = every field the caller may set. */
  paths: readonly string[];
  validateOnly?: boolean;
}

export interface DeleteOptions {
  /** If set, must equal the current etag. */
  etag?: string;
  /** Delete children and references too, instead of FAILED_PRECONDITION. */
  force?: boolean;
}

export type { WriteMeta };
