/**
 * Small defensive helpers for validators that must never throw, whatever a client (or a fuzzer)
 * put into a message: wrong types, NaN, huge numbers, missing or extra properties.
 */
import type { FieldViolation } from "./errors.js";

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * An integer in [min, max], as a JS number: 32-bit proto fields are numbers in protobuf-es, so a
 * bigint (or a numeric string) there is a malformed message, not a value.
 */
export function isIntIn(v: unknown, min: number, max: number): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

/** Number value of an integer field (a number, or a bigint for 64-bit fields), or NaN when it is not a safe integer. */
export function intOf(v: unknown): number {
  if (typeof v === "bigint") return v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(-Number.MAX_SAFE_INTEGER) ? NaN : Number(v);
  return typeof v === "number" && Number.isInteger(v) ? v : NaN;
}

export function strOf(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function arrOf(v: unknown): unknown[] | undefined {
  return Array.isArray(v) ? v : undefined;
}

/** Text of an arbitrary value for an error message, short and never throwing. */
export function show(v: unknown): string {
  try {
    if (typeof v === "bigint") return `${v}`;
    if (typeof v === "string") return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
    if (typeof v === "number" || typeof v === "boolean" || v === undefined || v === null) return String(v);
    return typeof v;
  } catch {
    return "value";
  }
}

/**
 * A deep copy of plain data (objects, arrays, primitives). Messages of protobuf-es v2 are plain
 * objects, so this copies them too; anything exotic is kept by reference. Depth-limited so hostile
 * input can't blow the stack.
 */
export function deepCopy<T>(v: T, depth = 0): T {
  if (depth > 64 || typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => deepCopy(x, depth + 1)) as T;
  if (ArrayBuffer.isView(v)) return v;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return v;
  const out: Obj = {};
  for (const k of Object.keys(v)) {
    if (k === "__proto__") continue;
    out[k] = deepCopy((v as Obj)[k], depth + 1);
  }
  return out as T;
}

/** Collects violations. */
export class Violations {
  readonly list: FieldViolation[] = [];
  add(field: string, reason: string, description: string): void {
    this.list.push({ field, reason, description });
  }
  addAll(vs: FieldViolation[]): void {
    this.list.push(...vs);
  }
}

/** Joins a field path: join("virtual_service", "port") → "virtual_service.port"; an empty prefix is dropped. */
export function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}
