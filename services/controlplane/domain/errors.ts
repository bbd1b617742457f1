/**
 * The one error type of the control plane. Domain code, stores and handlers throw it; the gRPC edge
 * (services/controlplane/api/grpc-server.ts) maps it to a gRPC status with google.rpc details, in one
 * place. Deliberately free of any grpc import: codes are the canonical names from
 * https://grpc.github.io/grpc/core/md_doc_statuscodes.html.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED"
  | "UNIMPLEMENTED"
  | "INTERNAL";

/** One bad field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** Path to the field in the request, snake_case as in the proto, e.g. "virtual_service.persistence.prefix_length". */
  field: string;
  /** Why it is bad, for a human. */
  description: string;
  /** UPPER_SNAKE_CASE reason, for a program, e.g. "PORT_REMAP_NOT_ALLOWED". */
  reason?: string;
}

/** A failed precondition (google.rpc.PreconditionFailure.Violation). */
export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

export class LvsfleetError extends Error {
  override readonly name = "LvsfleetError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: {
      fieldViolations?: FieldViolation[];
      preconditionViolations?: PreconditionViolation[];
      resourceName?: string;
    } = {},
  ) {
    super(message);
  }

  /** INVALID_ARGUMENT carrying every violation found (never just the first). */
  static invalid(violations: FieldViolation[], message?: string): LvsfleetError {
    const text =
      message ??
      (violations.length === 1
        ? `invalid ${violations[0]!.field}: ${violations[0]!.description}`
        : `${violations.length} invalid fields: ${violations.map((v) => v.field).join(", ")}`);
    return new LvsfleetError("INVALID_ARGUMENT", text, { fieldViolations: violations });
  }

  static notFound(resourceName: string): LvsfleetError {
    return new LvsfleetError("NOT_FOUND", `${resourceName} not found`, { resourceName });
  }

  static alreadyExists(resourceName: string): LvsfleetError {
    return new LvsfleetError("ALREADY_EXISTS", `${resourceName} already exists`, { resourceName });
  }

  static aborted(message: string, resourceName?: string): LvsfleetError {
    return new LvsfleetError("ABORTED", message, { resourceName });
  }

  static failedPrecondition(message: string, violations: PreconditionViolation[] = []): LvsfleetError {
    return new LvsfleetError("FAILED_PRECONDITION", message, { preconditionViolations: violations });
  }
}

/** Throws INVALID_ARGUMENT when there is at least one violation. */
export function throwIfInvalid(violations: FieldViolation[]): void {
  if (violations.length > 0) throw LvsfleetError.invalid(violations);
}
