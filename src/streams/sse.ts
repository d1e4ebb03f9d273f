// `live=sse` of a Durable Stream: a loop of the hub's reads and long-polls, written as the
// protocol's events. Each read's messages go out as ONE `data` event (one JSON array, the text,
// or one base64 string) followed by its `control` event, so every data event is paired with a
// control (what the suite checks, and the reference server misses). A closed stream ends with
// a control that says `streamClosed` once the reader has everything.
import type { HubRpc, StreamReply, StreamRequest } from "../rpc.js";
import { cursorFor, reply } from "./reply.js";

const encoder = new TextEncoder();
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" };

function isBinary(contentType: string): boolean {
  const t = contentType.split(";")[0]!.trim().toLowerCase();
  return !(t.startsWith("text/") || t === "application/json" || t.endsWith("+json"));
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** A data event: every line of the payload (CR, LF or CRLF) its own `data:` line, so no payload can forge an event. */
function dataEvent(payload: string): string {
  return `event: data\n${payload
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join("\n")}\n\n`;
}

const controlEvent = (control: Record<string, unknown>) => `event: control\ndata:${JSON.stringify(control)}\n\n`;

export async function sseResponse(hub: Pick<HubRpc, "streamCall">, req: StreamRequest, waitMs: number, sentCursor: string | null): Promise<Response> {
  const first = await hub.streamCall({ ...req, ifNoneMatch: null });
  if (first.status !== 200) return reply(first);
  const contentType = first.headers["content-type"] ?? "application/octet-stream";
  const binary = isBinary(contentType);
  const cursor = cursorFor(sentCursor);
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();

  /** Writes one read's events; answers false when the stream is over (closed, gone, or the reader left). */
  const emit = async (r: StreamReply): Promise<boolean> => {
    const h = r.headers;
    const next = h["stream-next-offset"]!;
    const closed = h["stream-closed"] === "true";
    const upToDate = h["stream-up-to-date"] === "true";
    let text = "";
    if (r.status === 200 && (r.count ?? 0) > 0 && r.body !== undefined) {
      const payload = typeof r.body === "string" ? r.body : base64(r.body);
      if (!binary || payload !== "") text += dataEvent(payload);
    }
    if (closed && upToDate) text += controlEvent({ streamNextOffset: next, streamClosed: true });
    else text += controlEvent({ streamNextOffset: next, streamCursor: cursor, ...(upToDate ? { upToDate: true } : {}) });
    await writer.write(encoder.encode(text));
    return !(closed && upToDate);
  };

  const run = async () => {
    let r: StreamReply = first;
    for (;;) {
      if (!(await emit(r))) break;
      const offset = r.headers["stream-next-offset"]!;
      const upToDate = r.headers["stream-up-to-date"] === "true";
      r = await hub.streamCall({ ...req, ifNoneMatch: null, offset, waitMs: upToDate ? waitMs : 0 });
      if (r.status === 204) r = { ...r, status: 200, count: 0 };
      if (r.status !== 200) break; // deleted or expired meanwhile
    }
  };
  run()
    .catch(() => {}) // the reader went away: nothing to tell
    .finally(() => writer.close().catch(() => {}));
  return new Response(readable, { status: 200, headers: { ...Object.fromEntries(new Headers(reply({ status: 204, headers: {} }).headers)), ...SSE_HEADERS, ...(binary ? { "stream-sse-data-encoding": "base64" } : {}) } });
}
