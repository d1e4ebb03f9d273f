// Validation of what clients send: a publish (HTTP body or socket `pub`) and socket frames.
// Failures are ServiceErrors phrased for the client.
import { ServiceError } from "./service-error.js";
import { CHANNEL_RULE, isReservedEvent, isValidChannel, RESERVED_EVENT_PREFIXES } from "../protocol/channels.js";
import { LIMITS } from "../protocol/limits.js";
import { isObject } from "../protocol/json.js";
import type { PublishInput } from "../rpc.js";

export { isObject };
export type { PublishInput };


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
  // Clients act on these (pusher-js adds a member on pusher_internal:member_added): only the server sends them.
  if (isReservedEvent(e)) throw invalid(`event names starting ${RESERVED_EVENT_PREFIXES.join(", ")} are reserved for the server`);
  if (!dataPresent) throw invalid("data is required (use null for none)");
  return { event: e, data: JSON.stringify(data), id: checkId(id) };
}


/**
 * Validates an append `{append, data, id?, done?}` (socket: `{append, d, id?, done?}`): `data` is
 * the text to add to message `append`. Its event is the message's, filled in by the hub.
 */
export function toAppendInput(append: unknown, data: unknown, id: unknown, done: unknown): PublishInput {
  const to = checkName("append", append, LIMITS.id);
  if (typeof data !== "string") throw invalid("an append's data must be a string: the text to add");
  if (done !== undefined && typeof done !== "boolean") throw invalid("done must be true or false");
  return { event: "", data: JSON.stringify(data), id: checkId(id), append: { to, done: done === true } };
}

/** A publish or an append, by whether `append` is there: what HTTP bodies, batch items and socket `pub`s carry. */
export function toInput(body: Record<string, unknown>, dataKey: "data" | "d", eventKey: "event" | "e"): PublishInput {
  if (body.append !== undefined) return toAppendInput(body.append, body[dataKey], body.id, body.done);
  return toPublishInput(body[eventKey], body[dataKey], body.id, dataKey in body);
}

/** A `sub` of a multiplexed connection, validated. */
export interface SubRequest {
  ch: string;
  cursor: { seq: number; epoch: string | null } | null;
  rewind: number;
  token: string | null;
}

/** A client frame as the server acts on it; unknown types are kept apart, to be ignored. */
export type ParsedClientFrame =
  | { t: "pub"; input: PublishInput; ch: string | null }
  | { t: "auth"; token: string }
  | { t: "sub"; sub: SubRequest }
  | { t: "unsub"; ch: string }
  | { t: "more"; ch: string | null }
  | { t: "unknown" };

const SEQ_MAX = Number.MAX_SAFE_INTEGER;

function channelField(value: unknown): string {
  if (typeof value !== "string" || !isValidChannel(value)) throw new ServiceError("bad_frame", `"ch" must be a channel name: ${CHANNEL_RULE}`);
  return value;
}

function parseSub(value: Record<string, unknown>): SubRequest {
  const ch = channelField(value.ch);
  const bad = (message: string) => new ServiceError("bad_frame", message);
  const { since, epoch, rewind, token } = value;
  if (since !== undefined && (typeof since !== "number" || !Number.isInteger(since) || since < 0 || since > SEQ_MAX)) throw bad('"since" must be a non-negative integer');
  if (epoch !== undefined && (typeof epoch !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(epoch))) throw bad('"epoch" must be an epoch from a welcome, subscribed or reset frame');
  if (epoch !== undefined && since === undefined) throw bad('"epoch" needs "since"');
  if (rewind !== undefined && (typeof rewind !== "number" || !Number.isInteger(rewind) || rewind < 0 || rewind > LIMITS.rewind)) throw bad(`"rewind" must be 0-${LIMITS.rewind}`);
  if (token !== undefined && (typeof token !== "string" || token === "")) throw bad('"token" must be a string');
  return {
    ch,
    cursor: since === undefined ? null : { seq: since as number, epoch: (epoch as string | undefined) ?? null },
    rewind: since === undefined ? ((rewind as number | undefined) ?? 0) : 0,
    token: (token as string | undefined) ?? null,
  };
}

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
        const ch = value.ch === undefined ? null : channelField(value.ch);
        return { t: "pub", input: toInput(value, "d", "e"), ch };
      } catch (err) {
        const id = typeof value.id === "string" && value.id.length <= LIMITS.id ? value.id : undefined;
        throw err instanceof ServiceError ? err.asBadFrame(id) : err;
      }
    case "sub":
      return { t: "sub", sub: parseSub(value) };
    case "unsub":
      return { t: "unsub", ch: channelField(value.ch) };
    case "auth":
      if (typeof value.token !== "string" || value.token === "") throw new ServiceError("bad_frame", 'auth frame needs a string "token"');
      return { t: "auth", token: value.token };
    case "more":
      return { t: "more", ch: value.ch === undefined ? null : channelField(value.ch) };
    default:
      return { t: "unknown" };
  }
}
