// Pusher's HTTP API (DESIGN.md "Pusher-compatible endpoint"), mapped onto the same rooms: events
// are published to the channels' logs like any other publish; channel info comes from the hubs'
// stats and the directory of occupied channels. Every request is signed as the official `pusher`
// SDKs sign it; failures answer Pusher's statuses with a plain-text reason.
import type { IRequest } from "itty-router";
import { configFor } from "../settings/config.js";
import type { Env } from "../env.js";
import { readBytes, utf8Text } from "../http/body.js";
import type { Reach } from "../http/reach.js";
import { isObject, type PublishInput } from "../server/input.js";
import { isUserId, TERMINATE_EVENT, userChannel, userOf } from "./users.js";
import { CHANNEL_RULE, isPresenceChannel, isValidChannel, LIMITS, isReservedEvent, RESERVED_EVENT_PREFIXES } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import { directoryStub, hubStub, type PublishAnswer, type PublishOptions } from "../rpc.js";
import { requirePusherApp, type PusherApp } from "./app.js";
import { SOCKET_ID_RE, storedData } from "./frames.js";
import { md5Hex, sha256Hex, verifyHmacHex } from "./signature.js";

/** How far a request's auth_timestamp may be from the server's clock, either way. */
const TIMESTAMP_WINDOW_S = 600;

/** Refusals are ServiceErrors like any other; this surface renders them as Pusher does (plain text). */
const STATUS_CODES = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "too_large" } as const;
const refused = (status: keyof typeof STATUS_CODES, message: string) => new ServiceError(STATUS_CODES[status], message);
const badRequest = (message: string) => refused(400, message);


/** A presence channel's members, from its hub. */
async function membersOf(env: Env, channel: string): Promise<{ members: { id: string }[]; count: number }> {
  return hubStub(env, channel).members();
}

/** What a verified query vouches for: its signature (lowercase hex) and the body_md5 it signed. */
interface SignedQuery {
  signature: string;
  bodyMd5: string | undefined;
}

/**
 * Checks the signed query: key, version, timestamp and the signature over
 * `METHOD\nPATH\nQUERY` (every other parameter, sorted by name, `name=value` as sent), then the
 * app id in the path. Needs nothing of the body: body_md5 is one of the signed parameters, so a
 * forged or stale request is refused before a byte of its body is read (DESIGN.md v1.3
 * "Bounded memory and time per request"); the body is then held to the body_md5 signed here.
 */
async function verifyQuery(app: PusherApp, request: IRequest, url: URL, path: string): Promise<SignedQuery> {
  const pairs = url.search
    .slice(1)
    .split("&")
    .filter((p) => p !== "")
    .map((p): [string, string] => {
      const eq = p.indexOf("=");
      return eq < 0 ? [p, ""] : [p.slice(0, eq), p.slice(eq + 1)];
    });
  const param = (name: string) => pairs.find(([n]) => n === name)?.[1];
  const signature = param("auth_signature");
  const timestamp = param("auth_timestamp");
  if (param("auth_key") === undefined || timestamp === undefined || signature === undefined) {
    throw refused(401, "Missing auth parameters: auth_key, auth_timestamp, auth_version and auth_signature are required");
  }
  if (param("auth_key") !== app.key) throw refused(401, "Unknown auth_key");
  if (param("auth_version") !== "1.0") throw refused(401, "Unsupported auth_version: use 1.0");
  const now = Math.floor(Date.now() / 1000);
  if (!/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > TIMESTAMP_WINDOW_S) {
    throw refused(401, `Timestamp expired: Given timestamp (${timestamp.slice(0, 20)}) not within ${TIMESTAMP_WINDOW_S}s of server time (${now})`);
  }
  const query = pairs
    .filter(([n]) => n !== "auth_signature")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join("&");
  const signed = `${request.method}\n${path}\n${query}`;
  if (!(await verifyHmacHex(app.secret, signed, signature))) {
    throw refused(401, `Invalid signature: Expected HMAC SHA256 hex digest of ${JSON.stringify(signed)}`);
  }
  if (decodeURIComponent(request.params.id ?? "") !== app.id) throw refused(403, "Wrong app id: this server answers for another app");
  return { signature: signature.toLowerCase(), bodyMd5: param("body_md5") };
}

/**
 * A POST's body, once its query is verified: read with a hard byte cap (100 events of
 * MAX_MESSAGE_BYTES; a chunked body is cut at the cap, 413), then held to the signed body_md5,
 * computed over the bytes as received.
 */
async function signedBody(request: IRequest, env: Env, signed: SignedQuery): Promise<string> {
  const bytes = await readBytes(request, configFor(env, "").maxMessageBytes * LIMITS.batch);
  if ((bytes.byteLength > 0 || signed.bodyMd5 !== undefined) && signed.bodyMd5 !== (await md5Hex(bytes))) {
    throw refused(401, "body_md5 does not match the body");
  }
  return utf8Text(bytes);
}

/** What a handler gets: the verified request, its body (POST) and the signature that vouched for it. */
interface Signed {
  request: IRequest;
  env: Env;
  url: URL;
  body: string;
  /** auth_signature, lowercase: what makes a replay of this request recognisable. */
  signature: string;
}

type Handler = (signed: Signed) => Promise<unknown>;

/** A route of the API: signed, answered as JSON, refused in Pusher's words. */
function route(handler: Handler) {
  return async (request: IRequest, env: Env, _ctx: ExecutionContext, reach: Reach): Promise<Response> => {
    const app = requirePusherApp(env);
    try {
      const url = new URL(request.url);
      // Signed over the path the client asked for: under a mount, with its prefix.
      const signed = await verifyQuery(app, request, url, reach.prefix + url.pathname);
      const body = request.method === "POST" ? await signedBody(request, env, signed) : "";
      return Response.json(await handler({ request, env, url, body, signature: signed.signature }));
    } catch (err) {
      if (err instanceof ServiceError) {
        return new Response(err.message, { status: err.status, headers: { "content-type": "text/plain; charset=utf-8" } });
      }
      throw err;
    }
  };
}

function jsonBody(body: string): Record<string, unknown> {
  try {
    const value = JSON.parse(body) as unknown;
    if (isObject(value)) return value;
  } catch {
    // answered below
  }
  throw badRequest("Body must be a JSON object");
}

function channelName(value: unknown): string {
  // A user's channel (`sendToUser`) is the one `#` name the API takes.
  if (typeof value === "string" && userOf(value) !== null) return value;
  if (typeof value !== "string" || !isValidChannel(value)) throw badRequest(`Invalid channel name: a channel is ${CHANNEL_RULE}`);
  return value;
}

/**
 * The idempotency id of the event at `position` of a signed request to `channel` (DESIGN.md
 * v1.3 "Replays of signed requests"): the same for a replay of that request, which the hub's
 * dedupe then answers as a duplicate, and different for any other request (another signature)
 * or another event of it. Ids are 1-128 characters: past that, the name is hashed (the hashed
 * form holds no further ':', so it cannot meet a readable one).
 */
async function eventId(signature: string, channel: string, position: number): Promise<string> {
  const id = `pusher:${signature}:${channel}:${position}`;
  return id.length <= LIMITS.id ? id : `pusher:${await sha256Hex(id)}`;
}

/** One event as the log keeps it, checked like Pusher checks it (name, data, size, socket_id). */
function eventInput(env: Env, channel: string, item: Record<string, unknown>, id: string): { input: PublishInput; exclude: string | null } {
  const { name, data, socket_id: socketId } = item;
  if (typeof name !== "string" || name.length < 1 || name.length > LIMITS.eventName) throw badRequest(`Invalid event name: 1-${LIMITS.eventName} characters`);
  // The same rule as every other publisher: pusher-js acts on these, only the server sends them.
  if (isReservedEvent(name)) throw badRequest(`Invalid event name: names starting ${RESERVED_EVENT_PREFIXES.join(", ")} are reserved for the server`);
  if (data === undefined) throw badRequest("Missing data");
  if (socketId !== undefined && (typeof socketId !== "string" || !SOCKET_ID_RE.test(socketId))) throw badRequest("Invalid socket_id");
  const stored = storedData(data);
  const max = configFor(env, channel).maxMessageBytes;
  if (new TextEncoder().encode(stored).byteLength > max) throw refused(413, `Event data is over MAX_MESSAGE_BYTES (${max})`);
  return { input: { event: name, data: stored, id }, exclude: (socketId as string | undefined) ?? null };
}

/**
 * How this API publishes: as the origin, in the publish key's id space (scope ""), where a
 * replay's derived id meets the first one's.
 */
const originOptions = (exclude: string | null): PublishOptions => ({ sender: null, exclude, by: "origin", scope: "" });

/** A publish the hub refused (it answers `{refused}` rather than throwing across RPC), in Pusher's words. */
function published(answer: PublishAnswer): void {
  if ("refused" in answer) throw new ServiceError(answer.refused.code, answer.refused.message);
}

/**
 * `POST /apps/:id/events`: one event to `channel` or up to 100 `channels`, but `socket_id`. Its
 * id on each channel derives from the signature and the channel's position in the list.
 */
async function events({ env, body, signature }: Signed): Promise<unknown> {
  const event = jsonBody(body);
  const channels = Array.isArray(event.channels) ? event.channels : event.channel !== undefined ? [event.channel] : [];
  if (channels.length === 0) throw badRequest("Missing channels: name channel or channels");
  if (channels.length > LIMITS.batch) throw badRequest(`Too many channels: at most ${LIMITS.batch}`);
  const named = channels.map(channelName);
  const ids = await Promise.all(named.map((channel, i) => eventId(signature, channel, i)));
  const checked = named.map((channel, i) => ({ channel, ...eventInput(env, channel, event, ids[i]!) }));
  await Promise.all(checked.map(async ({ channel, input, exclude }) => published(await hubStub(env, channel).publish(input, originOptions(exclude)))));
  return {};
}

/**
 * `POST /apps/:id/batch_events`: up to 100 events; events to one channel keep their order. Each
 * event's id derives from the signature, its channel and its position in the batch.
 */
async function batchEvents({ env, body, signature }: Signed): Promise<unknown> {
  const { batch } = jsonBody(body);
  if (!Array.isArray(batch) || batch.length === 0) throw badRequest("Missing batch: an array of events");
  if (batch.length > LIMITS.batch) throw badRequest(`Batch too large: at most ${LIMITS.batch} events`);
  const byChannel = new Map<string, { input: PublishInput; exclude: string | null }[]>();
  for (const [i, item] of batch.entries()) {
    if (!isObject(item)) throw badRequest("Each batch item is an object {channel, name, data}");
    const channel = channelName(item.channel);
    const list = byChannel.get(channel) ?? [];
    list.push(eventInput(env, channel, item, await eventId(signature, channel, i)));
    byChannel.set(channel, list);
  }
  await Promise.all(
    [...byChannel].map(async ([channel, items]) => {
      for (const { input, exclude } of items) published(await hubStub(env, channel).publish(input, originOptions(exclude)));
    }),
  );
  return {};
}

const infoOf = (url: URL) => new Set((url.searchParams.get("info") ?? "").split(",").filter((s) => s !== ""));

/** `GET /apps/:id/channels`: occupied channels, `filter_by_prefix`, `info=user_count` (presence ones) and `subscription_count`. */
async function channels({ env, url }: Signed): Promise<unknown> {
  const prefix = url.searchParams.get("filter_by_prefix") ?? "";
  const userCount = infoOf(url).has("user_count");
  if (userCount && !isPresenceChannel(prefix)) throw badRequest("info=user_count is only for presence channels: add filter_by_prefix=presence-");
  const subscriptionCount = infoOf(url).has("subscription_count");
  const names = await directoryStub(env).list(prefix);
  const counts = userCount ? await Promise.all(names.map(async (name) => (await membersOf(env, name)).count)) : [];
  const subscribed = subscriptionCount ? await Promise.all(names.map(async (name) => (await hubStub(env, name).stats()).subscribers)) : [];
  const infoAt = (i: number) => ({ ...(userCount ? { user_count: counts[i] } : {}), ...(subscriptionCount ? { subscription_count: subscribed[i] } : {}) });
  return { channels: Object.fromEntries(names.map((name, i) => [name, infoAt(i)])) };
}

function pathChannel(request: IRequest): string {
  try {
    return channelName(decodeURIComponent(request.params.name ?? ""));
  } catch (err) {
    if (err instanceof URIError) throw badRequest("Invalid channel name: bad percent-encoding");
    throw err;
  }
}

/** `GET /apps/:id/channels/:name`: `occupied`, `subscription_count` (every client kind), `user_count`. */
async function channel({ request, env, url }: Signed): Promise<unknown> {
  const name = pathChannel(request);
  const presence = isPresenceChannel(name);
  if (infoOf(url).has("user_count") && !presence) throw badRequest("info=user_count is only for presence channels");
  const stats = await hubStub(env, name).stats();
  return { occupied: stats.subscribers > 0, subscription_count: stats.subscribers, ...(presence ? { user_count: stats.presence ?? 0 } : {}) };
}

/** `GET /apps/:id/channels/:name/users`: a presence channel's users. */
async function users({ request, env }: Signed): Promise<unknown> {
  const name = pathChannel(request);
  if (!isPresenceChannel(name)) throw badRequest("Users are kept for presence channels only");
  const { members } = await membersOf(env, name);
  return { users: members.map((m) => ({ id: m.id })) };
}

/**
 * `POST /apps/:id/users/:user_id/terminate_connections`: every connection of the user, signed in
 * or in presence, on any edge, is closed (4009). Sent as an event on the user's channel that only
 * the server can make; a replay of the request is the same event, answered as a duplicate.
 */
async function terminate({ request, env, signature }: Signed): Promise<unknown> {
  let user: string;
  try {
    user = decodeURIComponent(request.params.user_id ?? "");
  } catch {
    throw badRequest("Invalid user id: bad percent-encoding");
  }
  if (!isUserId(user)) throw badRequest(`Invalid user id: 1-${LIMITS.id} of A-Z a-z 0-9 _ - = @ , . ;`);
  const channel = userChannel(user);
  const input = { event: TERMINATE_EVENT, data: "{}", id: await eventId(signature, channel, 0) };
  published(await hubStub(env, channel).publish(input, originOptions(null)));
  return {};
}

export const pusherApi = {
  terminate: route(terminate),
  events: route(events),
  batchEvents: route(batchEvents),
  channels: route(channels),
  channel: route(channel),
  users: route(users),
};
