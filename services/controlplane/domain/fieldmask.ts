/**
 * Update with a field mask (https://google.aip.dev/134, https://google.aip.dev/161), generic over
 * the generated message descriptors.
 *
 *  - Paths are proto field names (snake_case), dot-separated into singular message fields:
 *    "scheduler", "persistence", "persistence.timeout_seconds", "health_check.http.path".
 *  - A listed field is copied from the patch, replacing the existing value entirely (repeated and
 *    map fields too, as AIP-134 prescribes); a field unset in the patch is cleared.
 *  - An empty mask, or the single path "*", means every field the caller may set (full replacement
 *    of the settable fields).
 *  - Unknown paths, paths through repeated/map/scalar fields, and output-only or identity fields
 *    (name, revision, etag, create_time, update_time) are INVALID_ARGUMENT naming `field` (the
 *    request path of the mask's paths, normally "update_mask.paths"), all of them at once.
 */
import { create, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { LvsfleetError } from "./errors.js";
import { deepCopy, show, Violations, type Obj } from "./util.js";

/** Fields clients never set: the identity (`name`) and what the server maintains. */
export const OUTPUT_ONLY_FIELDS: ReadonlySet<string> = new Set(["name", "revision", "etag", "create_time", "update_time"]);

const SEGMENT_RE = /^[a-z][a-z0-9_]*$/;

/** The settable top-level field names of a message (what an empty mask means). */
export function settableFields(schema: DescMessage): string[] {
  return schema.fields.filter((f) => !OUTPUT_ONLY_FIELDS.has(f.name)).map((f) => f.name);
}

function resolve(schema: DescMessage, path: unknown): DescField[] | { reason: string; description: string } {
  if (typeof path !== "string" || path === "") return { reason: "INVALID_FIELD_PATH", description: "a field path must be a non-empty string" };
  const segments = path.split(".");
  if (!segments.every((seg) => SEGMENT_RE.test(seg))) {
    return { reason: "INVALID_FIELD_PATH", description: `${show(path)} is not a field path (snake_case field names joined by ".")` };
  }
  const chain: DescField[] = [];
  let desc: DescMessage = schema;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const f = desc.fields.find((x) => x.name === seg);
    if (!f) return { reason: "UNKNOWN_FIELD", description: `${show(path)}: ${desc.name} has no field ${show(seg)}` };
    if (i === 0 && OUTPUT_ONLY_FIELDS.has(seg)) {
      return { reason: "OUTPUT_ONLY_FIELD", description: `${show(path)} can't be updated: ${seg === "name" ? "the name is the resource's identity" : "it is output only"}` };
    }
    chain.push(f);
    if (i < segments.length - 1) {
      if (f.fieldKind !== "message") return { reason: "INVALID_FIELD_PATH", description: `${show(path)}: can't descend into ${f.fieldKind} field ${show(seg)}` };
      desc = f.message;
    }
  }
  return chain;
}

function getField(obj: Obj, f: DescField): unknown {
  if (f.oneof) {
    const o = obj[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o && o.case === f.localName ? o.value : undefined;
  }
  return obj[f.localName];
}

function setField(obj: Obj, f: DescField, value: unknown): void {
  if (f.oneof) obj[f.oneof.localName] = { case: f.localName, value };
  else obj[f.localName] = value;
}

function clearField(obj: Obj, f: DescField): void {
  if (f.oneof) {
    const o = obj[f.oneof.localName] as { case?: string } | undefined;
    if (o && o.case === f.localName) obj[f.oneof.localName] = { case: undefined };
    return;
  }
  // The zero value as protobuf-es creates it: "" / 0 / false / [] / {} — or absent for message
  // fields and fields with explicit presence (proto3 `optional`).
  const zero = (create(f.parent) as unknown as Obj)[f.localName];
  if (zero === undefined) delete obj[f.localName];
  else obj[f.localName] = zero;
}

function apply(out: Obj, patch: Obj | undefined, chain: DescField[]): void {
  let dst = out;
  let src = patch;
  for (let i = 0; i < chain.length - 1; i++) {
    const f = chain[i]!;
    const srcNext = src ? getField(src, f) : undefined;
    let dstNext = getField(dst, f);
    if (typeof dstNext !== "object" || dstNext === null) {
      if (f.fieldKind !== "message") return;
      dstNext = create(f.message);
      setField(dst, f, dstNext);
    }
    dst = dstNext as Obj;
    src = typeof srcNext === "object" && srcNext !== null ? (srcNext as Obj) : undefined;
  }
  const leaf = chain[chain.length - 1]!;
  const value = src ? getField(src, leaf) : undefined;
  if (value === undefined) clearField(dst, leaf);
  else setField(dst, leaf, deepCopy(value));
}

/**
 * Applies `paths` of `patch` onto a copy of `existing` and returns it; neither input is modified.
 * Throws LvsfleetError INVALID_ARGUMENT (every bad path, each naming `field`) and nothing else.
 */
export function applyFieldMask<T extends Message>(schema: GenMessage<T>, existing: T, patch: T, paths: string[], field: string): T {
  const v = new Violations();
  let list: unknown[];
  if (!Array.isArray(paths)) {
    throw LvsfleetError.invalid([{ field, reason: "INVALID_FIELD_PATH", description: "update_mask paths must be a list" }]);
  }
  if (paths.length === 0 || (paths.length === 1 && paths[0] === "*")) list = settableFields(schema);
  else list = paths;
  const chains: DescField[][] = [];
  list.forEach((p, i) => {
    if (p === "*") {
      v.add(field, "INVALID_FIELD_PATH", `paths[${i}]: "*" must be the only path`);
      return;
    }
    const r = resolve(schema, p);
    if (Array.isArray(r)) chains.push(r);
    else v.add(field, r.reason, `paths[${i}]: ${r.description}`);
  });
  if (v.list.length > 0) throw LvsfleetError.invalid(v.list, `invalid ${field}: ${v.list.map((x) => x.description).join("; ")}`);
  const out = deepCopy(existing) as unknown as Obj;
  const src = typeof patch === "object" && patch !== null ? (patch as unknown as Obj) : undefined;
  for (const chain of chains) apply(out, src, chain);
  return out as unknown as T;
}
