// `live=sse` of a Durable Stream. Catch-up comes from the hub's reads (a fork's inherited part
// from its source, through them); then the reader goes live on a hibernatable socket of the
// channel, as hibercast's own SSE relay does, so the hub sends each append once per reader in its
// coalesced batches and keeps no response open. Each read's or batch's messages go out as ONE
// `data` event (one JSON array, or the text) followed by its `control` event, so every data
// event is paired with a control (what the suite checks); bytes go out as one base64 data event
// per message, each with its control. A closed stream ends with `streamClosed` once the reader
// has everything.
import type { Env } from "../env.js";
import type { StreamReply, StreamRequest } from "../rpc.js";
import { hubStub } from "../rpc.js";
import { connectRequest } from "../connections/connect.js";
import { modeOf, offsetOf, toBase64 } from "../hub/stream.js";
import { cursorFor, reply } from "./reply.js";

const encoder = new TextEncoder();
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" };
const MORE = JSON.stringify({ t: "more" });

/** A data event: every line of the payload (CR, LF or CRLF) its own `data:` line, so no payload can forge an event. */
function dataEvent(payload: string): string {
  return `event: data\n${payload
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join("\n")}\n\n`;
}

const controlEvent = (control: Record<string, unknown>) => `event: control\ndata:${JSON.stringify(control)}\n\n`;

/** A frame of the channel's socket as the relay reads it. */
type Frame = { t: string; seq?: number; d?: unknown; e?: string; f?: Frame[] };

/** A socket text as the relay uses it: its frames, with each message's data serialized once. */
interface Parsed {
  /** `json`: the message's data as JSON text; `text`: the data when it is a string (text and base64 streams). */
  frames: { t: string; seq: number; json: string; text: string }[];
}

/**
 * Every reader of a stream gets the same texts from the hub (one serialization per flush), so an
 * isolate that relays many of them parses each text once: the last few, by text.
 */
const parsedTexts = new Map<string, Parsed>();
const PARSED_KEEP = 32;

function parse(text: string): Parsed {
  let parsed = parsedTexts.get(text);
  if (parsed !== undefined) return parsed;
  const frame = JSON.parse(text) as Frame;
  const frames = frame.t === "batch" ? frame.f! : [frame];
  parsed = { frames: frames.map((f) => ({ t: f.t, seq: f.seq ?? 0, json: f.t === "msg" ? JSON.stringify(f.d) : "", text: typeof f.d === "string" ? f.d : "" })) };
  if (parsedTexts.size >= PARSED_KEEP) parsedTexts.delete(parsedTexts.keys().next().value!);
  parsedTexts.set(text, parsed);
  return parsed;
}

/**
 * `exp`: the reader's token expiry (its socket is closed then, ending the stream, as any grant
 * dies with its token). `maxBacklog`: bytes written but not yet taken by the client, at most;
 * past it the stream ends and the client reads on from its last offset.
 */
export async function sseResponse(env: Env, name: string, req: StreamRequest, sentCursor: string | null, exp: number | null, maxBacklog: number): Promise<Response> {
  const hub = hubStub(env, name);
  const first = await hub.streamCall({ ...req, ifNoneMatch: null });
  if (first.status !== 200) return reply(first);
  const contentType = first.headers["content-type"] ?? "application/octet-stream";
  const mode = modeOf(contentType);
  const base = first.base ?? 0;
  const cursor = cursorFor(sentCursor);
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  let open = true;
  let backlog = 0;
  const write = (text: string): Promise<void> => {
    if (!open) return Promise.resolve();
    const bytes = encoder.encode(text);
    if (backlog + bytes.byteLength > maxBacklog) {
      end(); // a reader that stopped reading: it resumes from its last control's offset
      return Promise.resolve();
    }
    backlog += bytes.byteLength;
    return writer.write(bytes).then(() => void (backlog -= bytes.byteLength));
  };
  const control = (next: string, upToDate: boolean) => controlEvent({ streamNextOffset: next, streamCursor: cursor, ...(upToDate ? { upToDate: true } : {}) });
  const closedControl = (next: string) => controlEvent({ streamNextOffset: next, streamClosed: true });

  /** One catch-up read's events; answers false once the stream is over. */
  const emitRead = async (r: StreamReply): Promise<boolean> => {
    const h = r.headers;
    const next = h["stream-next-offset"]!;
    const upToDate = h["stream-up-to-date"] === "true";
    let text = "";
    if ((r.count ?? 0) > 0 && r.body !== undefined) text += dataEvent(typeof r.body === "string" ? r.body : toBase64(r.body));
    const over = h["stream-closed"] === "true" && upToDate;
    text += over ? closedControl(next) : control(next, upToDate);
    await write(text);
    return !over;
  };

  /** Live messages from the socket, as events (one data + control per batch; bytes per message). */
  const emitLive = (messages: Parsed["frames"]): string => {
    if (messages.length === 0) return "";
    const next = offsetOf(messages.at(-1)!.seq - base);
    if (mode === "json") return dataEvent(`[${messages.map((m) => m.json).join(",")}]`) + control(next, true);
    if (mode === "text") return dataEvent(messages.map((m) => m.text).join("")) + control(next, true);
    return messages.map((m) => dataEvent(m.text) + control(offsetOf(m.seq - base), true)).join("");
  };

  const end = () => {
    if (!open) return;
    open = false;
    writer.close().catch(() => {});
  };

  const run = async () => {
    let r = first;
    // Catch up with reads until up to date (a fork's inherited part comes this way too).
    for (;;) {
      if (!(await emitRead(r))) return end();
      if (r.headers["stream-up-to-date"] === "true") break;
      r = await hub.streamCall({ ...req, ifNoneMatch: null, offset: r.headers["stream-next-offset"]!, waitMs: 0 });
      if (r.status !== 200) return end();
    }
    // Live: the channel's socket from the seq reached (its replay covers anything since).
    const from = base + Number(r.headers["stream-next-offset"]!.split("_")[1]);
    const res = await hub.fetch(connectRequest({ channel: name, identity: { sub: null, canPublish: false, exp, info: null }, start: { cursor: { seq: from, epoch: null }, rewind: 0 }, transport: "ws", batch: true }));
    const socket = res.webSocket;
    if (socket === null) return end();
    socket.accept();
    let lastSeq = from;
    /** Set when the stream was closed before this socket could hear of it: its last seq. */
    let finalSeq: number | null = null;
    const stop = () => {
      end();
      try {
        socket.close(1000, "stream ended");
      } catch {
        // already closed
      }
    };
    writer.closed.catch(stop);
    socket.addEventListener("close", end);
    socket.addEventListener("error", end);
    socket.addEventListener("message", (e) => {
      if (!open || typeof e.data !== "string") return;
      const { frames } = parse(e.data);
      const messages: Parsed["frames"] = [];
      let text = "";
      let over = false;
      for (const f of frames) {
        if (f.t === "msg" && f.seq > lastSeq) {
          messages.push(f);
          lastSeq = f.seq;
        } else if (f.t === "more") socket.send(MORE); // a long replay: the next page
        else if (f.t === "closed") {
          text += emitLive(messages.splice(0)) + closedControl(offsetOf(lastSeq - base));
          over = true;
        } else if (f.t === "reset" || f.t === "err") over = true; // deleted, or the socket is ending
      }
      text += emitLive(messages);
      if (!over && finalSeq !== null && lastSeq >= finalSeq) {
        text += closedControl(offsetOf(lastSeq - base));
        over = true;
      }
      if (text !== "") void write(text).catch(stop);
      if (over) {
        // What was written is read first: then the response ends.
        void writer.ready.then(stop, stop);
      }
    });
    // Closed between the last read and this socket: its `closed` went out before it was here.
    const now = await hub.streamCall({ ...req, op: "head", ifNoneMatch: null });
    if (now.headers["stream-closed"] === "true") {
      finalSeq = base + Number(now.headers["stream-next-offset"]!.split("_")[1]);
      if (lastSeq >= finalSeq) {
        await write(closedControl(offsetOf(lastSeq - base)));
        stop();
      }
    }
  };
  run().catch(end);
  return new Response(readable, { status: 200, headers: { ...Object.fromEntries(new Headers(reply({ status: 204, headers: {} }).headers)), ...SSE_HEADERS, ...(mode === "binary" ? { "stream-sse-data-encoding": "base64" } : {}) } });
}
