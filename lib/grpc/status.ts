/**
 * LvsfleetError ⇄ gRPC status, with rich details in the standard `grpc-status-details-bin` trailer
 * (a google.rpc.Status whose details hold google.rpc.BadRequest / PreconditionFailure / ResourceInfo),
 * as described in https://cloud.google.com/apis/design/errors#error_model. Servers call
 * `toServiceError`; clients call `fromServiceError`. Nothing else maps errors.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, type Any } from "@bufbuild/protobuf/wkt";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  BadRequestSchema,
  BadRequest_FieldViolationSchema,
  PreconditionFailureSchema,
  PreconditionFailure_ViolationSchema,
  ResourceInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";
import { LvsfleetError, type ErrorCode, type FieldViolation, type PreconditionViolation } from "../../services/controlplane/domain/errors.js";

export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

const codeToGrpc: Record<ErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  ABORTED: grpc.status.ABORTED,
  OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
  UNIMPLEMENTED: grpc.status.UNIMPLEMENTED,
  INTERNAL: grpc.status.INTERNAL,
};

/** Maps any thrown value to a grpc-js ServiceError. Unknown errors become INTERNAL without leaking internals. */
export function toServiceError(err: unknown): grpc.ServiceError {
  if (!(err instanceof LvsfleetError)) {
    const md = new grpc.Metadata();
    return Object.assign(new Error("internal error"), { code: grpc.status.INTERNAL, details: "internal error", metadata: md });
  }
  const code = codeToGrpc[err.code];
  const details: Any[] = [];
  const fv = err.details.fieldViolations ?? [];
  if (fv.length > 0) {
    details.push(
      anyPack(
        BadRequestSchema,
        create(BadRequestSchema, {
          fieldViolations: fv.map((v) => create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description, reason: v.reason ?? "" })),
        }),
      ),
    );
  }
  const pv = err.details.preconditionViolations ?? [];
  if (pv.length > 0) {
    details.push(
      anyPack(PreconditionFailureSchema, create(PreconditionFailureSchema, { violations: pv.map((v) => create(PreconditionFailure_ViolationSchema, v)) })),
    );
  }
  if (err.details.resourceName) {
    details.push(anyPack(ResourceInfoSchema, create(ResourceInfoSchema, { resourceName: err.details.resourceName })));
  }
  const md = new grpc.Metadata();
  md.set(STATUS_DETAILS_KEY, Buffer.from(toBinary(StatusSchema, create(StatusSchema, { code, message: err.message, details }))));
  return Object.assign(new Error(err.message), { code, details: err.message, metadata: md });
}

/** An RPC failure as seen by a client, with the decoded google.rpc details. */
export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(
    /** gRPC status code number. */
    readonly code: grpc.status,
    message: string,
    readonly fieldViolations: FieldViolation[] = [],
    readonly preconditionViolations: PreconditionViolation[] = [],
    readonly resourceName?: string,
  ) {
    super(message);
  }
  /** Canonical code name, e.g. "INVALID_ARGUMENT". */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

/** Decodes a grpc-js client error (and its status details trailer) into an RpcError. */
export function fromServiceError(err: grpc.ServiceError): RpcError {
  const raw = err.metadata?.get(STATUS_DETAILS_KEY)?.[0];
  const fv: FieldViolation[] = [];
  const pv: PreconditionViolation[] = [];
  let resourceName: string | undefined;
  if (raw instanceof Buffer) {
    try {
      const st = fromBinary(StatusSchema, raw);
      for (const any of st.details) {
        const br = anyUnpack(any, BadRequestSchema);
        if (br) fv.push(...br.fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: v.reason || undefined })));
        const pf = anyUnpack(any, PreconditionFailureSchema);
        if (pf) pv.push(...pf.violations.map((v) => ({ type: v.type, subject: v.subject, description: v.description })));
        const ri = anyUnpack(any, ResourceInfoSchema);
        if (ri) resourceName = ri.resourceName;
      }
    } catch {
      // Malformed details: keep the plain status.
    }
  }
  return new RpcError(err.code, err.details || err.message, fv, pv, resourceName);
}
