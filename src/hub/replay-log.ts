import type { Cursor } from "../protocol/index.js";
import type { PublishInput } from "../server/input.js";
import type { LoggedMessage, Replay } from "../rpc.js";
import { hasTable, TABLES } from "../schema.js";
import { utf8Length } from "../server/utf8.js";

// The message and replay shapes are the objects' contract (src/rpc.ts): edges hold them too.
export type { LoggedMessage, Replay };

/** What recording a publish answers: the new message, or the seq its id was first given (and, for an append, the message it grew). */
export type Recorded = { duplicate: false; message: LoggedMessage } | { duplicate: true; seq: number; ref?: number };

/** What an append answers: as a publish does, or why the message cannot grow by it. */
export type Grown = Recorded | { refused: { code: "not_found" | "bad_request" | "conflict" | "too_large"; message: string } };

/** How far one message may grow: its accumulated data (bytes, as stored) and its number of appends. */
export interface GrowthLimits {
  maxBytes: number;
  maxAppends: number;
}

/** How long the log keeps messages and remembers ids. */
export interface Retention {
  maxMessages: number;
  maxAgeS: number;
  dedupeWindowS: number;
}

/**
 * What serving a cursor takes, whatever keeps the messages: the channel's SQLite log here, an
 * edge's tail. test/replay-log.case.ts is the contract every implementation passes.
 */
export interface ReplaySource {
  readonly lastSeq: number;
  readonly epoch: string;
  /** Messages after a cursor (at most `limit`, -1: all), or a reset when they cannot be served. */
  since(cursor: Cursor, now: number, limit?: number): Replay;
  /** The last `n` messages still kept, oldest first. */
  last(n: number, now: number): LoggedMessage[];
}

const COLUMNS = "seq, id, event, data, ts, sender, skip, ref, of, done";
/** The same columns of the log as `l`, for reads that join each message's growth (`grown` as `g`). */
const JOINED = "l.seq, l.id, l.event, l.data, l.ts, l.sender, l.skip, l.ref, l.of, l.done, g.text AS g_text, g.v AS g_v, g.done AS g_done";

type Row = Record<string, SqlStorageValue>;

/** A stored row as the message it is: absent fields instead of NULLs. */
function toMessage(row: Row): LoggedMessage {
  const m = { seq: row.seq, id: row.id, event: row.event, data: row.data, ts: row.ts, sender: row.sender } as LoggedMessage;
  if (row.skip !== null) m.skip = row.skip as string;
  if (row.ref !== null) {
    m.ref = row.ref as number;
    m.of = row.of as string;
  }
  if (row.done === 1) m.done = true;
  return m;
}

/** A message row with its growth, compacted: `data` its whole text so far, `v` its last append. */
function compacted(row: Row): LoggedMessage {
  const m = toMessage(row);
  if (row.g_v === null || row.g_v === undefined) return m;
  m.data = JSON.stringify(row.g_text);
  m.v = row.g_v as number;
  if (row.g_done === 1) m.done = true;
  return m;
}


/** Ids the Pusher HTTP API derives from a request's signature (pusher/http-api.ts). */
const SIGNED_ID_PREFIX = "pusher:";
/** A signed request's timestamp is accepted 600 s either way: it can be replayed for 1200 s. */
const SIGNED_REPLAY_MS = 1200_000;
const SIGNED = "(scope = '' AND id LIKE 'pusher:%')";

function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The room's replay log in Durable Object SQLite: append, read from a cursor, trim, purge.
 *
 * The seq is the rowid, assigned here and never reused (a meta row remembers the last one
 * across trims and purges). Steady-state appends write one log row and its id index entry; the
 * meta row is only written when the log is created and before rows are deleted, because the
 * newest seq is otherwise the newest row. Nothing is created until the first append, so reads
 * of a channel that never had a publish leave no storage behind.
 */
export class ReplayLog implements ReplaySource {
  /** The stored epoch; null until the first publish (reads never create storage). */
  private stored: string | null = null;
  /** The epoch the first publish will store, picked when first needed and kept by the room. */
  private pending: string | null = null;
  lastSeq = 0;
  private channel = "";
  private created = false;
  /** Oldest row still stored (it may already be past retention: reads filter). */
  private oldest: { seq: number; ts: number } | null = null;
  private lastTs = 0;
  /** The last seq trimmed: rows at or below it are only messages a log with appends still keeps (by their own count). */
  private cut = 0;
  /** Whether any message was ever appended to (reads then compact); plain logs keep the plain reads. */
  private grows = false;

  constructor(
    private readonly sql: SqlStorage,
    public retention: Retention,
  ) {
    this.load();
  }

  private load(): void {
    this.created = hasTable(this.sql, "meta");
    if (!this.created) return;
    const meta = this.sql.exec<{ channel: string; epoch: string; last_seq: number; cut: number }>("SELECT channel, epoch, last_seq, cut FROM meta").toArray()[0];
    if (!meta) return;
    this.channel = meta.channel;
    this.stored = meta.epoch;
    this.cut = meta.cut;
    // An append left by a message trimmed before it still makes reads compact (they skip it).
    this.grows = this.sql.exec("SELECT 1 FROM log WHERE ref IS NOT NULL LIMIT 1").toArray().length > 0 || this.sql.exec("SELECT 1 FROM grown LIMIT 1").toArray().length > 0;
    const newest = this.sql.exec<{ seq: number; ts: number }>("SELECT seq, ts FROM log ORDER BY seq DESC LIMIT 1").toArray()[0];
    this.lastSeq = Math.max(meta.last_seq, newest?.seq ?? 0);
    this.lastTs = newest?.ts ?? 0;
    this.loadOldest();
  }

  /** The oldest entry past the last trim (messages kept below it for their growth do not count). */
  private loadOldest(): void {
    this.oldest = this.sql.exec<{ seq: number; ts: number }>("SELECT seq, ts FROM log WHERE seq > ? ORDER BY seq LIMIT 1", this.cut).toArray()[0] ?? null;
  }

  /**
   * The channel's epoch: the stored one, or before the first publish the one that publish will
   * store. Never null, so every welcome can name it (DESIGN.md "Cursor").
   */
  get epoch(): string {
    return this.stored ?? (this.pending ??= newEpoch());
  }

  /** Whether an epoch is stored (false until the first publish). */
  get hasStoredEpoch(): boolean {
    return this.stored !== null;
  }

  /**
   * Takes an epoch that was already named to clients (kept in a socket's attachment across
   * hibernation) as the one the first publish stores. No effect once an epoch is stored.
   */
  adoptEpoch(epoch: string): void {
    if (this.stored === null) this.pending = epoch;
  }

  /** The channel this log belongs to, known once anything was published. */
  get channelName(): string {
    return this.channel;
  }

  private ensureCreated(channel: string): void {
    if (this.stored !== null) return;
    if (!this.created) this.sql.exec(TABLES.log);
    this.created = true;
    this.channel = channel;
    this.stored = this.epoch;
    this.pending = null;
    this.sql.exec("INSERT INTO meta (k, channel, epoch, last_seq) VALUES (0, ?, ?, ?)", channel, this.stored, this.lastSeq);
  }

  /**
   * Drops the log's storage when it never held a message (an edge's attach stored its epoch):
   * a channel nobody published to leaves nothing behind. The epoch stays the pending one, so a
   * later attach or publish stores the same epoch the edges' clients were welcomed with.
   */
  forgetIfUnused(): boolean {
    if (!this.created || this.lastSeq !== 0) return false;
    const epoch = this.epoch;
    this.sql.exec("DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS log; DROP TABLE IF EXISTS dedupe; DROP TABLE IF EXISTS grown");
    this.created = false;
    this.stored = null;
    this.pending = epoch;
    return true;
  }

  /** Stores the log's meta (and so its epoch) now, before any publish: edges welcome with it. */
  ensureStored(channel: string): void {
    this.ensureCreated(channel);
  }

  /**
   * How long a trimmed id is remembered: DEDUPE_WINDOW_S, and for the ids of signed Pusher HTTP
   * API requests (`pusher:…` in the publish key's space) at least as long as such a request can
   * be replayed (its timestamp is accepted 600 s either way).
   */
  private windowMs(scope: string, id: string): number {
    const window = this.retention.dedupeWindowS * 1000;
    return scope === "" && id.startsWith(SIGNED_ID_PREFIX) ? Math.max(window, SIGNED_REPLAY_MS) : window;
  }

  /** The seq an id was first published with, while the log or the dedupe window remembers it. */
  findId(scope: string, id: string, now: number): number | null {
    return this.seen(scope, id, now)?.seq ?? null;
  }

  /** The seq an id was first given and, for an append's id, the message it grew. */
  private seen(scope: string, id: string, now: number): { seq: number; ref: number | null } | null {
    if (!this.created) return null;
    const inLog = this.sql.exec<{ seq: number; ref: number | null }>("SELECT seq, ref FROM log WHERE scope = ? AND id = ?", scope, id).toArray()[0];
    if (inLog) return inLog;
    const cutoff = now - this.windowMs(scope, id);
    return this.sql.exec<{ seq: number; ref: number | null }>("SELECT seq, ref FROM dedupe WHERE scope = ? AND id = ? AND ts >= ?", scope, id, cutoff).toArray()[0] ?? null;
  }

  /**
   * Records a publish: an id seen before (in the log or the dedupe window) answers its first
   * seq; anything else is appended. Delivery is the caller's, after this returns.
   */
  record(channel: string, input: PublishInput, sender: string | null, now: number, scope = "", skip: string | null = null): Recorded {
    const seen = this.findId(scope, input.id, now);
    if (seen !== null) return { duplicate: true, seq: seen };
    return { duplicate: false, message: this.append(channel, input, sender, now, scope, skip) };
  }

  /**
   * Grows message `input.append.to` (an id in the publisher's own id space) by `input.data`: one
   * log row for the append and one update of the message's running text (`grown`). The message
   * must still be kept, hold a string and not be done; the append's own id makes a retry a
   * duplicate, as a publish's does.
   */
  grow(channel: string, input: PublishInput, sender: string | null, now: number, scope: string, skip: string | null, limits: GrowthLimits): Grown {
    const to = input.append!.to;
    const seen = this.seen(scope, input.id, now);
    if (seen !== null) {
      if (seen.ref === null) return { refused: { code: "conflict", message: `id ${input.id} is a message's, not an append's: give each append its own id` } };
      return { duplicate: true, seq: seen.seq, ref: seen.ref };
    }
    const target = this.created ? this.sql.exec<{ seq: number; id: string; event: string; data: string; ts: number }>("SELECT seq, id, event, data, ts FROM log WHERE scope = ? AND id = ? AND ref IS NULL", scope, to).toArray()[0] : undefined;
    const growth = target === undefined ? undefined : this.sql.exec<{ n: number; bytes: number; done: number }>("SELECT n, bytes, done FROM grown WHERE ref = ?", target.seq).toArray()[0];
    if (target === undefined || !this.keeps(target, now)) return { refused: { code: "not_found", message: `this channel has no message ${to} to append to (never published by you, or older than the log keeps)` } };
    if (growth === undefined && !target.data.startsWith('"')) return { refused: { code: "bad_request", message: `message ${to} holds no string: only a message whose data is a string can grow` } };
    if (growth?.done === 1) return { refused: { code: "conflict", message: `message ${to} is done: it takes no more appends` } };
    const n = (growth?.n ?? 0) + 1;
    if (n > limits.maxAppends) return { refused: { code: "too_large", message: `message ${to} has had APPENDS_MAX (${limits.maxAppends}) appends` } };
    // As stored: the whole text's JSON, whose escapes are the fragments' escapes joined.
    const bytes = (growth?.bytes ?? utf8Length(target.data)) + utf8Length(input.data) - 2;
    if (bytes > limits.maxBytes) return { refused: { code: "too_large", message: `message ${to} would pass MAX_MESSAGE_BYTES (${limits.maxBytes} bytes) with this append` } };
    const done = input.append!.done;
    const fragment = JSON.parse(input.data) as string;
    // The running text first: the append's own row may trim the log, which keeps grown messages.
    const seq = this.lastSeq + 1;
    if (growth === undefined) this.sql.exec("INSERT INTO grown (ref, text, v, n, bytes, done) VALUES (?, ?, ?, ?, ?, ?)", target.seq, (JSON.parse(target.data) as string) + fragment, seq, n, bytes, done ? 1 : 0);
    else this.sql.exec("UPDATE grown SET text = text || ?, v = ?, n = ?, bytes = ?, done = ? WHERE ref = ?", fragment, seq, n, bytes, done ? 1 : 0, target.seq);
    this.grows = true;
    const m = this.append(channel, { event: target.event, data: input.data, id: input.id }, sender, now, scope, skip, { ref: target.seq, of: target.id, done });
    return { duplicate: false, message: m };
  }

  /**
   * Whether a message is still in the log: within the age limit and, in a log with appends, among
   * the newest LOG_MAX_MESSAGES messages (else past the retention boundary, as for any message).
   */
  private keeps(m: { seq: number; ts: number }, now: number): boolean {
    if (m.ts < now - this.retention.maxAgeS * 1000) return false;
    return m.seq >= (this.grows ? this.messageFloor() : this.firstValid(now));
  }

  /**
   * In a log with appends, messages are kept by their own count: the seq of the oldest of the
   * newest LOG_MAX_MESSAGES messages (0: fewer than that). Entries (appends too) count for cursors.
   */
  private messageFloor(): number {
    return this.sql.exec<{ seq: number }>("SELECT seq FROM log WHERE ref IS NULL ORDER BY seq DESC LIMIT 1 OFFSET ?", this.retention.maxMessages - 1).toArray()[0]?.seq ?? 0;
  }

  /** Writes one message (or an append: `grows`) and returns it with its seq. Callers check `findId` first. */
  append(channel: string, input: PublishInput, sender: string | null, now: number, scope = "", skip: string | null = null, grows: { ref: number; of: string; done: boolean } | null = null): LoggedMessage {
    this.ensureCreated(channel);
    // Monotonic timestamps let reads find the age boundary by walking seqs in order.
    const ts = Math.max(now, this.lastTs);
    const m: LoggedMessage = { seq: this.lastSeq + 1, id: input.id, event: input.event, data: input.data, ts, sender };
    if (skip !== null) m.skip = skip;
    if (grows !== null) {
      m.ref = grows.ref;
      m.of = grows.of;
      if (grows.done) m.done = true;
    }
    this.sql.exec(`INSERT INTO log (${COLUMNS}, scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.seq, m.id, m.event, m.data, m.ts, m.sender, skip, grows?.ref ?? null, grows?.of ?? null, grows?.done ? 1 : null, scope);
    this.lastSeq = m.seq;
    this.lastTs = ts;
    this.oldest ??= { seq: m.seq, ts };
    this.trimByCount(now);
    return m;
  }

  /** First seq that retention still serves; lastSeq + 1 when none. */
  private firstValid(now: number): number {
    if (this.oldest === null) return this.lastSeq + 1;
    const byCount = Math.max(this.oldest.seq, this.lastSeq - this.retention.maxMessages + 1);
    const cutoff = now - this.retention.maxAgeS * 1000;
    if (this.oldest.ts >= cutoff) return byCount;
    const row = this.sql.exec<{ seq: number }>("SELECT seq FROM log WHERE seq >= ? AND ts >= ? ORDER BY seq LIMIT 1", byCount, cutoff).toArray()[0];
    return row?.seq ?? this.lastSeq + 1;
  }

  /** Rows of a query; past `maxBytes` of data it stops reading (after the row that went over). */
  private rows(query: string, bindings: SqlStorageValue[], maxBytes = Infinity): LoggedMessage[] {
    const rows: LoggedMessage[] = [];
    let bytes = 0;
    for (const row of this.sql.exec<Row>(`SELECT ${COLUMNS} FROM log ${query}`, ...bindings)) {
      const m = toMessage(row);
      rows.push(m);
      if ((bytes += m.data.length) > maxBytes) break;
    }
    return rows;
  }

  /** Messages (no appends), each whole: its text so far from `grown`; only those kept (see `keeps`). */
  private messages(where: string, bindings: SqlStorageValue[], order: "ASC" | "DESC", limit: number, now: number): LoggedMessage[] {
    return this.sql.exec<Row>(`SELECT ${JOINED} ${this.keptMessages(where)} ORDER BY l.seq ${order} LIMIT ?`, ...this.keptBindings(now), ...bindings, limit).toArray().map(compacted);
  }

  /** FROM and WHERE of the messages kept (see `keeps`), and their bindings. */
  private keptMessages(where: string): string {
    return `FROM log l LEFT JOIN grown g ON g.ref = l.seq WHERE l.ref IS NULL AND l.ts >= ? AND l.seq >= ? ${where}`;
  }

  private keptBindings(now: number): SqlStorageValue[] {
    return [now - this.retention.maxAgeS * 1000, this.messageFloor()];
  }

  /**
   * Up to `limit` messages after `seq`, oldest first, each whole (history's last `limit`: it
   * reads on from the last one it got). Entries, not messages, when nothing ever grew: the same.
   */
  messagesAfter(seq: number, limit: number, now: number): LoggedMessage[] {
    if (!this.grows) {
      const replay = this.since({ seq, epoch: null }, now, limit);
      return replay.reset ? [] : replay.messages;
    }
    return this.messages("AND l.seq > ?", [seq], "ASC", limit, now);
  }

  /** The seq before the first of the last `n` messages (entries, when nothing ever grew). */
  beforeLast(n: number, now: number): number {
    if (!this.grows) return Math.max(this.firstValid(now), this.lastSeq - n + 1) - 1;
    // Seqs only: the page reads the messages themselves a few at a time.
    const first = this.sql.exec<{ seq: number | null }>(`SELECT MIN(seq) AS seq FROM (SELECT l.seq ${this.keptMessages("")} ORDER BY l.seq DESC LIMIT ?)`, ...this.keptBindings(now), n).one().seq;
    return first === null ? this.lastSeq : first - 1;
  }

  /** Up to `limit` messages after `seq`, oldest first (-1: no limit), reading little past `maxBytes`. */
  private rowsAfter(seq: number, limit = -1, maxBytes = Infinity): LoggedMessage[] {
    return seq >= this.lastSeq ? [] : this.rows("WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit], maxBytes);
  }

  /**
   * Messages after a cursor (at most `limit`), or a reset when the epoch differs or retention
   * no longer covers it.
   */
  since(cursor: Cursor, now: number, limit = -1, maxBytes = Infinity): Replay {
    if (cursor.epoch !== null && cursor.epoch !== this.epoch) return { reset: true };
    if (cursor.seq > this.lastSeq) return { reset: true };
    if (cursor.seq === this.lastSeq) return { reset: false, messages: [] };
    if (cursor.seq + 1 < this.firstValid(now)) return { reset: true };
    return { reset: false, messages: this.rowsAfter(cursor.seq, limit, maxBytes) };
  }

  /** Up to `limit` retained messages older than `seq`, newest first (chat scroll-back). */
  before(seq: number, limit: number, now: number): LoggedMessage[] {
    if (this.grows) return this.messages("AND l.seq < ?", [seq], "DESC", limit, now);
    const first = this.firstValid(now);
    return seq <= first ? [] : this.rows("WHERE seq < ? AND seq >= ? ORDER BY seq DESC LIMIT ?", [seq, first, limit]);
  }

  /** The last `n` messages still retained, oldest first; a grown one whole (its text so far). */
  last(n: number, now: number): LoggedMessage[] {
    if (n <= 0) return [];
    if (this.grows) return this.messages("", [], "DESC", n, now).reverse();
    return this.rowsAfter(Math.max(this.firstValid(now) - 1, this.lastSeq - n));
  }

  /** Count and oldest seq of what reads can still serve. */
  stats(now: number): { count: number; oldestSeq: number | null } {
    const first = this.firstValid(now);
    const count = this.lastSeq - first + 1;
    return count > 0 ? { count, oldestSeq: first } : { count: 0, oldestSeq: null };
  }

  private trimByCount(now: number): void {
    if (this.oldest === null) return;
    const excess = this.lastSeq - this.oldest.seq + 1 - this.retention.maxMessages;
    // Delete in chunks, not one row per append: reads already hide the excess.
    const chunk = Math.min(256, Math.ceil(this.retention.maxMessages / 10));
    if (excess >= chunk) this.retireThrough(this.lastSeq - this.retention.maxMessages, now);
  }

  /**
   * Deletes rows up to `seq`, keeping ids still inside the dedupe window so a late retry of a
   * trimmed message is still answered as a duplicate.
   */
  private retireThrough(seq: number, now: number): void {
    this.cut = Math.max(this.cut, seq);
    this.sql.exec("UPDATE meta SET last_seq = ?, cut = ?", this.lastSeq, this.cut);
    const windowStart = now - this.retention.dedupeWindowS * 1000;
    this.sql.exec(`INSERT OR IGNORE INTO dedupe (scope, id, seq, ts, ref) SELECT scope, id, seq, ts, ref FROM log WHERE seq <= ? AND (ts >= ? OR (${SIGNED} AND ts >= ?))`, seq, windowStart, now - SIGNED_REPLAY_MS);
    if (!this.grows) this.sql.exec("DELETE FROM log WHERE seq <= ?", seq);
    else {
      // Messages stay while they are among the newest LOG_MAX_MESSAGES messages and young enough
      // (grown or not: history keeps no holes); entries past the boundary go, so a cursor before
      // them is a reset, while each kept message stays whole.
      const kept = "ref IS NULL AND seq >= ? AND ts >= ?";
      this.sql.exec(`DELETE FROM log WHERE seq <= ? AND NOT (${kept})`, seq, this.messageFloor(), now - this.retention.maxAgeS * 1000);
      this.sql.exec("DELETE FROM grown WHERE ref <= ? AND ref NOT IN (SELECT seq FROM log)", seq);
    }
    this.loadOldest();
  }

  /**
   * Age- and count-based trim plus expiry of remembered ids; run by the alarm. Returns when it
   * next has work (ms since epoch), or null when the log holds nothing that will expire.
   */
  trim(now: number): number | null {
    if (!this.created || this.stored === null) return null;
    const first = this.firstValid(now);
    if (this.oldest !== null && first > this.oldest.seq) this.retireThrough(first - 1, now);
    const window = this.retention.dedupeWindowS * 1000;
    const signedWindow = Math.max(window, SIGNED_REPLAY_MS);
    this.sql.exec(`DELETE FROM dedupe WHERE ts < ? AND NOT (${SIGNED} AND ts >= ?)`, now - window, now - signedWindow);
    const oldestOf = (where: string) => this.sql.exec<{ ts: number | null }>(`SELECT MIN(ts) AS ts FROM dedupe WHERE ${where}`).toArray()[0]?.ts ?? null;
    const plain = oldestOf(`NOT (${SIGNED})`);
    const signed = oldestOf(SIGNED);
    const due = [
      this.oldest === null ? null : this.oldest.ts + this.retention.maxAgeS * 1000,
      plain === null ? null : plain + window,
      signed === null ? null : signed + signedWindow,
    ].filter((t): t is number => t !== null);
    return due.length > 0 ? Math.min(...due) : null;
  }

  /**
   * Empties the log and starts a new epoch; seqs keep counting. A never-used log stays unmade
   * and keeps its epoch: there is nothing to forget, and clients already hold that epoch.
   */
  purge(now: number): void {
    if (this.stored === null) return;
    this.retireThrough(this.lastSeq, now);
    this.sql.exec("DELETE FROM log; DELETE FROM grown");
    this.grows = false;
    this.stored = newEpoch();
    this.sql.exec("UPDATE meta SET epoch = ?", this.stored);
  }
}
