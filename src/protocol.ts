import { LIMITS } from "./config";
import type { ErrFrame, ErrorCode, ServerFrame } from "./client/frames";

/** Version of the frame protocol, sent in `welcome`. */
export const PROTOCOL_VERSION = 1;

const CHANNEL_RE = /^[A-Za-z0-9_\-.:=@,;]{1,128}$/;

export function isValidChannel(name: string): boolean {
  return CHANNEL_RE.test(name);
}

/** A message as the log stores it; `data` stays serialized JSON so fan-out never re-encodes it. */
export interface LoggedMessage {
  seq: number;
  id: string;
  event: string;
  data: string;
  ts: number;
  sender: string | null;
}

/** What a publisher sends, after validation. */
export interface PublishInput {
  event: string;
  /** Serialized JSON of the message's data. */
  data: string;
  id: string;
}

export type { PublishResult } from "./client/frames";

export type { AckFrame, ErrFrame, ErrorCode, JoinFrame, LeaveFrame, Member, MembersFrame, MsgFrame, ResetFrame, ServerFrame, WelcomeFrame } from "./client/frames";

/** A frame serialized once, ready for any transport; `id` is a msg's SSE id (EPOCH:SEQ). */
export interface Out {
  t: ServerFrame["t"];
  json: string;
  id?: string;
}

/**
 * The one place a `msg` frame is serialized. `data` is spliced in as stored, so a publish is
 * encoded once, not once per socket, and replay does not parse what it sends.
 */
export function msgFrame(ch: string, m: LoggedMessage): string {
  const u = m.sender === null ? "" : `,"u":${JSON.stringify(m.sender)}`;
  return `{"t":"msg","ch":${JSON.stringify(ch)},"seq":${m.seq},"id":${JSON.stringify(m.id)},"e":${JSON.stringify(m.event)},"d":${m.data},"ts":${m.ts}${u}}`;
}

export const out = (f: ServerFrame): Out => ({ t: f.t, json: JSON.stringify(f) });

export function msgOut(ch: string, m: LoggedMessage, epoch: string | null): Out {
  return { t: "msg", json: msgFrame(ch, m), id: `${epoch}:${m.seq}` };
}

export function errFrame(code: ErrorCode, message: string, id?: string): ErrFrame {
  return id === undefined ? { t: "err", code, message } : { t: "err", code, message, id };
}

/** The err frame sent just before the server closes a connection with `close`. */
export function closingFrame(code: ErrorCode, message: string, close: number): ErrFrame {
  return { t: "err", code, message, close };
}

/** A validation failure, phrased for the client; `id` names the `pub` it answers, if known. */
export class InvalidInput extends Error {
  constructor(
    message: string,
    readonly id?: string,
  ) {
    super(message);
  }
}

function checkName(what: string, value: unknown, max: number): string {
  if (typeof value !== "string") throw new InvalidInput(`${what} must be a string`);
  if (value.length < 1 || value.length > max) {
    throw new InvalidInput(`${what} must be 1-${max} characters (got ${value.length})`);
  }
  return value;
}

/** Checks an optional idempotency id; a missing one is made here, once, so retries can reuse it. */
export function checkId(value: unknown): string {
  return value === undefined || value === null ? crypto.randomUUID() : checkName("id", value, LIMITS.id);
}

/** Validates `{event, data, id?}` from an HTTP publish (or the socket's `{e, d, id?}`). */
export function toPublishInput(event: unknown, data: unknown, id: unknown, dataPresent: boolean): PublishInput {
  const e = checkName("event", event, LIMITS.eventName);
  if (!dataPresent) throw new InvalidInput("data is required (use null for none)");
  return { event: e, data: JSON.stringify(data), id: checkId(id) };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Client-to-server frames. Unknown types are ignored by the room (forward compatible). */
export type ClientFrame =
  | { t: "pub"; input: PublishInput }
  | { t: "auth"; token: string }
  | { t: "unknown" };

/** Parses one socket text frame; throws InvalidInput for a frame of no known shape. */
export function parseClientFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidInput("frame is not valid JSON");
  }
  if (!isObject(value) || typeof value.t !== "string") {
    throw new InvalidInput('frame must be a JSON object with a string "t"');
  }
  switch (value.t) {
    case "pub":
      try {
        return { t: "pub", input: toPublishInput(value.e, value.d, value.id, "d" in value) };
      } catch (err) {
        const id = typeof value.id === "string" && value.id.length <= LIMITS.id ? value.id : undefined;
        throw err instanceof InvalidInput ? new InvalidInput(err.message, id) : err;
      }
    case "auth":
      if (typeof value.token !== "string" || value.token === "") {
        throw new InvalidInput('auth frame needs a string "token"');
      }
      return { t: "auth", token: value.token };
    default:
      return { t: "unknown" };
  }
}
