// Typed errors of the non-IPVS kernel adapters. Netlink errors (rtnetlink) are the transport's
// NetlinkError; these cover /proc/sys and nft.

export type SysctlErrorReason = "not-found" | "invalid-value" | "permission" | "readback-mismatch" | "bad-key" | "io";

export class SysctlError extends Error {
  override name = "SysctlError";
  constructor(
    readonly reason: SysctlErrorReason,
    /** Dotted sysctl(8) form of the key (dots inside a component written as '/'). */
    readonly key: string,
    message: string,
    /** errno name from the failed fs call, if any ("ENOENT", "EINVAL", "EACCES", ...). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * The sysctl does not exist: the interface is gone, or the subsystem is not loaded
 * (net.ipv4.vs.* exists only once the ip_vs module is loaded, and only per network namespace
 * after ip_vs initialised it there).
 */
export class SysctlNotFoundError extends SysctlError {
  override name = "SysctlNotFoundError";
  constructor(key: string, hint: string) {
    super("not-found", key, `sysctl ${key} does not exist (${hint})`, "ENOENT");
  }
}

export class FwmarkInputError extends Error {
  override name = "FwmarkInputError";
  constructor(
    /** Field path in the FwmarkRule[] input, e.g. "rules[2].matches[0].ports[1].end". */
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** nft exited non-zero (the transaction was not committed) or printed something we cannot parse. */
export class NftError extends Error {
  override name = "NftError";
  constructor(
    readonly operation: string,
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`nft ${operation}: ${message}`);
  }
}
