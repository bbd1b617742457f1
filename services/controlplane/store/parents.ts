import { LvsfleetError } from "../domain/errors.js";

/**
 * A create whose parent does not exist. INVALID_ARGUMENT naming the parent field (the issue lists
 * "a RealServer whose VirtualService does not exist" among validation errors), used for every parent.
 */
export function parentMissing(field: string, parentName: string): LvsfleetError {
  return LvsfleetError.invalid([
    { field, reason: "PARENT_NOT_FOUND", description: `${parentName} does not exist` },
  ]);
}
