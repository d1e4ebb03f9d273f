// Validation of what clients send: a publish (HTTP body or socket `pub`) and socket frames.
// Failures are ServiceErrors phrased for the client.
import { ServiceError } from "./errors.js";
import { LIMITS } from "./limits.js";

/** What a publisher sends, after validation. */
export interface PublishInput {
  event: string;
  /** Serialized JSON of the message's data. */
  data: string;
  id: string;
}

const invalid = (message: string) => new ServiceError("bad_request", message);

function checkName(what: string, value: unknown, max: number): string {
  if (typeof value !== "string") throw invalid(`${what} must be a string`);
  if (value.length < 1 || value.length > max) throw invalid(`${what} must be 1-${max} characters (got ${value.length})`);
  return value;
}

/** Checks an optional idempotency id; a missing one is made here, once, so retries can reuse it. */
export function checkId(value: unknown): string {
  return value === undefined || value === null ? crypto.randomUUID() : checkName("id", value, LIMITS.id);
}

/** Validates `{event, data, id?}` from an HTTP publish (or the socket's `{e, d, id?}`). */
export function toPublishInput(event: unknown, data: unknown, id: unknown, dataPresent: boolean): PublishInput {
  const e = checkName("event", event, LIMITS.eventName);
  if (!dataPresent) throw invalid("data is required (use null for none)");
  return { event: e, data: JSON.stringify(data), id: checkId(id) };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A client frame as the server acts on it; unknown types are kept apart, to be ignored. */
export type ParsedClientFrame = { t: "pub"; input: PublishInput } | { t: "auth"; token: string } | { t: "unknown" };

/** Parses one socket text frame; throws a `bad_frame` ServiceError for a frame of no known shape. */
export function parseClientFrame(text: string): ParsedClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ServiceError("bad_frame", "frame is not valid JSON");
  }
  if (!isObject(value) || typeof value.t !== "string") throw new ServiceError("bad_frame", 'frame must be a JSON object with a string "t"');
  switch (value.t) {
    case "pub":
      try {
        return { t: "pub", input: toPublishInput(value.e, value.d, value.id, "d" in value) };
      } catch (err) {
        const id = typeof value.id === "string" && value.id.length <= LIMITS.id ? value.id : undefined;
        throw err instanceof ServiceError ? err.asBadFrame(id) : err;
      }
    case "auth":
      if (typeof value.token !== "string" || value.token === "") throw new ServiceError("bad_frame", 'auth frame needs a string "token"');
      return { t: "auth", token: value.token };
    default:
      return { t: "unknown" };
  }
}
