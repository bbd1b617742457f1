/** The domain of the control plane: resource names, addresses, defaults and LVS validation. */
export * from "./errors.js";
export * from "./names.js";
export * from "./address.js";
export * from "./validate.js";
export { settableFields } from "./fieldmask.js";
