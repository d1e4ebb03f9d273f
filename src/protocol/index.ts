// The wire contract both sides import: frames, error codes and close codes, the cursor, limits
// and channel kinds. No server code: the client package ships it (docs/protocol.md in words).
export * from "./channels.js";
export * from "./close-codes.js";
export * from "./cursor.js";
export * from "./errors.js";
export * from "./frames.js";
export * from "./http.js";
export * from "./limits.js";

/** Version of the single-channel socket's frames, sent in `welcome`. */
export const PROTOCOL_VERSION = 1;
