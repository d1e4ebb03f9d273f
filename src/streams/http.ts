// `/v1/stream/:name`: the Durable Streams protocol (DESIGN v1.3 "Durable Streams endpoint";
// PROTOCOL.md of durable-streams/durable-streams, as the official conformance suite tests it).
// The Worker checks each request's form (400s), its credential (writes: the publish key or a
// token whose `pub` grants the channel; reads: the channel's subscribe rules) and its body cap,
// then asks the channel's hub, which keeps the stream in the channel's log. Long-polls wait in
// the hub; SSE streams are a loop of them here, so the hub holds no response open.
import type { Env } from "../env.js";
import { CHANNEL_RULE, isValidChannel } from "../protocol/index.js";
import { authorizePublish, authorizeRead } from "../server/auth.js";
import { errorText, log } from "../server/log.js";
import { ServiceError } from "../server/service-error.js";
import { checkConfig, configFor } from "../settings/config.js";
import { hubStub, type StreamRequest } from "../rpc.js";
import { readBytes } from "../http/body.js";
import type { Reach } from "../http/reach.js";
import { queryOf, urlOf } from "../server/request-url.js";
import { cursorFor, PREFLIGHT, reply } from "./reply.js";
import { sseResponse } from "./sse.js";

export const STREAM_PREFIX = "/v1/stream/";

/** A body cap per request (one append); the stream's own cap is STREAM_MAX_BYTES. */
const MAX_APPEND_BYTES = 1024 * 1024;
/** A body declared this long or shorter is read to its end before its 413 (readBytes says why). */
const DRAIN = { drainUpTo: 16 * 1024 * 1024 };
const OFFSET = /^(-1|now|\d+_\d+)$/;
const DIGITS = /^(0|[1-9]\d*)$/;

const fail = (status: number, message: string) => reply({ status, headers: { "content-type": "text/plain" }, body: message });

/** The stream (channel) a request names, or null when the name is not a channel name. */
function nameOf(url: URL): string | null {
  let name: string;
  try {
    name = decodeURIComponent(url.pathname.slice(STREAM_PREFIX.length));
  } catch {
    return null;
  }
  return isValidChannel(name) ? name : null;
}

function parseProducer(headers: Headers): StreamRequest["producer"] | string {
  const id = headers.get("producer-id");
  const epoch = headers.get("producer-epoch");
  const seq = headers.get("producer-seq");
  if (id === null && epoch === null && seq === null) return null;
  if (id === null || epoch === null || seq === null) return "Producer-Id, Producer-Epoch and Producer-Seq go together";
  if (id === "") return "Producer-Id must not be empty";
  if (!/^\d+$/.test(epoch) || !/^\d+$/.test(seq) || !Number.isSafeInteger(Number(epoch)) || !Number.isSafeInteger(Number(seq))) return "Producer-Epoch and Producer-Seq must be whole numbers";
  return { id, epoch: Number(epoch), seq: Number(seq) };
}

/** A fork's headers (`Stream-Forked-From`: the source's path, under `prefix`), or the 400's message. */
function parseFork(headers: Headers, prefix: string): NonNullable<StreamRequest["fork"]> | null | string {
  const from = headers.get("stream-forked-from");
  const offset = headers.get("stream-fork-offset");
  const sub = headers.get("stream-fork-sub-offset");
  if (from === null) return sub !== null ? "Stream-Fork-Sub-Offset needs Stream-Forked-From" : null;
  if (offset !== null && !/^\d+_\d+$/.test(offset)) return "Stream-Fork-Offset must be an offset the source gave";
  if (sub !== null && !DIGITS.test(sub)) return "Stream-Fork-Sub-Offset must be a whole number";
  if (sub !== null && Number(sub) > 0 && offset === null) return "Stream-Fork-Sub-Offset needs Stream-Fork-Offset";
  let path: string;
  try {
    path = new URL(from, "http://x").pathname;
  } catch {
    return "no such source stream";
  }
  const under = prefix + STREAM_PREFIX;
  const source = path.startsWith(under) ? nameOf(new URL(path.slice(prefix.length), "http://x")) : null;
  if (source === null) return "no such source stream";
  return { source, offset, sub: sub === null ? 0 : Number(sub) };
}

export async function streams(request: Request, env: Env, reach: Reach): Promise<Response> {
  try {
    checkConfig(env);
    if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: PREFLIGHT });
    const url = urlOf(request);
    const query = queryOf(request);
    const name = nameOf(url);
    if (name === null) return fail(400, `stream name must be a channel name: ${CHANNEL_RULE}`);
    const hub = hubStub(env, name);
    const headers = request.headers;
    // Writes take the credential from the header only: a key in a URL ends up in logs.
    const credential = await reach.credential(request, request.method === "GET" || request.method === "HEAD");
    const base: StreamRequest = { op: "head", contentType: headers.get("content-type"), closed: (headers.get("stream-closed") ?? "").toLowerCase() === "true", streamSeq: headers.get("stream-seq"), producer: null, body: null, offset: null, ifNoneMatch: headers.get("if-none-match"), waitMs: 0 };
    switch (request.method) {
      case "PUT": {
        const publisher = await authorizePublish(env, name, credential);
        const ttl = headers.get("stream-ttl");
        const expiresAt = headers.get("stream-expires-at");
        if (ttl !== null && expiresAt !== null) return fail(400, "Stream-TTL and Stream-Expires-At cannot both be set");
        if (ttl !== null && !DIGITS.test(ttl)) return fail(400, "Stream-TTL must be a whole number of seconds");
        if (expiresAt !== null && Number.isNaN(Date.parse(expiresAt))) return fail(400, "Stream-Expires-At must be an RFC 3339 timestamp");
        const fork = parseFork(headers, reach.prefix);
        if (typeof fork === "string") return fail(fork.startsWith("no such") ? 404 : 400, fork);
        // A fork reads its source: whoever makes one must be allowed to read the source.
        if (fork !== null) await authorizeRead(env, fork.source, credential);
        const body = await readBytes(request, MAX_APPEND_BYTES, DRAIN);
        const r = await hub.streamCall({ ...base, op: "create", scope: publisher.scope, ttl: ttl === null ? null : Number(ttl), expiresAt, body, ...(fork === null ? {} : { fork }) });
        return reply(r, r.status === 201 ? { location: url.origin + reach.prefix + url.pathname } : {});
      }
      case "POST": {
        const publisher = await authorizePublish(env, name, credential);
        const producer = parseProducer(headers);
        if (typeof producer === "string") return fail(400, producer);
        const body = await readBytes(request, MAX_APPEND_BYTES, DRAIN);
        if (body.byteLength === 0 && !base.closed) return fail(400, "an append needs a body (or Stream-Closed: true to close)");
        if (body.byteLength > 0 && base.contentType === null) return fail(400, "an append needs a Content-Type");
        return reply(await hub.streamCall({ ...base, op: "append", scope: publisher.scope, producer, body }));
      }
      case "HEAD":
        await authorizeRead(env, name, credential);
        return reply(await hub.streamCall({ ...base, op: "head" }));
      case "DELETE":
        await authorizePublish(env, name, credential);
        return reply(await hub.streamCall({ ...base, op: "delete" }));
      case "GET": {
        const reader = await authorizeRead(env, name, credential);
        const offsets = query.getAll("offset");
        if (offsets.length > 1) return fail(400, "one offset at most");
        const offset = offsets[0] ?? null;
        if (offset !== null && !OFFSET.test(offset)) return fail(400, "offset must be -1, now or an offset the stream gave");
        const live = query.get("live");
        if ((live === "long-poll" || live === "sse") && offset === null) return fail(400, `live=${live} needs an offset`);
        const waitMs = configFor(env, name).streamLongPollMs;
        if (live === "sse") return sseResponse(env, name, { ...base, op: "read", offset }, query.get("cursor"), reader.exp, configFor(env, name).sseMaxBacklogBytes);
        if (live === "long-poll") {
          const r = await hub.streamCall({ ...base, op: "read", offset, waitMs });
          return reply(r, r.status === 200 || r.status === 204 ? { "stream-cursor": cursorFor(query.get("cursor")) } : {});
        }
        return reply(await hub.streamCall({ ...base, op: "read", offset }));
      }
      default:
        return fail(405, "method not allowed");
    }
  } catch (err) {
    if (err instanceof ServiceError) return fail(err.status, err.message);
    log("error", { where: "stream", error: errorText(err) });
    return fail(500, "internal error");
  }
}
