import type { Out } from "./protocol";

/** The browser's reconnect delay, sent once at the start of a stream. */
export const SSE_RETRY_MS = 2000;
/** A comment line this often keeps proxies from closing an idle stream. */
export const SSE_HEARTBEAT_MS = 20_000;

/**
 * One frame as an SSE event: `msg` frames carry `id: EPOCH:SEQ` and no `event:` (so
 * `onmessage` fires and the browser resends the id as Last-Event-ID); other frames carry
 * `event: <t>` and no id, so they never move the browser's cursor.
 */
export function sseEvent(out: Out): string {
  return out.t === "msg" ? `id: ${out.id}\ndata: ${out.json}\n\n` : `event: ${out.t}\ndata: ${out.json}\n\n`;
}

const encoder = new TextEncoder();

/**
 * Relays a room's internal socket as an SSE stream. The Worker holds the stream and the room
 * sees only a hibernatable socket, so an idle stream costs the room nothing. The room already
 * formats frames for SSE sockets; this only copies text and adds heartbeats. The stream ends
 * when the room closes the socket, and the socket is closed when the client goes away.
 */
export function relayAsSse(upstream: WebSocket): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  let open = true;
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
  const write = (text: string) => {
    if (open) writer.write(encoder.encode(text)).catch(end);
  };
  const heartbeat = setInterval(() => write(": keep-alive\n\n"), SSE_HEARTBEAT_MS);
  upstream.accept();
  write(`retry: ${SSE_RETRY_MS}\n\n`);
  upstream.addEventListener("message", (e) => {
    const text = typeof e.data === "string" ? e.data : "";
    write(text);
    // An err naming a close code is the room ending this connection: end the stream now rather
    // than wait for the close handshake.
    if (text.startsWith("event: err\n") && text.includes('"close":')) end();
  });
  upstream.addEventListener("close", end);
  upstream.addEventListener("error", end);
  return new Response(readable, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" },
  });
}
