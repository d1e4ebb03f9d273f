// Webhooks (DESIGN.md "Webhooks"): the hub's outbox and its delivery. Each event is one row in
// the hub's SQLite, written in the same step as the change that causes it (a join, a leave, a
// client publish, an occupancy change), so a restart or an eviction loses none. The hub's alarm
// posts the outbox in order, one delivery at a time (several back to back in one run while the
// receiver keeps up), each at most 100 events and 256 KiB. A delivery keeps its name and its
// exact body across retries: the in-flight record holds only where the delivery ends and its
// time_ms, and the body is rebuilt from the rows each attempt. Retries (network errors,
// timeouts, 429, 5xx) back off with full jitter, honour Retry-After, and give up 24 h after the
// oldest undelivered event was written; any other status (a 3xx too: redirects are not
// followed) is logged and dropped. The outbox holds at most WEBHOOK_MAX_PENDING events; beyond
// it the oldest waiting ones are dropped, counted and logged. Nothing is created until the first event.
import { ConfigError, perEnv } from "../settings/per-env.js";
import { configFor } from "../settings/config.js";
import type { Env } from "../env.js";
import { errorText, log } from "../server/log.js";
import { pusherApp } from "../pusher/app.js";
import { hmacHex } from "../pusher/signature.js";
import { hasTable, TABLES, WEBHOOK_DROPPED_KEY, WEBHOOK_INFLIGHT_KEY } from "../schema.js";

/** An event in Pusher's webhook shape. */
export type WebhookEvent =
  | { name: "channel_occupied" | "channel_vacated"; channel: string }
  | { name: "member_added" | "member_removed"; channel: string; user_id: string }
  | { name: "client_event"; channel: string; event: string; data: string; user_id?: string; socket_id?: string }
  /** A Pusher client subscribed to a cache channel that had no event to give it. */
  | { name: "cache_miss"; channel: string }
  /** The channel's subscriber count changed (debounced, as the Pusher clients' event). */
  | { name: "subscription_count"; channel: string; subscription_count: number };

export interface WebhookTarget {
  url: string;
  secret: string;
}

/** The receiver, or null when webhooks are off; one of the two settings alone is a mistake, named. */
export const webhookTarget = perEnv(readTarget);

function readTarget(env: Partial<Env>): WebhookTarget | null {
  const url = (env.WEBHOOK_URL ?? "").trim();
  const secret = (env.WEBHOOK_SECRET ?? "").trim();
  if (!url && !secret) return null;
  if (!url || !secret) throw new ConfigError(`webhooks need both WEBHOOK_URL and WEBHOOK_SECRET (missing ${url ? "WEBHOOK_SECRET" : "WEBHOOK_URL"})`);
  if (!/^https?:\/\//.test(url)) throw new ConfigError("WEBHOOK_URL must be an http(s) URL");
  return { url, secret };
}

/** Events in one delivery, at most. */
export const BATCH_EVENTS = 100;
/** Bytes of one delivery's body, at most (a single larger event goes alone). */
export const BATCH_BYTES = 256 * 1024;
/** One attempt's time limit. */
const TIMEOUT_MS = 10_000;
/** Backoff: full jitter under a ceiling of 1 s doubling to 5 min, until 24 h after the oldest event. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 5 * 60_000;
export const GIVE_UP_MS = 24 * 3600_000;
/** A receiver's Retry-After is honoured up to this (the 24 h give-up still applies). */
const MAX_RETRY_AFTER_MS = 3600_000;
/** Deliveries one alarm run may post back to back, and for how long, before it yields. */
const DELIVERIES_PER_RUN = 20;
const RUN_BUDGET_MS = 20_000;

/**
 * The delivery being attempted, kept small (never the body): the body is rebuilt from the rows
 * up to `upTo` with this `time_ms`, so each retry is the same delivery, byte for byte.
 */
export interface Inflight {
  delivery: string;
  upTo: number;
  time_ms: number;
  attempts: number;
  /** When the oldest event of this delivery was written: the 24 h give-up counts from it. */
  first: number;
  next: number;
}

type Verdict = { kind: "delivered" } | { kind: "retry"; retryAfterMs: number | null } | { kind: "dropped" };

/**
 * A row holds the event's wire JSON with the time it was written in front: `{"at":<ms>,` then
 * the wire JSON after its `{`. Rows written before 0.4.x hold the wire JSON alone.
 */
const AT = '{"at":';
const rowOf = (event: WebhookEvent, at: number) => `${AT}${at},${JSON.stringify(event).slice(1)}`;
const wireOf = (row: string) => (row.startsWith(AT) ? `{${row.slice(row.indexOf(",") + 1)}` : row);
const writtenAt = (row: string): number | null => (row.startsWith(AT) ? Number(row.slice(AT.length, row.indexOf(","))) : null);
/** SQL for a row's wire size in bytes (the `at` prefix is ASCII, so characters are bytes there). */
const WIRE_BYTES = `length(CAST(event AS BLOB)) - CASE WHEN substr(event, 1, ${AT.length}) = '${AT}' THEN instr(event, ',') - 1 ELSE 0 END`;

/** Retry-After, in seconds or as an HTTP date, as ms from now; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number): number | null {
  const v = value?.trim() ?? "";
  if (v === "") return null;
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  return Number.isNaN(ms) ? null : Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

export class Webhooks {
  private exists: boolean | undefined;
  /** The in-flight record as stored (undefined: not read yet this wake). */
  private record: Inflight | null | undefined;
  /** Events dropped because the outbox was full, in all (kept in storage: an eviction loses no count), and not yet logged. */
  private droppedTotal: number | undefined;
  private droppedUnlogged = 0;
  /** The channel of the last event added (for the log line that reports drops). */
  private channel: string | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly env: Env,
    /** The network, as a seam for tests; the runtime's fetch otherwise. */
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  private get sql(): SqlStorage {
    return this.storage.sql;
  }

  private hasTable(): boolean {
    return (this.exists ??= hasTable(this.sql, "webhook_outbox"));
  }

  private get maxPending(): number {
    return configFor(this.env, "").webhookMaxPending;
  }

  private inflight(): Inflight | null {
    if (this.record === undefined) this.record = this.storage.kv.get<Inflight>(WEBHOOK_INFLIGHT_KEY) ?? null;
    return this.record;
  }

  private keep(record: Inflight | null): void {
    this.record = record;
    if (record === null) this.storage.kv.delete(WEBHOOK_INFLIGHT_KEY);
    else this.storage.kv.put(WEBHOOK_INFLIGHT_KEY, record);
  }

  /** One row per event, in the caller's step; a full outbox drops its oldest waiting events. */
  add(event: WebhookEvent): void {
    if (!this.hasTable()) {
      this.sql.exec(TABLES.webhookOutbox);
      this.exists = true;
    }
    this.sql.exec("INSERT INTO webhook_outbox (event) VALUES (?)", rowOf(event, Date.now()));
    const excess = this.pending() - this.maxPending;
    if (excess <= 0) return;
    // The delivery being attempted keeps its rows (its retries must be byte-identical): the
    // oldest events after it go. A delivery holds at most maxPending events, so there are some.
    const after = this.inflight()?.upTo ?? 0;
    const gone = this.sql.exec("DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox WHERE id > ? ORDER BY id LIMIT ?)", after, excess).rowsWritten;
    this.channel = event.channel;
    // Written only when the outbox overflows, with the rows it deletes.
    this.droppedTotal = this.dropped() + gone;
    this.storage.kv.put(WEBHOOK_DROPPED_KEY, this.droppedTotal);
    this.droppedUnlogged += gone;
  }

  /**
   * Events in the outbox, without a scan: the rows are at most two runs of consecutive ids (the
   * delivery in flight, then the rest; only the start of either is ever deleted), so three index
   * lookups count them.
   */
  pending(): number {
    if (!this.hasTable()) return 0;
    const upTo = this.inflight()?.upTo ?? 0;
    const r = this.sql
      .exec<{ lo: number | null; hi: number | null; rest: number | null }>(
        "SELECT (SELECT MIN(id) FROM webhook_outbox) AS lo, (SELECT MAX(id) FROM webhook_outbox) AS hi, (SELECT MIN(id) FROM webhook_outbox WHERE id > ?) AS rest",
        upTo,
      )
      .one();
    if (r.lo === null || r.hi === null) return 0;
    const inFlight = r.lo <= upTo ? upTo - r.lo + 1 : 0;
    return inFlight + (r.rest === null ? 0 : r.hi - r.rest + 1);
  }

  /** Nothing waits and nothing is in flight. */
  idle(): boolean {
    return this.inflight() === null && this.pending() === 0;
  }

  /** The hub keeps no storage any more: the (empty) outbox goes too. */
  forget(): void {
    if (!this.idle()) return;
    this.sql.exec("DROP TABLE IF EXISTS webhook_outbox");
    this.exists = false;
    this.storage.kv.delete(WEBHOOK_DROPPED_KEY);
    this.droppedTotal = undefined;
  }

  private dropped(): number {
    return (this.droppedTotal ??= this.storage.kv.get<number>(WEBHOOK_DROPPED_KEY) ?? 0);
  }

  /** For the hub's stats: events waiting, and events ever dropped from a full outbox. */
  stats(): { pending: number; dropped: number } {
    return { pending: this.pending(), dropped: this.dropped() };
  }

  /** The alarm's job: posts what is due, delivery after delivery. Answers when to run again. */
  async deliver(now: number): Promise<number | null> {
    const target = webhookTarget(this.env);
    if (target === null || !this.hasTable()) return null;
    this.reportDrops();
    // The alarm's `now`, moved on by the time spent posting.
    const started = Date.now();
    const clock = () => now + (Date.now() - started);
    for (let sent = 0; ; sent++) {
      const t = clock();
      const record = this.inflight() ?? this.nextDelivery(t);
      if (record === null) return null;
      if (record.next > t) return record.next;
      // The receiver keeps up: give the other jobs (and other requests) a turn now and then.
      if (sent >= DELIVERIES_PER_RUN || t - now > RUN_BUDGET_MS) return t;
      const built = this.bodyOf(record);
      if (built === null) {
        this.keep(null); // its rows are gone (cannot happen by this code): nothing to send
        continue;
      }
      const verdict = await this.post(target, record, built);
      const after = clock();
      if (verdict.kind === "retry" && after - record.first < GIVE_UP_MS) {
        // Full jitter, so hubs that failed together do not retry together; never before Retry-After.
        const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** record.attempts);
        const wait = Math.max(Math.random() * ceiling, verdict.retryAfterMs ?? 0);
        const next = { ...record, attempts: record.attempts + 1, next: Math.ceil(after + wait) };
        this.keep(next);
        return next.next;
      }
      if (verdict.kind !== "delivered") {
        const reason = verdict.kind === "retry" ? "gave_up" : "rejected";
        // `dropped` counts events on every drop line (a refused delivery here, a full outbox below).
        log("webhook", { channel: built.channel, delivery: record.delivery, dropped: built.events, reason, attempts: record.attempts + 1 });
      }
      this.sql.exec("DELETE FROM webhook_outbox WHERE id <= ?", record.upTo);
      this.keep(null);
    }
  }

  private reportDrops(): void {
    if (this.droppedUnlogged === 0) return;
    log("webhook", { channel: this.channel, dropped: this.droppedUnlogged, reason: "outbox_full", max: this.maxPending, droppedInAll: this.dropped() });
    this.droppedUnlogged = 0;
  }

  /** The oldest events, up to 100 of them and 256 KiB of body, as one delivery named once. */
  private nextDelivery(now: number): Inflight | null {
    const limit = Math.min(BATCH_EVENTS, this.maxPending);
    const rows = this.sql
      .exec<{ id: number; bytes: number; head: string }>(`SELECT id, ${WIRE_BYTES} AS bytes, substr(event, 1, 32) AS head FROM webhook_outbox ORDER BY id LIMIT ?`, limit)
      .toArray();
    if (rows.length === 0) return null;
    let bytes = envelopeBytes(now);
    let upTo = rows[0]!.id;
    for (const [i, row] of rows.entries()) {
      bytes += row.bytes + (i > 0 ? 1 : 0);
      if (i > 0 && bytes > BATCH_BYTES) break;
      upTo = row.id;
    }
    const first = writtenAt(rows[0]!.head) ?? now;
    const record: Inflight = { delivery: crypto.randomUUID(), upTo, time_ms: now, attempts: 0, first, next: now };
    this.keep(record);
    return record;
  }

  /** The delivery's body, rebuilt from its rows: the same bytes on every attempt. */
  private bodyOf(record: Inflight): { body: string; channel: string; events: number } | null {
    const rows = this.sql.exec<{ event: string }>("SELECT event FROM webhook_outbox WHERE id <= ? ORDER BY id", record.upTo).toArray();
    if (rows.length === 0) return null;
    const wires = rows.map((r) => wireOf(r.event));
    const channel = (JSON.parse(wires[0]!) as WebhookEvent).channel;
    // A record written by 0.4.0 holds its body: that delivery goes out as it was named and signed.
    const stored = (record as { body?: string }).body;
    const body = stored ?? `{"time_ms":${record.time_ms},"events":[${wires.join(",")}]}`;
    return { body, channel, events: wires.length };
  }

  private async post(target: WebhookTarget, record: Inflight, built: { body: string; channel: string }): Promise<Verdict> {
    const { body, channel } = built;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-hibercast-delivery": record.delivery,
      "x-hibercast-signature": `sha256=${await hmacHex(target.secret, body)}`,
    };
    // With the Pusher endpoint on, Pusher's own headers too: Pusher webhook handlers work unchanged.
    const app = pusherApp(this.env);
    if (app !== null) {
      headers["x-pusher-key"] = app.key;
      headers["x-pusher-signature"] = await hmacHex(app.secret, body);
    }
    const attempt = record.attempts + 1;
    let res: Response;
    // A timer of our own, cleared when the answer comes: a pending timer would keep the hub awake.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    try {
      // Redirects are not followed: a 301/302 would turn the POST into a body-less GET elsewhere.
      res = await this.fetcher(target.url, { method: "POST", headers, body, signal: abort.signal, redirect: "manual" });
      await res.body?.cancel();
    } catch (err) {
      log("webhook", { channel, delivery: record.delivery, attempt, error: errorText(err) });
      return { kind: "retry", retryAfterMs: null };
    } finally {
      clearTimeout(timer);
    }
    const status = res.status;
    if (status >= 200 && status < 300) return { kind: "delivered" };
    log("webhook", { channel, delivery: record.delivery, attempt, status });
    if (status === 429 || status >= 500) {
      const retryAfter = status === 429 || status === 503 ? retryAfterMs(res.headers.get("retry-after"), Date.now()) : null;
      return { kind: "retry", retryAfterMs: retryAfter };
    }
    return { kind: "dropped" };
  }
}

/** Bytes of `{"time_ms":<now>,"events":[` and `]}`. */
const envelopeBytes = (now: number) => `{"time_ms":${now},"events":[]}`.length;
