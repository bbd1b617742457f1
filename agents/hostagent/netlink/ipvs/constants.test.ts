// Every constant of constants.ts against the kernel header itself: the test parses
// /usr/include/linux/ip_vs.h (#defines with their expressions, enums with implicit numbering),
// evaluates it independently and compares name by name, both ways.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as C from "./constants.js";

const HEADER = "/usr/include/linux/ip_vs.h";

type Value = number | string;

/** Evaluate a C integer constant expression over already-known names. */
function evalExpr(expr: string, known: Map<string, Value>): Value {
  const e = expr.trim();
  const str = /^"([^"]*)"$/.exec(e);
  if (str) return str[1]!;
  const tokens = e.match(/0[xX][0-9a-fA-F]+|\d+|[A-Za-z_]\w*|<<|>>|[()|&+\-~*]|\S/g) ?? [];
  const js = tokens
    .map((t) => {
      if (/^[A-Za-z_]\w*$/.test(t)) {
        const v = known.get(t);
        if (typeof v !== "number") throw new Error(`unknown name ${t} in ${expr}`);
        return `(${v})`;
      }
      if (/^(0[xX][0-9a-fA-F]+|\d+)$/.test(t)) return String(Number(t));
      if (["<<", ">>", "(", ")", "|", "&", "+", "-", "~", "*"].includes(t)) return t;
      throw new Error(`unexpected token ${t} in ${expr}`);
    })
    .join(" ");
  // Only numbers and operators reach this point (checked token by token above).
  return Function(`"use strict"; return (${js});`)() as number;
}

function parseHeader(text: string): Map<string, Value> {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\\\n/g, " ");
  const out = new Map<string, Value>();
  // Walk defines and enums in source order so later expressions can use earlier names.
  const re = /^#define[ \t]+(\w+)(\([^)]*\))?[ \t]*(.*)$|enum\s*\{([^}]*)\}/gm;
  for (const m of src.matchAll(re)) {
    if (m[1]) {
      const [, name, fnArgs, body] = m;
      if (fnArgs || !body || !body.trim()) continue; // function-like macros (NVERSION), include guard
      out.set(name!, evalExpr(body, out));
    } else if (m[4]) {
      let next = 0;
      for (const item of m[4].split(",")) {
        const t = item.trim();
        if (!t) continue;
        const [name, init] = t.split("=").map((s) => s.trim()) as [string, string | undefined];
        const v = init !== undefined ? (evalExpr(init, out) as number) : next;
        out.set(name, v);
        next = v + 1;
      }
    }
  }
  return out;
}

// Names constants.ts adds that the uapi header does not have (documented there).
const NOT_IN_HEADER = new Set([
  "IP_VS_SVC_F_SCHED_MH_FALLBACK",
  "IP_VS_SVC_F_SCHED_MH_PORT",
  "AF_INET",
  "AF_INET6",
  "IPPROTO_TCP",
  "IPPROTO_UDP",
  "IPPROTO_SCTP",
  "NF_INET_ADDR_LEN",
  "IP_VS_FLAGS_LEN",
]);

describe("IPVS constants vs " + HEADER, () => {
  const header = parseHeader(readFileSync(HEADER, "utf8"));
  const ours = C as unknown as Record<string, Value>;

  it("parses a plausible number of names from the header", () => {
    // Sanity for the parser itself: the 6.x header has > 150 names and these well-known values.
    expect(header.size).toBeGreaterThan(150);
    expect(header.get("IPVS_CMD_FLUSH")).toBe(17);
    expect(header.get("IP_VS_SO_SET_ZERO")).toBe(64 + 1024 + 64 + 15);
  });

  it("has every header constant with the header's value", () => {
    const missing: string[] = [];
    const wrong: string[] = [];
    for (const [name, value] of header) {
      if (!(name in ours)) missing.push(name);
      else if (ours[name] !== value) wrong.push(`${name}: ours ${ours[name]} header ${value}`);
    }
    expect(missing).toEqual([]);
    expect(wrong).toEqual([]);
  });

  it("invents no names: every exported constant is in the header or documented as extra", () => {
    const extra = Object.keys(ours).filter((k) => !header.has(k) && !NOT_IN_HEADER.has(k));
    expect(extra).toEqual([]);
  });

  it("the MH scheduler flags reuse SCHED1/SCHED2 as the kernel's ip_vs_mh.c does", () => {
    expect(C.IP_VS_SVC_F_SCHED_MH_FALLBACK).toBe(header.get("IP_VS_SVC_F_SCHED1"));
    expect(C.IP_VS_SVC_F_SCHED_MH_PORT).toBe(header.get("IP_VS_SVC_F_SCHED2"));
  });
});
