// A channel made durable as a Durable Stream (DESIGN v1.3 "Durable Streams endpoint"; the
// protocol is PROTOCOL.md of durable-streams/durable-streams). The stream's bytes are the
// channel's log: each append is one message (JSON mode: one per array element) with event
// `stream`, so every hibercast subscriber gets it live and resumes exactly. This module keeps
// what the protocol adds — content type, TTL or expiry, closure, the writer's Stream-Seq, the
// idempotent producers — in one row and a producer table, and answers the protocol's requests
// with status, headers and body; the Worker adds CORS, auth and the live modes' plumbing.
import type { ForkAnswer, LoggedMessage, StreamReply, StreamRequest } from "../rpc.js";
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
  bytes INTEGER NOT NULL DEFAULT 0,
  fork_source TEXT,
  fork_pos INTEGER,
  fork_sub INTEGER,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stream_producers (id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_forks (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_seqs (scope TEXT PRIMARY KEY, seq TEXT NOT NULL) WITHOUT ROWID;`;

/** Forks one stream may have at most: each keeps it readable (and stored) while it lives. */
export const MAX_FORKS = 100;
/** Items one JSON append may hold at most (each is a message of its own). */
export const MAX_ITEMS = 10_000;

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
  /** A fork: its source stream (channel), and the position it forked at (what it inherits). */
  fork_source: string | null;
  fork_pos: number | null;
  fork_sub: number | null;
  /** Deleted while forks still read it: gone for clients (410), kept for them. */
  deleted: number;
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

/** What the hub lends its stream: the log, its appends, its source (for a fork), a wake-up. */
export interface StreamSide {
  readonly sql: SqlStorage;
  readonly name: string;
  readonly lastSeq: number;
  readonly epoch: string;
  /** Messages retained in the log (a channel with some cannot become a stream). */
  retained(now: number): number;
  /** Messages after seq `after`, reading little past `maxBytes`. */
  after(after: number, limit: number, maxBytes: number): LoggedMessage[];
  /** Appends messages (serialized JSON data each, one append record) and delivers them. */
  append(datas: string[]): void;
  /** Empties the log and starts a new epoch (DELETE). */
  purge(): void;
  /** Makes the channel's log keep everything (a stream) or go back to the channel's retention. */
  keepAll(yes: boolean): void;
  /** Wakes long-polls waiting for this stream. */
  wake(): void;
  /** The stream was closed: long-polls wake, and subscribers are told (`closed`). */
  closed(): void;
  /** Another stream's hub (a fork's source, or a source's fork). */
  other(name: string): {
    streamFork(fork: string, contentType: string | null, offset: string | null, sub: number): Promise<ForkAnswer>;
    streamRows(from: number, to: number): Promise<string[]>;
    streamUnref(fork: string): Promise<void>;
    streamAlive(): Promise<boolean>;
  };
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
    // The byte count is kept in memory (an append writes only its log row): counted once per wake.
    if (this.meta_ !== null) this.meta_.bytes = this.sql.exec<{ n: number }>("SELECT COALESCE(SUM(LENGTH(data)), 0) AS n FROM log WHERE seq > ?", this.meta_.base).one().n;
    return this.meta_;
  }

  get closed(): boolean {
    return (this.meta()?.closed ?? 0) === 1;
  }

  private save(m: Meta): void {
    this.meta_ = m;
    this.sql.exec(
      "INSERT OR REPLACE INTO stream (k, content_type, ttl, expires_at, last_access, closed, closed_by, stream_seq, base, bytes, fork_source, fork_pos, fork_sub, deleted) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      m.content_type, m.ttl, m.expires_at, m.last_access, m.closed, m.closed_by, m.stream_seq, m.base, m.bytes, m.fork_source, m.fork_pos, m.fork_sub, m.deleted,
    );
  }

  private touch(m: Meta, now: number): void {
    if (m.ttl === null) return;
    m.last_access = now;
    this.sql.exec("UPDATE stream SET last_access = ?", now);
  }

  private forks(): string[] {
    if (!hasTable(this.sql, "stream_forks")) return [];
    return this.sql.exec<{ name: string }>("SELECT name FROM stream_forks").toArray().map((r) => r.name);
  }

  private forget(fork: string): void {
    if (hasTable(this.sql, "stream_forks")) this.sql.exec("DELETE FROM stream_forks WHERE name = ?", fork);
  }

  /**
   * The stream as clients see it: null when there is none (or it expired: then it goes, or is
   * kept deleted for its forks), "deleted" when only forks still read it.
   */
  private async live(now: number): Promise<Meta | null | "deleted"> {
    const m = this.meta();
    if (m === null) return null;
    if (m.deleted === 1) return (await this.release()) ? null : "deleted";
    if (!expired(m, now)) return m;
    return (await this.remove_()) ? null : "deleted";
  }

  /**
   * The channel's log was purged (`DELETE /v1/channels/:channel/messages`): the stream goes with
   * its messages (forks keep only their own), rather than claim messages it no longer has.
   */
  async purged(): Promise<void> {
    const m = this.meta();
    if (m === null) return;
    this.dropTables();
    this.hub.wake();
    if (m.fork_source !== null) await this.hub.other(m.fork_source).streamUnref(this.hub.name).catch(() => {});
  }

  /** The stream's own tables go, and the channel's log keeps its usual retention again. */
  private dropTables(): void {
    this.sql.exec("DROP TABLE IF EXISTS stream; DROP TABLE IF EXISTS stream_producers; DROP TABLE IF EXISTS stream_forks; DROP TABLE IF EXISTS stream_seqs");
    this.meta_ = null;
    this.exists_ = false;
    this.hub.keepAll(false);
  }

  /** Deletes the stream; kept (deleted) while forks still read it. Answers whether it is gone. */
  private async remove_(): Promise<boolean> {
    const m = this.meta()!;
    if (m.deleted !== 1) {
      m.deleted = 1;
      this.save(m);
      this.hub.wake();
    }
    return this.release();
  }

  /** A deleted stream goes for good once no live fork reads it (forks that expired let go as they are asked). */
  private async release(): Promise<boolean> {
    // Asked all at once (at most MAX_FORKS): a fork that cannot answer is kept.
    const forks = this.forks();
    const alive = await Promise.all(forks.map((fork) => this.hub.other(fork).streamAlive().catch(() => true)));
    forks.forEach((fork, i) => alive[i] || this.forget(fork));
    // Another request may have finished the job while this one waited.
    if (this.meta() === null) return true;
    if (this.forks().length > 0) return false;
    const source = this.meta()!.fork_source;
    this.dropTables();
    this.hub.purge();
    if (source !== null) await this.hub.other(source).streamUnref(this.hub.name).catch(() => {});
    return true;
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

  async handle(req: StreamRequest, now: number): Promise<StreamReply> {
    switch (req.op) {
      case "create":
        return req.fork === undefined ? this.create(req, now) : this.createFork(req, now);
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

  private async create(req: StreamRequest, now: number): Promise<StreamReply> {
    const contentType = req.contentType ?? "application/octet-stream";
    const ttl = req.ttl ?? null;
    const existing = await this.live(now);
    if (existing === "deleted") return conflict("the stream was deleted and forks still read it");
    if (existing !== null) {
      const same = existing.fork_source === null && normalType(existing.content_type) === normalType(contentType) && existing.ttl === ttl && existing.expires_at === (req.expiresAt ?? null) && (existing.closed === 1) === req.closed;
      return same ? { status: 200, headers: this.common(existing) } : conflict("the stream exists with another configuration");
    }
    if (this.hub.retained(now) > 0) return conflict("this channel has messages and is not a stream");
    const datas = req.body !== null && req.body.byteLength > 0 ? parseBody(modeOf(contentType), req.body, true) : [];
    if (typeof datas === "string") return bad(datas);
    const m = newMeta(contentType, ttl, req.expiresAt ?? null, now, this.hub.lastSeq);
    return this.start(m, datas, req.closed);
  }

  /** Makes the stream (a new one, or a fork with what it inherits) and appends its first messages. */
  private start(m: Meta, datas: string[], closed: boolean): StreamReply {
    m.bytes = datas.reduce((n, d) => n + d.length, 0);
    if (m.bytes > this.maxBytes()) return tooLarge(this.maxBytes());
    this.sql.exec(STREAM_TABLES);
    this.exists_ = true;
    this.hub.keepAll(true);
    if (closed) m.closed = 1;
    this.save(m);
    if (datas.length > 0) this.hub.append(datas);
    return { status: 201, headers: this.common(m) };
  }

  /** A fork: shares its source's messages up to the fork position (read from the source, not copied). */
  private async createFork(req: StreamRequest, now: number): Promise<StreamReply> {
    const fork = req.fork!;
    const existing = await this.live(now);
    if (existing === "deleted") return conflict("the stream was deleted and forks still read it");
    if (existing !== null) {
      const same =
        existing.fork_source === fork.source &&
        (req.contentType === null || normalType(existing.content_type) === normalType(req.contentType)) &&
        (existing.fork_sub ?? 0) === fork.sub &&
        (fork.offset === null || positionOf(fork.offset) + (modeOf(existing.content_type) === "json" ? fork.sub : 0) === existing.fork_pos) &&
        (req.ttl === undefined || req.ttl === null || existing.ttl === req.ttl) &&
        (existing.closed === 1) === req.closed;
      return same ? { status: 200, headers: this.common(existing) } : conflict("the stream exists with another configuration");
    }
    if (this.hub.retained(now) > 0) return conflict("this channel has messages and is not a stream");
    const contentType = req.contentType;
    // The body is checked before the source is asked: a refused fork must not hold the source.
    const mode = contentType === null ? null : modeOf(contentType);
    if (mode !== null && req.body !== null && req.body.byteLength > 0 && typeof parseBody(mode, req.body, true) === "string") return bad("body is not valid for the stream's content type");
    const answer = await this.hub.other(fork.source).streamFork(this.hub.name, contentType, fork.offset, fork.sub);
    if (!answer.ok) return { status: answer.status, headers: {}, body: answer.message };
    const type = contentType ?? answer.contentType;
    const datas = req.body !== null && req.body.byteLength > 0 ? parseBody(modeOf(type), req.body, true) : [];
    if (typeof datas === "string") {
      await this.hub.other(fork.source).streamUnref(this.hub.name).catch(() => {});
      return bad(datas);
    }
    const own = req.ttl !== undefined && req.ttl !== null ? { ttl: req.ttl, expiresAt: null } : req.expiresAt ? { ttl: null, expiresAt: req.expiresAt } : { ttl: answer.ttl, expiresAt: answer.expiresAt };
    // The fork's positions go on from the fork position: offsets are shared with the source.
    const m = newMeta(type, own.ttl, own.expiresAt, now, this.hub.lastSeq - answer.pos);
    m.fork_source = fork.source;
    m.fork_pos = answer.pos;
    m.fork_sub = fork.sub;
    return this.start(m, answer.prefix === null ? datas : [answer.prefix, ...datas], req.closed);
  }

  /**
   * A fork asks to be made from this stream at `offset` (default: the tail), `sub` items or bytes
   * into the next append: it is listed (so this stream stays readable for it), and told what it
   * inherits.
   */
  async forkFrom(fork: string, contentType: string | null, offset: string | null, sub: number, now: number): Promise<ForkAnswer> {
    const m = await this.live(now);
    if (m === null) return { ok: false, status: 404, message: "the source stream does not exist" };
    if (m === "deleted") return { ok: false, status: 409, message: "the source stream was deleted" };
    if (contentType !== null && normalType(contentType) !== normalType(m.content_type)) return { ok: false, status: 409, message: "content type does not match the source's" };
    const tail = this.tail(m);
    let pos = offset === null ? tail : positionOf(offset);
    if (pos > tail) return { ok: false, status: 400, message: "fork offset is past the source's tail" };
    let prefix: string | null = null;
    if (sub > 0) {
      const record = await this.recordAfter(m, pos);
      if (record === null) return { ok: false, status: 400, message: "no append after the fork offset to take a sub-offset of" };
      const mode = modeOf(m.content_type);
      if (mode === "json") {
        if (sub > record.length) return { ok: false, status: 400, message: "sub-offset is past the append's items" };
        pos += sub; // JSON items are messages of their own: the fork simply inherits them
      } else {
        const whole = mode === "text" ? new TextEncoder().encode(JSON.parse(record[0]!) as string) : fromBase64(JSON.parse(record[0]!) as string);
        if (sub > whole.byteLength) return { ok: false, status: 400, message: "sub-offset is past the append's bytes" };
        const part = whole.subarray(0, sub);
        prefix = JSON.stringify(mode === "text" ? new TextDecoder().decode(part) : toBase64(part));
      }
    }
    const forks = this.forks();
    if (!forks.includes(fork) && forks.length >= MAX_FORKS) return { ok: false, status: 409, message: `the source stream has ${MAX_FORKS} forks, the most it may have` };
    this.sql.exec("INSERT OR IGNORE INTO stream_forks (name) VALUES (?)", fork);
    return { ok: true, contentType: m.content_type, pos, ttl: m.ttl, expiresAt: m.expires_at, prefix };
  }

  /** The messages of the one append after position `pos` (its items, in JSON mode), or null. */
  private async recordAfter(m: Meta, pos: number): Promise<string[] | null> {
    if (m.fork_source !== null && pos < m.fork_pos!) return this.inheritedRecord(m, pos);
    const rows = this.hub.after(m.base + pos, 10_000, READ_BYTES);
    if (rows.length === 0) return null;
    const group = recordOf(rows[0]!.id);
    const out: string[] = [];
    for (const r of rows) {
      if (recordOf(r.id) !== group) break;
      out.push(r.data);
    }
    return out;
  }

  private async inheritedRecord(m: Meta, pos: number): Promise<string[] | null> {
    const rows = await this.hub.other(m.fork_source!).streamRows(pos, m.fork_pos!);
    return rows.length === 0 ? null : rows.slice(0, 1);
  }

  /** A fork of this stream went: this stream may go too, when it was deleted. */
  async unref(fork: string): Promise<void> {
    this.forget(fork);
    if (this.meta()?.deleted === 1) await this.release();
  }

  /**
   * Whether this stream still needs its source (the source asks its forks): while it lives, or
   * is kept deleted for forks of its own. An expired fork lets go here.
   */
  async alive(now: number): Promise<boolean> {
    return (await this.live(now)) !== null;
  }

  /**
   * Data of positions (from, to] for a fork (its inherited part), from this stream's own source
   * where it inherits them in turn; served while the stream is deleted or expired too.
   */
  async rows(from: number, to: number): Promise<string[]> {
    const m = this.meta();
    if (m === null) return [];
    let out: string[] = [];
    if (m.fork_source !== null && from < m.fork_pos!) {
      out = await this.hub.other(m.fork_source).streamRows(from, Math.min(to, m.fork_pos!));
      // A page of them (about READ_BYTES) at most: the reader asks again from where it got to.
      if (from + out.length < Math.min(to, m.fork_pos!)) return out;
      from = m.fork_pos!;
    }
    let bytes = out.reduce((n, d) => n + d.length, 0);
    if (to > from && bytes < READ_BYTES) {
      for (const r of this.hub.after(m.base + from, to - from, READ_BYTES - bytes)) {
        if (r.seq - m.base > to) break;
        out.push(r.data);
        if ((bytes += r.data.length) > READ_BYTES) break;
      }
    }
    return out;
  }

  // ---- POST --------------------------------------------------------------------------------

  private async appendTo(req: StreamRequest, now: number): Promise<StreamReply> {
    const live = await this.live(now);
    if (live === null) return notFound();
    if (live === "deleted") return gone();
    const m = live;
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
    // Producers and Stream-Seq are per publisher: no client can fence out or pre-empt the origin's writer.
    const scope = req.scope ?? "";
    const producerKey = producer === null ? "" : `${scope}\n${producer.id}`;
    if (producer !== null) {
      const known = (this.sql.exec<{ epoch: number; seq: number }>("SELECT epoch, seq FROM stream_producers WHERE id = ?", producerKey).toArray()[0] as { epoch: number; seq: number } | undefined) ?? null;
      const verdict = judge(known, producer.epoch, producer.seq);
      if (verdict.kind === "stale") return { status: 403, headers: { "producer-epoch": String(known!.epoch) }, body: "stale producer epoch" };
      if (verdict.kind === "badEpoch") return bad("a new producer epoch starts at seq 0");
      if (verdict.kind === "gap") return { status: 409, headers: { "producer-expected-seq": String(verdict.expected), "producer-received-seq": String(producer.seq) }, body: "producer seq gap" };
      if (verdict.kind === "duplicate") return { status: 204, headers: { ...this.common(m), ...producerHeaders(known!.epoch, known!.seq) } };
    }
    const lastSeq = req.streamSeq === null ? null : scope === "" ? m.stream_seq : ((this.sql.exec<{ seq: string }>("SELECT seq FROM stream_seqs WHERE scope = ?", scope).toArray()[0] as { seq: string } | undefined)?.seq ?? null);
    if (!closeOnly && req.streamSeq !== null && lastSeq !== null && req.streamSeq <= lastSeq) return conflict("Stream-Seq must increase");
    let datas: string[] = [];
    if (!closeOnly) {
      const parsed = parseBody(modeOf(m.content_type), body, false);
      if (typeof parsed === "string") return bad(parsed);
      datas = parsed;
      const bytes = datas.reduce((n, d) => n + d.length, 0);
      if (m.bytes + bytes > this.maxBytes()) return tooLarge(this.maxBytes());
      m.bytes += bytes;
      if (req.streamSeq !== null && scope === "") m.stream_seq = req.streamSeq;
      if (req.streamSeq !== null && scope !== "") this.sql.exec("INSERT OR REPLACE INTO stream_seqs (scope, seq) VALUES (?, ?)", scope, req.streamSeq);
    }
    if (producer !== null) this.sql.exec("INSERT OR REPLACE INTO stream_producers (id, epoch, seq) VALUES (?, ?, ?)", producerKey, producer.epoch, producer.seq);
    if (req.closed) {
      m.closed = 1;
      m.closed_by = tuple;
    }
    // Only what must survive a restart is written: a plain append writes just its log row.
    if (req.closed || (!closeOnly && req.streamSeq !== null && scope === "")) this.save(m);
    if (datas.length > 0) this.hub.append(datas);
    if (req.closed) this.hub.closed();
    const headers = { ...this.common(m), ...(producer === null ? {} : producerHeaders(producer.epoch, producer.seq)) };
    return { status: producer !== null && !closeOnly ? 200 : 204, headers };
  }

  // ---- GET, HEAD, DELETE -------------------------------------------------------------------

  /** A catch-up read (also a long-poll's, once it has something): what follows `offset`. */
  private async read(req: StreamRequest, now: number): Promise<StreamReply> {
    const live = await this.live(now);
    if (live === null) return notFound();
    if (live === "deleted") return gone();
    const m = live;
    this.touch(m, now);
    const tail = this.tail(m);
    const from = req.offset === "now" ? tail : req.offset === null || req.offset === "-1" ? 0 : positionOf(req.offset);
    const mode = modeOf(m.content_type);
    const datas: string[] = [];
    let next = Math.max(from, 0);
    if (m.fork_source !== null && next < m.fork_pos!) {
      for (const d of await this.hub.other(m.fork_source).streamRows(next, m.fork_pos!)) datas.push(d);
      // Inherited positions are consecutive; a source that no longer has them (purged) has none.
      next = datas.length === 0 ? m.fork_pos! : next + datas.length;
    }
    const inheritedAll = m.fork_source === null || next >= m.fork_pos!;
    const rows = next >= tail || !inheritedAll ? [] : this.hub.after(m.base + next, 1_000_000, READ_BYTES);
    let bytes = datas.reduce((n, d) => n + d.length, 0);
    const fit = rows.findIndex((r, i) => (bytes += r.data.length) > READ_BYTES && i > 0);
    if (fit > 0) rows.length = fit;
    for (const r of rows) datas.push(r.data);
    if (rows.length > 0) next = rows.at(-1)!.seq - m.base;
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
    return { status: 200, headers, body: bodyOf(mode, datas), count: datas.length, base: m.base };
  }

  private async head(now: number): Promise<StreamReply> {
    const m = await this.live(now);
    if (m === null) return notFound();
    if (m === "deleted") return gone();
    const headers = { ...this.common(m), "cache-control": "no-store" } as Record<string, string>;
    if (m.ttl !== null) headers["stream-ttl"] = String(m.ttl);
    if (m.expires_at !== null) headers["stream-expires-at"] = m.expires_at;
    return { status: 200, headers };
  }

  private async remove(now: number): Promise<StreamReply> {
    const m = await this.live(now);
    if (m === null) return notFound();
    if (m === "deleted") return gone();
    await this.remove_();
    return { status: 204, headers: {} };
  }

  /**
   * A hibercast publish to this channel while it is a stream: its data is appended like a POST's
   * (JSON mode: any JSON value; text types: strings; other types are refused: use the stream's
   * POST). Answers why not, or null.
   */
  refusesPublish(datas: string[], now: number): { code: "conflict" | "unsupported_media_type" | "too_large"; message: string } | null {
    const m = this.meta();
    if (m === null || (m.deleted !== 1 && expired(m, now) && this.forks().length === 0)) return null;
    if (m.deleted === 1 || expired(m, now)) return { code: "conflict", message: "this channel is a deleted stream that forks still read: it takes no messages" };
    if (m.closed === 1) return { code: "conflict", message: "this channel is a closed stream: it takes no more messages" };
    const mode = modeOf(m.content_type);
    if (mode === "binary") return { code: "unsupported_media_type", message: `this channel is a ${m.content_type} stream: append with POST /v1/stream/:name` };
    if (mode === "text" && datas.some((d) => !d.startsWith('"'))) return { code: "unsupported_media_type", message: `this channel is a ${m.content_type} stream: publish strings` };
    const bytes = datas.reduce((n, d) => n + d.length, 0);
    if (m.bytes + bytes > this.maxBytes()) return { code: "too_large", message: `the stream would be over STREAM_MAX_BYTES (${this.maxBytes()})` };
    m.bytes += bytes;
    this.touch(m, now);
    return null;
  }

  /** Whether a read from `offset` would find something now (or the stream ended, or is gone). */
  async hasNews(offset: string, now: number): Promise<boolean> {
    const m = await this.live(now);
    if (m === null || m === "deleted" || m.closed === 1) return true;
    const from = offset === "now" ? Infinity : offset === "-1" ? 0 : positionOf(offset);
    return from < this.tail(m);
  }

  /** The tail as an offset (for `offset=now` long-polls, which wait from where the stream is). */
  async tailOffset(now: number): Promise<string | null> {
    const m = await this.live(now);
    return m === null || m === "deleted" ? null : offsetOf(this.tail(m));
  }
}

function newMeta(contentType: string, ttl: number | null, expiresAt: string | null, now: number, base: number): Meta {
  return { content_type: contentType, ttl, expires_at: expiresAt, last_access: now, closed: 0, closed_by: null, stream_seq: null, base, bytes: 0, fork_source: null, fork_pos: null, fork_sub: null, deleted: 0 };
}

/** The append record a stream message belongs to (its id is `ds-<first seq of the record>.<i>`). */
const recordOf = (id: string) => id.slice(0, id.lastIndexOf("."));

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
const gone = (): StreamReply => ({ status: 410, headers: {}, body: "stream was deleted" });
const conflict = (message: string): StreamReply => ({ status: 409, headers: {}, body: message });
const bad = (message: string): StreamReply => ({ status: 400, headers: {}, body: message });
const tooLarge = (max: number): StreamReply => ({ status: 413, headers: {}, body: `the stream would be over STREAM_MAX_BYTES (${max})` });

export function toBase64(bytes: Uint8Array): string {
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
  if (Array.isArray(value) && value.length === 0 && !create) return "an empty JSON array appends nothing";
  if (Array.isArray(value) && value.length > MAX_ITEMS) return `one append holds at most ${MAX_ITEMS} items`;
  try {
    return Array.isArray(value) ? value.map((v) => JSON.stringify(v)) : [JSON.stringify(value)];
  } catch {
    return "body is JSON nested too deeply";
  }
}

/** Messages as a read answers them: one JSON array, the texts, or the bytes. */
export function bodyOf(mode: Mode, datas: string[]): string | Uint8Array {
  if (mode === "json") return `[${datas.join(",")}]`;
  if (mode === "text") return datas.map((d) => JSON.parse(d) as string).join("");
  const parts = datas.map((d) => fromBase64(JSON.parse(d) as string));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
