import { CLOSE } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import { out, sseEvent } from "../connections/outgoing.js";

/** The browser's reconnect delay, sent once at the start of a stream. */
export const SSE_RETRY_MS = 2000;
/**
 * A comment line this often keeps proxies from closing an idle stream, and finds a client that
 * went away: in production the runtime reports that at once (request.signal), but workerd run
 * locally notices only when a write fails, so a dead stream is counted at most this long.
 */
export const SSE_HEARTBEAT_MS = 5_000;

export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/** The event that ends a stream that fell too far behind (as a full room's 4503: retry). */
const SLOW_CONSUMER = sseEvent(out(new ServiceError("unavailable", "slow consumer: resume from Last-Event-ID").toFrame(CLOSE.unavailable.code)));

const encoder = new TextEncoder();

/** The room's end of a replay page, as SSE text (never passed on), and the relay's answer. */
const MORE_EVENT = "event: more\n";
const MORE = JSON.stringify({ t: "more" });

/**
 * Relays a room's internal socket as an SSE stream. The Worker holds the stream and the room
 * sees only a hibernatable socket, so an idle stream costs the room nothing. The room already
 * formats frames for SSE sockets; this only copies text and adds heartbeats.
 *
 * Both ends are watched: the stream ends when the room closes the socket, and the socket is
 * closed as soon as the client goes away (its read side is cancelled), so the room stops
 * counting and delivering to it. A client that stops reading cannot make the Worker buffer
 * without bound: bytes written but not yet taken by the stream are counted, and past
 * `maxBacklog` the stream ends with an `err` event ("slow consumer"); the client resumes from
 * its Last-Event-ID and loses nothing.
 */
export function relayAsSse(upstream: WebSocket, options: { maxBacklog: number; gone: AbortSignal; onSlow?: (backlog: number) => void }): Response {
  const { maxBacklog, gone, onSlow } = options;
  // The runtime's own pipe: a write resolves once the response has taken it, so `backlog`
  // counts what the client has not read yet, not what sits in a JS queue.
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  let open = true;
  let backlog = 0;
  const end = () => {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    writer.close().catch(() => {});
    try {
      upstream.close(1000, "stream closed");
    } catch {
      // already closed
    }
  };
  /** Settles when the client has taken everything written so far. */
  let taken: Promise<void> = Promise.resolve();
  const push = (bytes: Uint8Array) => (taken = writer.write(bytes).then(() => void (backlog -= bytes.byteLength), end));
  const write = (text: string) => {
    if (!open) return;
    const bytes = encoder.encode(text);
    if (backlog + bytes.byteLength > maxBacklog) {
      onSlow?.(backlog);
      // Queued behind the backlog: the client reads it, then the end of the stream.
      push(encoder.encode(SLOW_CONSUMER));
      return end();
    }
    backlog += bytes.byteLength;
    push(bytes);
  };
  const heartbeat = setInterval(() => write(": keep-alive\n\n"), SSE_HEARTBEAT_MS);
  // The client went away (enable_request_signal): stop the room delivering to it now, not at
  // the next write that fails.
  gone.addEventListener("abort", end);
  writer.closed.catch(end);
  upstream.accept();
  write(`retry: ${SSE_RETRY_MS}\n\n`);
  upstream.addEventListener("message", (e) => {
    const text = typeof e.data === "string" ? e.data : "";
    // A replay page ended: ask for the next once the client has read this one (real
    // backpressure: the stream's writes settle only as the client reads).
    if (text.startsWith(MORE_EVENT)) {
      void taken.then(() => {
        if (open) upstream.send(MORE);
      });
      return;
    }
    write(text);
    // An err naming a close code is the room ending this connection: end the stream now rather
    // than wait for the close handshake.
    if (text.startsWith("event: err\n") && text.includes('"close":')) end();
  });
  upstream.addEventListener("close", end);
  upstream.addEventListener("error", end);
  return new Response(readable, { headers: SSE_HEADERS });
}
