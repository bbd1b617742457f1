import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LvsfleetError } from "./errors.js";
import {
  firewallMarkName,
  hostName,
  isValidId,
  parseFirewallMarkName,
  parseHostName,
  parseRealServerName,
  parseSiteName,
  parseSiteParent,
  parseVirtualServiceName,
  realServerName,
  siteName,
  validateId,
  virtualServiceName,
} from "./names.js";

function thrown(fn: () => unknown): LvsfleetError {
  try {
    fn();
  } catch (e) {
    if (e instanceof LvsfleetError) return e;
    throw new Error(`threw something else: ${String(e)}`);
  }
  throw new Error("did not throw");
}

const idArb = fc.stringMatching(/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/);

describe("validateId", () => {
  it.each(["a", "web", "web-1", "a1", "a".repeat(63), "x-y-z0"])("accepts %j", (id) => {
    expect(validateId(id, "site_id")).toEqual([]);
  });

  it.each([
    ["", "REQUIRED"],
    ["A", "INVALID_ID"],
    ["1web", "INVALID_ID"],
    ["-web", "INVALID_ID"],
    ["web-", "INVALID_ID"],
    ["web_1", "INVALID_ID"],
    ["web.1", "INVALID_ID"],
    ["wéb", "INVALID_ID"],
    ["a".repeat(64), "INVALID_ID"],
    ["web\n", "INVALID_ID"],
  ])("rejects %j with %s naming the field", (id, reason) => {
    expect(validateId(id, "virtual_service_id")).toEqual([expect.objectContaining({ field: "virtual_service_id", reason })]);
  });
});

describe("format and parse", () => {
  it("formats the AIP-122 patterns", () => {
    expect(siteName("fra")).toBe("sites/fra");
    expect(hostName("fra", "lb1")).toBe("sites/fra/hosts/lb1");
    expect(virtualServiceName("fra", "web")).toBe("sites/fra/virtualServices/web");
    expect(realServerName("fra", "web", "rs1")).toBe("sites/fra/virtualServices/web/realServers/rs1");
    expect(firewallMarkName("fra", "ftp")).toBe("sites/fra/firewallMarks/ftp");
  });

  it("round-trips every valid id", () => {
    fc.assert(
      fc.property(idArb, idArb, idArb, (a, b, c) => {
        expect(parseSiteName(siteName(a), "name")).toEqual({ site: a });
        expect(parseHostName(hostName(a, b), "name")).toEqual({ site: a, host: b });
        expect(parseVirtualServiceName(virtualServiceName(a, b), "name")).toEqual({ site: a, virtualService: b });
        expect(parseRealServerName(realServerName(a, b, c), "name")).toEqual({ site: a, virtualService: b, realServer: c });
        expect(parseFirewallMarkName(firewallMarkName(a, b), "name")).toEqual({ site: a, firewallMark: b });
      }),
    );
  });

  it.each([
    [() => parseSiteName("", "name"), "name", "REQUIRED"],
    [() => parseSiteName("site/fra", "name"), "name", "INVALID_NAME"],
    [() => parseSiteName("sites/fra/hosts/x", "parent"), "parent", "INVALID_NAME"],
    [() => parseSiteName("sites/FRA", "name"), "name", "INVALID_NAME"],
    [() => parseSiteName("sites/-", "parent"), "parent", "INVALID_NAME"],
    [() => parseHostName("sites/fra/host/lb1", "host.name"), "host.name", "INVALID_NAME"],
    [() => parseHostName("sites/fra/hosts/", "name"), "name", "INVALID_NAME"],
    [() => parseVirtualServiceName("sites/fra/virtualservices/web", "parent"), "parent", "INVALID_NAME"],
    [() => parseVirtualServiceName("sites/fra/virtualServices/web/", "name"), "name", "INVALID_NAME"],
    [() => parseRealServerName("sites/fra/virtualServices/web/realServers/RS", "name"), "name", "INVALID_NAME"],
    [() => parseFirewallMarkName("/sites/fra/firewallMarks/ftp", "name"), "name", "INVALID_NAME"],
  ])("throws INVALID_ARGUMENT naming the field (%#)", (fn, field, reason) => {
    const e = thrown(fn);
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.details.fieldViolations).toEqual([expect.objectContaining({ field, reason })]);
  });

  it("accepts the wildcard parent only where asked", () => {
    expect(parseSiteParent("sites/-", "parent", { allowWildcard: true })).toEqual({ site: "-" });
    expect(parseSiteParent("sites/fra", "parent", { allowWildcard: true })).toEqual({ site: "fra" });
    expect(thrown(() => parseSiteParent("sites/-", "parent", { allowWildcard: false })).code).toBe("INVALID_ARGUMENT");
  });

  it("parse* throw only LvsfleetError INVALID_ARGUMENT on any input, and accept only canonical names", () => {
    const parsers = [parseSiteName, parseHostName, parseVirtualServiceName, parseRealServerName, parseFirewallMarkName];
    const nameish = fc.oneof(
      fc.string(),
      fc.string({ unit: "grapheme" }),
      fc.array(fc.oneof(fc.constantFrom("sites", "hosts", "virtualServices", "realServers", "firewallMarks", "", "-", "..", "A"), idArb), { maxLength: 7 }).map((xs) => xs.join("/")),
      fc.anything() as fc.Arbitrary<unknown>,
    );
    fc.assert(
      fc.property(nameish, fc.integer({ min: 0, max: parsers.length - 1 }), (name, i) => {
        let result: Record<string, string> | undefined;
        try {
          result = parsers[i]!(name as string, "f");
        } catch (e) {
          expect(e).toBeInstanceOf(LvsfleetError);
          expect((e as LvsfleetError).code).toBe("INVALID_ARGUMENT");
          expect((e as LvsfleetError).details.fieldViolations?.[0]?.field).toBe("f");
          return;
        }
        for (const id of Object.values(result)) expect(isValidId(id)).toBe(true);
        expect(typeof name === "string" && name.startsWith("sites/")).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
