import { CHANNEL_RULE, isValidChannel, LIMITS, type BatchResult } from "../protocol/index.js";
import { checkId, isObject, toInput, type PublishInput } from "../server/input.js";
import { ServiceError } from "../server/service-error.js";

/** One message of a batch, validated, in request order. */
export interface BatchItem {
  channel: string;
  input: PublishInput;
}

export type { BatchResult };

const utf8 = new TextEncoder();

const bad = (message: string) => new ServiceError("bad_request", message);

/** Runs a validation of one item, naming the item in its error. */
function within<T>(where: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw err instanceof ServiceError ? bad(`${where}: ${err.message}`) : err;
  }
}

function item(where: string, channel: unknown, fields: Record<string, unknown>, maxBytes: number): BatchItem {
  if (typeof channel !== "string" || !isValidChannel(channel)) {
    throw bad(`${where}.channel must be ${CHANNEL_RULE}`);
  }
  const input: PublishInput = within(where, () => toInput(fields, "data", "event"));
  // Bytes, as every MAX_MESSAGE_BYTES check counts them: a UTF-16 unit is 1-3 of them.
  if (utf8.encode(input.data).byteLength + utf8.encode(input.event).byteLength + utf8.encode(input.id).byteLength > maxBytes) {
    throw new ServiceError("too_large", `${where} is over MAX_MESSAGE_BYTES (${maxBytes})`);
  }
  return { channel, input };
}

/**
 * `{"messages":[{channel, event, data, id?}...]}` or `{"channels":[...], event, data, id?}`.
 * Any malformed item refuses the whole batch (400 naming its index), so nothing is half-sent
 * because of a typo; failures after validation are reported per message.
 */
export function parseBatch(body: unknown, maxBytes: number): BatchItem[] {
  if (!isObject(body)) throw bad('body must be {"messages": [...]} or {"channels": [...], "event", "data"}');
  if (Array.isArray(body.messages)) {
    const list = body.messages;
    checkCount(list.length, "messages");
    return list.map((m, i) => {
      if (!isObject(m)) throw bad(`messages[${i}] must be an object`);
      return item(`messages[${i}]`, m.channel, m, maxBytes);
    });
  }
  if (Array.isArray(body.channels)) {
    const list = body.channels;
    checkCount(list.length, "channels");
    // One id for every channel: ids are per channel, and a retry reuses it.
    const id = checkId(body.id);
    if (body.append !== undefined) throw bad("an append grows one message of one channel: send it in messages[], with its channel");
    return list.map((ch, i) => item(`channels[${i}]`, ch, { ...body, id }, maxBytes));
  }
  throw bad('body must have a "messages" array or a "channels" array');
}

function checkCount(n: number, what: string): void {
  if (n === 0) throw bad(`${what} must not be empty`);
  if (n > LIMITS.batch) throw new ServiceError("too_large", `at most ${LIMITS.batch} ${what} per batch (got ${n})`);
}

/** Groups items by channel, keeping request order within each channel. */
export function byChannel(items: BatchItem[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  items.forEach((it, i) => {
    const list = groups.get(it.channel);
    if (list) list.push(i);
    else groups.set(it.channel, [i]);
  });
  return groups;
}
