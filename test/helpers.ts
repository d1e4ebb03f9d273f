// Test helpers: talk to the Worker the way clients do, through its fetch handler.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";

export const BASE = "http://hibercast.test";
export const PUBLISH_KEY = "test-publish-key";
export const JWT_SECRET = "test-jwt-secret-current-0123456789";

import type { MsgFrame, PublishResult, ServerFrame, WelcomeFrame } from "../src/protocol";

/** A frame as a test socket reads it: a protocol frame, or text that was not JSON. */
export type Frame = ServerFrame | { t?: undefined; raw: string };
/** The frame of type `T`. */
export type FrameOf<T extends ServerFrame["t"]> = Extract<ServerFrame, { t: T }>;
export type { BatchResult, HistoryPage } from "../src/protocol";

/**
 * An `exp` for a token that must still be valid a step later: three seconds on, which is two at
 * least (`exp` is in whole seconds), so a slow subscribe still finds it valid.
 */
export const expiresSoon = () => Math.floor(Date.now() / 1000) + 3;

/** Waits until just past `exp` (seconds since the epoch). */
export const pastExp = (exp: number) => new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 200));

/** Waits until just after the next wall-clock second starts (rate limits count per second). */
export const nextSecond = () => new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));

/** Reads until `ok` holds, every 25 ms for `ms` at most; answers the last read (so a failing expect shows it). */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  for (const deadline = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 25))) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
  }
}

export const seqsOf = (frames: { seq: number }[]) => frames.map((f) => f.seq);

/** A channel's hub, as the Worker reaches it (tests may also look inside it). */
export const hubOf = (channel: string) => env.ROOMS.get(env.ROOMS.idFromName(channel));
/** An edge by name (a shard `channel#k`, or a pool's). */
export const edgeOf = (name: string) => env.EDGES.get(env.EDGES.idFromName(name));

/** What a channel's hub keeps in storage: its tables (not the runtime's own) and its keys. */
export const storedOf = (channel: string) =>
  runInDurableObject(hubOf(channel), (_room, state) => ({
    tables: state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'").toArray().map((r) => r.name),
    keys: [...state.storage.kv.list()].map(([k]) => k),
  }));

export function call(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(BASE + path, init));
}

let unique = 0;
/** A fresh channel name per test, so tests never share a room. */
export function channelName(prefix = "test"): string {
  return `${prefix}-${Date.now().toString(36)}-${unique++}`;
}

export async function publish(
  channel: string,
  body: unknown,
  opts: { key?: string | null; query?: string; contentType?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = { "content-type": opts.contentType ?? "application/json" };
  const key = opts.key === undefined ? PUBLISH_KEY : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return call(`/v1/channels/${channel}/messages${opts.query ?? ""}`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Publishes and returns the JSON answer, failing the test on a non-2xx. */
export async function publishOk(channel: string, event: string, data: unknown, id?: string): Promise<PublishResult> {
  const res = await publish(channel, { event, data, id });
  if (!res.ok) throw new Error(`publish failed: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Grows message `to` by `text` over HTTP (an append: `extra` may give its `id` and `done`), failing the test on a non-2xx. */
export async function appendOk(channel: string, to: string, text: string, extra: { id?: string; done?: boolean } = {}): Promise<PublishResult> {
  const res = await publish(channel, { append: to, data: text, ...extra });
  if (!res.ok) throw new Error(`append failed: ${res.status} ${await res.text()}`);
  return res.json();
}

export async function token(claims: Record<string, unknown>, opts: { secret?: string; expiresIn?: string | number } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt();
  jwt.setExpirationTime(opts.expiresIn ?? "1h");
  return jwt.sign(new TextEncoder().encode(opts.secret ?? JWT_SECRET));
}

/** A WebSocket client with a queue of received frames. */
export class TestSocket {
  private readonly queue: (object | string)[] = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.accept();
    ws.addEventListener("message", (e) => {
      const text = typeof e.data === "string" ? e.data : "";
      try {
        this.queue.push(JSON.parse(text));
      } catch {
        this.queue.push(text);
      }
      this.waiter?.();
    });
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (e) => {
        resolve({ code: e.code, reason: e.reason });
        this.waiter?.();
      });
    });
  }

  static async open(path: string, headers: Record<string, string> = {}): Promise<TestSocket> {
    return TestSocket.of(await call(path, { headers: { upgrade: "websocket", ...headers } }));
  }

  /** The socket of an upgrade answer (from the Worker, or from an object addressed directly). */
  static async of(res: Response): Promise<TestSocket> {
    if (res.status !== 101 || !res.webSocket) throw new Error(`expected an upgrade, got ${res.status} ${await res.text()}`);
    return new TestSocket(res.webSocket);
  }

  /** Opens a socket and waits for its welcome frame. */
  static async subscribe(channel: string, query = "", headers: Record<string, string> = {}): Promise<[TestSocket, WelcomeFrame]> {
    const s = await TestSocket.open(`/v1/channels/${channel}/ws${query}`, headers);
    const welcome = await s.next();
    if (welcome.t !== "welcome" || welcome.v !== 1) throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
    return [s, welcome];
  }

  /** The next frame (parsed JSON, or the raw text); rejects after `ms`. */
  async next(ms = 2000): Promise<Frame> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, left);
      });
      this.waiter = null;
    }
    const f = this.queue.shift()!;
    return typeof f === "string" ? { raw: f } : (f as Frame);
  }

  /** The next `n` frames of type `t`, skipping others. */
  async take<T extends ServerFrame["t"]>(t: T, n: number, ms = 2000): Promise<FrameOf<T>[]> {
    const out: FrameOf<T>[] = [];
    while (out.length < n) {
      const f = await this.next(ms);
      if (f.t === t) out.push(f as FrameOf<T>);
    }
    return out;
  }

  /** The next `n` answers to `pub` frames (acks and errs), skipping anything else. */
  async answers(n: number, ms = 5000): Promise<Frame[]> {
    const out: Frame[] = [];
    while (out.length < n) {
      const f = await this.next(ms);
      if (f.t === "ack" || f.t === "err") out.push(f);
    }
    return out;
  }

  /** The next frame, which must be of type `t`. */
  async expect<T extends ServerFrame["t"]>(t: T, ms = 2000): Promise<FrameOf<T>> {
    const f = await this.next(ms);
    if (f.t !== t) throw new Error(`expected a ${t} frame, got ${JSON.stringify(f)}`);
    return f as FrameOf<T>;
  }

  /** Frames received so far and not yet read. */
  pending(): Frame[] {
    return this.queue.splice(0).map((f) => (typeof f === "string" ? { raw: f } : (f as Frame)));
  }

  /** Waits briefly and returns whatever arrived (to assert that nothing more came). */
  async settle(ms = 100): Promise<Frame[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.pending();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  close(): void {
    try {
      this.ws.close(1000, "bye");
    } catch {
      // already closed
    }
  }
}

export interface SseEvent {
  event?: string;
  id?: string;
  data?: string;
  retry?: string;
  comment?: string;
}

/** Reads a Server-Sent Events stream event by event, as EventSource would parse it. */
export class SseReader {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
  ) {}

  static async open(path: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const res = await call(path, { headers: { accept: "text/event-stream", ...headers } });
    if (!res.ok || !res.body) throw new Error(`expected a stream, got ${res.status} ${await res.text()}`);
    return new SseReader(res, res.body.getReader());
  }

  /** The most events (blocks) that arrived in one read of the stream. */
  largestRead = 0;

  /** The next event (or retry/comment block); null when the stream ended. */
  async next(ms = 2000): Promise<SseEvent | null> {
    const deadline = Date.now() + ms;
    while (!this.buffer.includes("\n\n")) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for an SSE event");
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), left)),
      ]);
      if (chunk === "timeout") continue;
      if (chunk.done) return null;
      const text = this.decoder.decode(chunk.value, { stream: true });
      this.largestRead = Math.max(this.largestRead, text.split("\n\n").length - 1);
      this.buffer += text;
    }
    const end = this.buffer.indexOf("\n\n");
    const block = this.buffer.slice(0, end);
    this.buffer = this.buffer.slice(end + 2);
    const event: SseEvent = {};
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) event.comment = line.slice(1).trim();
      const m = /^(event|id|data|retry): ?(.*)$/.exec(line);
      if (m) event[m[1] as "event" | "id" | "data" | "retry"] = m[2];
    }
    return event;
  }

  /** The next event carrying data, parsed: skips retry hints and comments. */
  async frame(ms = 2000): Promise<{ event?: string; id?: string; frame: ServerFrame }> {
    for (;;) {
      const e = await this.next(ms);
      if (e === null) throw new Error("stream ended");
      if (e.data !== undefined) return { event: e.event, id: e.id, frame: JSON.parse(e.data) };
    }
  }

  /** The next data event, which must carry a frame of type `t`. */
  async expect<T extends ServerFrame["t"]>(t: T, ms = 2000): Promise<{ event?: string; id?: string; frame: FrameOf<T> }> {
    const e = await this.frame(ms);
    if (e.frame.t !== t) throw new Error(`expected a ${t} event, got ${JSON.stringify(e.frame)}`);
    return e as { event?: string; id?: string; frame: FrameOf<T> };
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}

/**
 * `bytes` as a chunked upload (no content-length) in `size`-byte chunks; `open` holds it open
 * after them, never closing until `stop()` (a body that never ends). `pulled`: bytes read.
 */
export function chunkedBody(bytes: Uint8Array, size: number, open = false) {
  let at = 0;
  let wake: (() => void) | null = null;
  let stopped = false;
  const state = {
    pulled: 0,
    stop: () => {
      stopped = true;
      wake?.();
    },
  };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const close = () => {
        try {
          controller.close();
        } catch {
          // already cancelled by the reader
        }
      };
      if (at >= bytes.byteLength) {
        if (!open || stopped) return close();
        return new Promise<void>((resolve) => (wake = () => (close(), resolve())));
      }
      const piece = bytes.subarray(at, at + size);
      at += piece.byteLength;
      state.pulled += piece.byteLength;
      controller.enqueue(piece);
    },
  });
  return { stream, state };
}
