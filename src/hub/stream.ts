// A channel made durable as a Durable Stream (DESIGN v1.3 "Durable Streams endpoint"; the
// protocol is PROTOCOL.md of durable-streams/durable-streams). The stream's bytes are the
// channel's log: each append is one message (JSON mode: one per array element) with event
// `stream`, so every hibercast subscriber gets it live and resumes exactly. This module keeps
// what the protocol adds — content type, TTL or expiry, closure, the writer's Stream-Seq, the
// idempotent producers — in one row and a producer table, and answers the protocol's requests
// with status, headers and body; the Worker adds CORS, auth and the live modes' plumbing.
import type { LoggedMessage, StreamReply, StreamRequest } from "../rpc.js";
import { hasTable } from "../schema.js";

/** The event name of a stream's messages. */
export const STREAM_EVENT = "stream";

export const STREAM_TABLES = `
CREATE TABLE IF NOT EXISTS stream (
  k INTEGER PRIMARY KEY CHECK (k = 0),
  content_type TEXT NOT NULL,
  ttl INTEGER,
  expires_at TEXT,
  last_access INTEGER NOT NULL,
  closed INTEGER NOT NULL DEFAULT 0,
  closed_by TEXT,
  stream_seq TEXT,
  base INTEGER NOT NULL,
  bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stream_producers (id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;`;

interface Meta {
  content_type: string;
  ttl: number | null;
  expires_at: string | null;
  last_access: number;
  closed: number;
  closed_by: string | null;
  stream_seq: string | null;
  base: number;
  bytes: number;
}

/** How a stream's messages are read back: one JSON array, UTF-8 text, or bytes (kept as base64). */
export type Mode = "json" | "text" | "binary";

/** A media type without parameters, lowercased. */
export const normalType = (type: string) => type.split(";")[0]!.trim().toLowerCase();

export function modeOf(contentType: string): Mode {
  const t = normalType(contentType);
  if (t === "application/json" || t.endsWith("+json")) return "json";
  return t.startsWith("text/") ? "text" : "binary";
}

const ZERO = "0".repeat(16);
/** The protocol's offset of a stream position n (messages since the stream began): sortable as text. */
export const offsetOf = (n: number) => `${ZERO}_${String(n).padStart(16, "0")}`;
/** The position of an offset `X_Y` (Y; X is always 0 here). */
export const positionOf = (offset: string) => Number(offset.slice(offset.indexOf("_") + 1));

/** What the hub lends its stream: the log, its appends, and a wake-up for waiting readers. */
export interface StreamSide {
  readonly sql: SqlStorage;
  readonly lastSeq: number;
  readonly epoch: string;
  /** Messages retained in the log (a channel with some cannot become a stream). */
  retained(now: number): number;
  /** Messages after seq `after`, reading little past `maxBytes`. */
  after(after: number, limit: number, maxBytes: number): LoggedMessage[];
  /** Appends messages (serialized JSON data) and delivers them; answers the last seq. */
  append(datas: string[]): number;
  /** Empties the log and starts a new epoch (DELETE). */
  purge(): void;
  /** Makes the channel's log keep everything (a stream) or go back to the channel's retention. */
  keepAll(yes: boolean): void;
  /** Wakes long-polls waiting for this stream. */
  wake(): void;
}

export class StreamState {
  private meta_: Meta | null | undefined;
  private exists_: boolean | undefined;

  constructor(
    private readonly hub: StreamSide,
    private readonly maxBytes: () => number,
  ) {}

  private get sql(): SqlStorage {
    return this.hub.sql;
  }

  /** The stream's row, or null when this channel is not a stream (cached per wake). */
  meta(): Meta | null {
    if (this.meta_ !== undefined) return this.meta_;
    this.exists_ ??= hasTable(this.sql, "stream");
    this.meta_ = this.exists_ ? ((this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM stream").toArray()[0] as unknown as Meta | undefined) ?? null) : null;
    return this.meta_;
  }

  /** Whether this channel is a live (unexpired) stream now. */
  isStream(now: number): boolean {
    const m = this.meta();
    return m !== null && !expired(m, now);
  }

  get closed(): boolean {
    return (this.meta()?.closed ?? 0) === 1;
  }

  private save(m: Meta): void {
    this.meta_ = m;
    this.sql.exec(
      "INSERT OR REPLACE INTO stream (k, content_type, ttl, expires_at, last_access, closed, closed_by, stream_seq, base, bytes) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      m.content_type, m.ttl, m.expires_at, m.last_access, m.closed, m.closed_by, m.stream_seq, m.base, m.bytes,
    );
  }

  private touch(m: Meta, now: number): void {
    if (m.ttl === null) return;
    m.last_access = now;
    this.sql.exec("UPDATE stream SET last_access = ?", now);
  }

  /** The stream (or null: none, or expired, which is then dropped). */
  private live(now: number): Meta | null {
    const m = this.meta();
    if (m === null) return null;
    if (!expired(m, now)) return m;
    this.drop();
    return null;
  }

  private drop(): void {
    this.sql.exec("DROP TABLE IF EXISTS stream; DROP TABLE IF EXISTS stream_producers");
    this.meta_ = null;
    this.exists_ = false;
    this.hub.purge();
    this.hub.keepAll(false);
  }

  /** Position n of the stream's tail. */
  private tail(m: Meta): number {
    return this.hub.lastSeq - m.base;
  }

  private common(m: Meta): Record<string, string> {
    const h: Record<string, string> = { "content-type": m.content_type, "stream-next-offset": offsetOf(this.tail(m)) };
    if (m.closed === 1) h["stream-closed"] = "true";
    return h;
  }

  handle(req: StreamRequest, now: number): StreamReply {
    switch (req.op) {
      case "create":
        return this.create(req, now);
      case "append":
        return this.appendTo(req, now);
      case "read":
        return this.read(req, now);
      case "head":
        return this.head(now);
      case "delete":
        return this.remove(now);
    }
  }

  // ---- PUT ---------------------------------------------------------------------------------

  private create(req: StreamRequest, now: number): StreamReply {
    const contentType = req.contentType ?? "application/octet-stream";
    const ttl = req.ttl ?? null;
    const existing = this.live(now);
    if (existing !== null) {
      const same = normalType(existing.content_type) === normalType(contentType) && existing.ttl === ttl && existing.expires_at === (req.expiresAt ?? null) && (existing.closed === 1) === req.closed;
      return same ? { status: 200, headers: this.common(existing) } : conflict("the stream exists with another configuration");
    }
    if (this.hub.retained(now) > 0) return conflict("this channel has messages and is not a stream");
    const m: Meta = { content_type: contentType, ttl, expires_at: req.expiresAt ?? null, last_access: now, closed: 0, closed_by: null, stream_seq: null, base: this.hub.lastSeq, bytes: 0 };
    const datas = req.body !== null && req.body.byteLength > 0 ? parseBody(modeOf(contentType), req.body, true) : [];
    if (typeof datas === "string") return bad(datas);
    this.sql.exec(STREAM_TABLES);
    this.exists_ = true;
    this.hub.keepAll(true);
    m.bytes = datas.reduce((n, d) => n + d.length, 0);
    if (m.bytes > this.maxBytes()) return tooLarge(this.maxBytes());
    if (req.closed) m.closed = 1;
    this.save(m);
    if (datas.length > 0) this.hub.append(datas);
    return { status: 201, headers: this.common(m) };
  }

  // ---- POST --------------------------------------------------------------------------------

  private appendTo(req: StreamRequest, now: number): StreamReply {
    const m = this.live(now);
    if (m === null) return notFound();
    this.touch(m, now);
    const body = req.body ?? new Uint8Array(0);
    const producer = req.producer;
    const tuple = producer === null ? null : JSON.stringify([producer.id, producer.epoch, producer.seq]);
    const closeOnly = body.byteLength === 0 && req.closed;
    if (m.closed === 1) {
      if (closeOnly && producer === null) return { status: 204, headers: this.common(m) };
      if (tuple !== null && tuple === m.closed_by) return { status: 204, headers: { ...this.common(m), ...producerHeaders(producer!.epoch, producer!.seq) } };
      return { status: 409, headers: this.common(m), body: "stream is closed" };
    }
    if (!closeOnly && normalType(req.contentType ?? "") !== normalType(m.content_type)) return conflict("content type does not match the stream's");
    let known: { epoch: number; seq: number } | null = null;
    if (producer !== null) {
      known = (this.sql.exec<{ epoch: number; seq: number }>("SELECT epoch, seq FROM stream_producers WHERE id = ?", producer.id).toArray()[0] as { epoch: number; seq: number } | undefined) ?? null;
      const verdict = judge(known, producer.epoch, producer.seq);
      if (verdict.kind === "stale") return { status: 403, headers: { "producer-epoch": String(known!.epoch) }, body: "stale producer epoch" };
      if (verdict.kind === "badEpoch") return bad("a new producer epoch starts at seq 0");
      if (verdict.kind === "gap") return { status: 409, headers: { "producer-expected-seq": String(verdict.expected), "producer-received-seq": String(producer.seq) }, body: "producer seq gap" };
      if (verdict.kind === "duplicate") return { status: 204, headers: { ...this.common(m), ...producerHeaders(known!.epoch, known!.seq) } };
    }
    if (!closeOnly && req.streamSeq !== null && m.stream_seq !== null && req.streamSeq <= m.stream_seq) return conflict("Stream-Seq must increase");
    let datas: string[] = [];
    if (!closeOnly) {
      const parsed = parseBody(modeOf(m.content_type), body, false);
      if (typeof parsed === "string") return bad(parsed);
      datas = parsed;
      const bytes = datas.reduce((n, d) => n + d.length, 0);
      if (m.bytes + bytes > this.maxBytes()) return tooLarge(this.maxBytes());
      m.bytes += bytes;
      if (req.streamSeq !== null) m.stream_seq = req.streamSeq;
    }
    if (producer !== null) this.sql.exec("INSERT OR REPLACE INTO stream_producers (id, epoch, seq) VALUES (?, ?, ?)", producer.id, producer.epoch, producer.seq);
    if (req.closed) {
      m.closed = 1;
      m.closed_by = tuple;
    }
    this.save(m);
    if (datas.length > 0) this.hub.append(datas);
    if (req.closed) this.hub.wake();
    const headers = { ...this.common(m), ...(producer === null ? {} : producerHeaders(producer.epoch, producer.seq)) };
    return { status: producer !== null && !closeOnly ? 200 : 204, headers };
  }

  // ---- GET, HEAD, DELETE -------------------------------------------------------------------

  /** A catch-up read (also a long-poll's, once it has something): what follows `offset`. */
  private read(req: StreamRequest, now: number): StreamReply {
    const m = this.live(now);
    if (m === null) return notFound();
    this.touch(m, now);
    const tail = this.tail(m);
    const from = req.offset === "now" ? tail : req.offset === null || req.offset === "-1" ? 0 : positionOf(req.offset);
    const mode = modeOf(m.content_type);
    const rows = from >= tail ? [] : this.hub.after(m.base + from, 1_000_000, READ_BYTES);
    let bytes = 0;
    const fit = rows.findIndex((r, i) => (bytes += r.data.length) > READ_BYTES && i > 0);
    if (fit > 0) rows.length = fit;
    const next = rows.length === 0 ? Math.max(from, 0) : rows.at(-1)!.seq - m.base;
    const upToDate = next >= tail;
    const headers: Record<string, string> = { "content-type": m.content_type, "stream-next-offset": offsetOf(upToDate ? Math.max(next, tail) : next) };
    if (upToDate) headers["stream-up-to-date"] = "true";
    if (upToDate && m.closed === 1) headers["stream-closed"] = "true";
    if (req.offset === "now") headers["cache-control"] = "no-store";
    else {
      const etag = `"${this.hub.epoch}:${from}:${next}${m.closed === 1 && upToDate ? ":c" : ""}"`;
      headers.etag = etag;
      if (req.ifNoneMatch === etag) return { status: 304, headers };
    }
    return { status: 200, headers, body: bodyOf(mode, rows), count: rows.length };
  }

  private head(now: number): StreamReply {
    const m = this.live(now);
    if (m === null) return notFound();
    const headers = { ...this.common(m), "cache-control": "no-store" } as Record<string, string>;
    if (m.ttl !== null) headers["stream-ttl"] = String(m.ttl);
    if (m.expires_at !== null) headers["stream-expires-at"] = m.expires_at;
    return { status: 200, headers };
  }

  private remove(now: number): StreamReply {
    if (this.live(now) === null) return notFound();
    this.drop();
    this.hub.wake();
    return { status: 204, headers: {} };
  }

  /** Whether a read from `offset` would find something now (or the stream ended, or is gone). */
  hasNews(offset: string, now: number): boolean {
    const m = this.live(now);
    if (m === null || m.closed === 1) return true;
    const from = offset === "now" ? Infinity : offset === "-1" ? 0 : positionOf(offset);
    return from < this.tail(m);
  }

  /** The tail as an offset (for `offset=now` long-polls, which wait from where the stream is). */
  tailOffset(now: number): string | null {
    const m = this.live(now);
    return m === null ? null : offsetOf(this.tail(m));
  }

  /**
   * A hibercast publish to this stream's channel: its data appended like a POST (JSON mode: any
   * JSON value; text types: strings only; other types refused). Answers why not, or null.
   */
  refusesPublish(data: string, now: number): { status: 409 | 415; message: string } | null {
    const m = this.live(now);
    if (m === null) return null;
    if (m.closed === 1) return { status: 409, message: "the stream is closed" };
    const mode = modeOf(m.content_type);
    if (mode === "binary") return { status: 415, message: `this channel is a ${m.content_type} stream: append to it with POST /v1/stream/:name` };
    if (mode === "text" && !data.startsWith('"')) return { status: 415, message: "this channel is a text stream: publish strings" };
    m.bytes += data.length;
    this.save(m);
    return null;
  }
}

/** Catch-up answers carry at most about this many bytes of messages (the client reads on). */
const READ_BYTES = 1024 * 1024;

function expired(m: Meta, now: number): boolean {
  if (m.ttl !== null && now >= m.last_access + m.ttl * 1000) return true;
  if (m.expires_at !== null) {
    const at = Date.parse(m.expires_at);
    if (!(now < at)) return true;
  }
  return false;
}

type Verdict = { kind: "new" } | { kind: "duplicate" } | { kind: "stale" } | { kind: "badEpoch" } | { kind: "gap"; expected: number };

/** An idempotent producer's (epoch, seq) against what it last wrote here. */
function judge(known: { epoch: number; seq: number } | null, epoch: number, seq: number): Verdict {
  if (known === null) return seq === 0 ? { kind: "new" } : { kind: "gap", expected: 0 };
  if (epoch < known.epoch) return { kind: "stale" };
  if (epoch > known.epoch) return seq === 0 ? { kind: "new" } : { kind: "badEpoch" };
  if (seq <= known.seq) return { kind: "duplicate" };
  return seq === known.seq + 1 ? { kind: "new" } : { kind: "gap", expected: known.seq + 1 };
}

const producerHeaders = (epoch: number, seq: number) => ({ "producer-epoch": String(epoch), "producer-seq": String(seq) });
const notFound = (): StreamReply => ({ status: 404, headers: {}, body: "stream not found" });
const conflict = (message: string): StreamReply => ({ status: 409, headers: {}, body: message });
const bad = (message: string): StreamReply => ({ status: 400, headers: {}, body: message });
const tooLarge = (max: number): StreamReply => ({ status: 413, headers: {}, body: `the stream would be over STREAM_MAX_BYTES (${max})` });

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * A request body as messages (serialized JSON data each): JSON mode flattens one level of array
 * (an empty array is refused on POST, an empty stream on PUT); text is one string; anything
 * else one base64 string. Answers the 400's message instead when it is not valid.
 */
function parseBody(mode: Mode, body: Uint8Array, create: boolean): string[] | string {
  if (mode === "binary") return [JSON.stringify(toBase64(body))];
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return "body is not valid UTF-8";
  }
  if (mode === "text") return [JSON.stringify(text)];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "body is not valid JSON";
  }
  if (!Array.isArray(value)) return [JSON.stringify(value)];
  if (value.length === 0 && !create) return "an empty JSON array appends nothing";
  return value.map((v) => JSON.stringify(v));
}

/** Messages as a read answers them: one JSON array, the texts, or the bytes. */
export function bodyOf(mode: Mode, rows: { data: string }[]): string | Uint8Array {
  if (mode === "json") return `[${rows.map((r) => r.data).join(",")}]`;
  if (mode === "text") return rows.map((r) => JSON.parse(r.data) as string).join("");
  const parts = rows.map((r) => fromBase64(JSON.parse(r.data) as string));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
