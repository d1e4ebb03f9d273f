// Pusher's HTTP API (DESIGN.md "Pusher-compatible endpoint"), mapped onto the same rooms: events
// are published to the channels' logs like any other publish; channel info comes from the hubs'
// stats and the directory of occupied channels. Every request is signed as the official `pusher`
// SDKs sign it; failures answer Pusher's statuses with a plain-text reason.
import type { IRequest } from "itty-router";
import { configFor } from "../settings/config.js";
import type { Env } from "../env.js";
import { readText } from "../http/body.js";
import { isObject, type PublishInput } from "../server/input.js";
import { CHANNEL_RULE, isPresenceChannel, isValidChannel, LIMITS } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import { directoryStub, hubStub } from "../rpc.js";
import { requirePusherApp, type PusherApp } from "./app.js";
import { SOCKET_ID_RE, storedData } from "./frames.js";
import { md5Hex, verifyHmacHex } from "./signature.js";

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

/**
 * Checks the signed query: key, timestamp, body_md5 and the signature over
 * `METHOD\nPATH\nQUERY` (every other parameter, sorted by name, `name=value` as sent), then the
 * app id in the path.
 */
async function verifySigned(app: PusherApp, request: IRequest, url: URL, body: string): Promise<void> {
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
  if (body !== "" && param("body_md5") !== (await md5Hex(body))) throw refused(401, "body_md5 does not match the body");
  const query = pairs
    .filter(([n]) => n !== "auth_signature")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join("&");
  const signed = `${request.method}\n${url.pathname}\n${query}`;
  if (!(await verifyHmacHex(app.secret, signed, signature))) {
    throw refused(401, `Invalid signature: Expected HMAC SHA256 hex digest of ${JSON.stringify(signed)}`);
  }
  if (decodeURIComponent(request.params.id ?? "") !== app.id) throw refused(403, "Wrong app id: this server answers for another app");
}

type Handler = (request: IRequest, env: Env, url: URL, body: string) => Promise<unknown>;

/** A route of the API: signed, answered as JSON, refused in Pusher's words. */
function route(handler: Handler) {
  return async (request: IRequest, env: Env): Promise<Response> => {
    const app = requirePusherApp(env);
    try {
      const url = new URL(request.url);
      const body = request.method === "POST" ? await readText(request, configFor(env, "").maxMessageBytes * LIMITS.batch) : "";
      await verifySigned(app, request, url, body);
      return Response.json(await handler(request, env, url, body));
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
  if (typeof value !== "string" || !isValidChannel(value)) throw badRequest(`Invalid channel name: a channel is ${CHANNEL_RULE}`);
  return value;
}

/** One event as the log keeps it, checked like Pusher checks it (name, data, size, socket_id). */
function eventInput(env: Env, channel: string, item: Record<string, unknown>): { input: PublishInput; exclude: string | null } {
  const { name, data, socket_id: socketId } = item;
  if (typeof name !== "string" || name.length < 1 || name.length > LIMITS.eventName) throw badRequest(`Invalid event name: 1-${LIMITS.eventName} characters`);
  if (data === undefined) throw badRequest("Missing data");
  if (socketId !== undefined && (typeof socketId !== "string" || !SOCKET_ID_RE.test(socketId))) throw badRequest("Invalid socket_id");
  const stored = storedData(data);
  const max = configFor(env, channel).maxMessageBytes;
  if (new TextEncoder().encode(stored).byteLength > max) throw refused(413, `Event data is over MAX_MESSAGE_BYTES (${max})`);
  return { input: { event: name, data: stored, id: crypto.randomUUID() }, exclude: (socketId as string | undefined) ?? null };
}

/** `POST /apps/:id/events`: one event to `channel` or up to 100 `channels`, but `socket_id`. */
async function events(_request: IRequest, env: Env, _url: URL, body: string): Promise<unknown> {
  const event = jsonBody(body);
  const channels = Array.isArray(event.channels) ? event.channels : event.channel !== undefined ? [event.channel] : [];
  if (channels.length === 0) throw badRequest("Missing channels: name channel or channels");
  if (channels.length > LIMITS.batch) throw badRequest(`Too many channels: at most ${LIMITS.batch}`);
  const checked = channels.map((ch) => {
    const channel = channelName(ch);
    return { channel, ...eventInput(env, channel, event) };
  });
  await Promise.all(checked.map(({ channel, input, exclude }) => hubStub(env, channel).publish(input, { sender: null, exclude, by: "origin" })));
  return {};
}

/** `POST /apps/:id/batch_events`: up to 100 events; events to one channel keep their order. */
async function batchEvents(_request: IRequest, env: Env, _url: URL, body: string): Promise<unknown> {
  const { batch } = jsonBody(body);
  if (!Array.isArray(batch) || batch.length === 0) throw badRequest("Missing batch: an array of events");
  if (batch.length > LIMITS.batch) throw badRequest(`Batch too large: at most ${LIMITS.batch} events`);
  const byChannel = new Map<string, { input: PublishInput; exclude: string | null }[]>();
  for (const item of batch) {
    if (!isObject(item)) throw badRequest("Each batch item is an object {channel, name, data}");
    const channel = channelName(item.channel);
    const list = byChannel.get(channel) ?? [];
    list.push(eventInput(env, channel, item));
    byChannel.set(channel, list);
  }
  await Promise.all(
    [...byChannel].map(async ([channel, items]) => {
      for (const { input, exclude } of items) await hubStub(env, channel).publish(input, { sender: null, exclude, by: "origin" });
    }),
  );
  return {};
}

const infoOf = (url: URL) => new Set((url.searchParams.get("info") ?? "").split(",").filter((s) => s !== ""));

/** `GET /apps/:id/channels`: occupied channels, `filter_by_prefix`, `info=user_count` for presence ones. */
async function channels(_request: IRequest, env: Env, url: URL): Promise<unknown> {
  const prefix = url.searchParams.get("filter_by_prefix") ?? "";
  const userCount = infoOf(url).has("user_count");
  if (userCount && !isPresenceChannel(prefix)) throw badRequest("info=user_count is only for presence channels: add filter_by_prefix=presence-");
  const names = await directoryStub(env).list(prefix);
  const counts = userCount ? await Promise.all(names.map(async (name) => (await membersOf(env, name)).count)) : [];
  return { channels: Object.fromEntries(names.map((name, i) => [name, userCount ? { user_count: counts[i] } : {}])) };
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
async function channel(request: IRequest, env: Env, url: URL): Promise<unknown> {
  const name = pathChannel(request);
  const presence = isPresenceChannel(name);
  if (infoOf(url).has("user_count") && !presence) throw badRequest("info=user_count is only for presence channels");
  const stats = await hubStub(env, name).stats();
  return { occupied: stats.subscribers > 0, subscription_count: stats.subscribers, ...(presence ? { user_count: stats.presence ?? 0 } : {}) };
}

/** `GET /apps/:id/channels/:name/users`: a presence channel's users. */
async function users(request: IRequest, env: Env): Promise<unknown> {
  const name = pathChannel(request);
  if (!isPresenceChannel(name)) throw badRequest("Users are kept for presence channels only");
  const { members } = await membersOf(env, name);
  return { users: members.map((m) => ({ id: m.id })) };
}

export const pusherApi = {
  events: route(events),
  batchEvents: route(batchEvents),
  channels: route(channels),
  channel: route(channel),
  users: route(users),
};
