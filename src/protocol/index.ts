// The wire contract both sides import: frames, errors and close codes, the cursor, limits and
// input validation. One source of truth (docs/protocol.md describes it in words).
export * from "./close-codes.js";
export * from "./cursor.js";
export * from "./errors.js";
export * from "./frames.js";
export * from "./input.js";
export * from "./limits.js";

/** Version of the single-channel socket's frames, sent in `welcome`. */
export const PROTOCOL_VERSION = 1;
