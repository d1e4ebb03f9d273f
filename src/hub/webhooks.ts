// Webhooks (DESIGN.md "Webhooks"): the hub's outbox and its delivery. Each event is one row in
// the hub's SQLite, written in the same step as the change that causes it (a join, a leave, a
// client publish, an occupancy change), so a restart or an eviction loses none. The hub's alarm
// posts the outbox in order, batched, one delivery at a time: a delivery keeps its name, body
// and signature across retries (backoff on network errors, timeouts, 429 and 5xx, for up to
// 24 h); any other 4xx is logged and dropped. Nothing is created until the first event.
import { perEnv } from "../settings/per-env.js";
import type { Env } from "../env.js";
import { log } from "../server/log.js";
import { pusherApp } from "../pusher/app.js";
import { hmacHex } from "../pusher/signature.js";
import { ServiceError } from "../server/service-error.js";
import { hasTable, TABLES, WEBHOOK_INFLIGHT_KEY } from "../schema.js";

/** An event in Pusher's webhook shape. */
export type WebhookEvent =
  | { name: "channel_occupied" | "channel_vacated"; channel: string }
  | { name: "member_added" | "member_removed"; channel: string; user_id: string }
  | { name: "client_event"; channel: string; event: string; data: string; user_id?: string; socket_id?: string };

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
  if (!url || !secret) throw new ServiceError("internal", `configuration error: webhooks need both WEBHOOK_URL and WEBHOOK_SECRET (missing ${url ? "WEBHOOK_SECRET" : "WEBHOOK_URL"})`);
  if (!/^https?:\/\//.test(url)) throw new ServiceError("internal", "configuration error: WEBHOOK_URL must be an http(s) URL");
  return { url, secret };
}

/** Events in one delivery, at most. */
const BATCH = 100;
/** One attempt's time limit. */
const TIMEOUT_MS = 10_000;
/** Backoff: 1 s, doubling, at most 5 min between attempts, for up to 24 h. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 5 * 60_000;
const GIVE_UP_MS = 24 * 3600_000;


/** The delivery being attempted: kept so a retry is the same delivery, byte for byte. */
interface Inflight {
  delivery: string;
  upTo: number;
  body: string;
  attempts: number;
  first: number;
  next: number;
}

type Verdict = "delivered" | "retry" | "dropped";

export class Webhooks {
  private exists: boolean | undefined;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly env: Env,
  ) {}

  private get sql(): SqlStorage {
    return this.storage.sql;
  }

  private hasTable(): boolean {
    return (this.exists ??= hasTable(this.sql, "webhook_outbox"));
  }

  /** One row per event, in the caller's step. */
  add(event: WebhookEvent): void {
    if (!this.hasTable()) {
      this.sql.exec(TABLES.webhookOutbox);
      this.exists = true;
    }
    this.sql.exec("INSERT INTO webhook_outbox (event) VALUES (?)", JSON.stringify(event));
  }

  /** The alarm's job: attempts the next delivery when it is due. Answers when to run again. */
  async deliver(now: number): Promise<number | null> {
    const target = webhookTarget(this.env);
    if (target === null || !this.hasTable()) return null;
    let inflight = this.storage.kv.get<Inflight>(WEBHOOK_INFLIGHT_KEY) ?? this.nextDelivery(now);
    if (inflight === null) return null;
    if (inflight.next > now) return inflight.next;
    const verdict = await this.post(target, inflight);
    if (verdict === "retry" && now - inflight.first < GIVE_UP_MS) {
      const wait = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** inflight.attempts);
      inflight = { ...inflight, attempts: inflight.attempts + 1, next: Date.now() + wait };
      this.storage.kv.put(WEBHOOK_INFLIGHT_KEY, inflight);
      return inflight.next;
    }
    if (verdict !== "delivered") log("webhook", { delivery: inflight.delivery, dropped: true, attempts: inflight.attempts + 1 });
    this.sql.exec("DELETE FROM webhook_outbox WHERE id <= ?", inflight.upTo);
    this.storage.kv.delete(WEBHOOK_INFLIGHT_KEY);
    // More may be waiting: the next delivery goes out on the next run, at once.
    return this.sql.exec("SELECT 1 FROM webhook_outbox LIMIT 1").toArray().length > 0 ? Date.now() : null;
  }

  /** The oldest events as one delivery, named and signed once. */
  private nextDelivery(now: number): Inflight | null {
    const rows = this.sql.exec<{ id: number; event: string }>("SELECT id, event FROM webhook_outbox ORDER BY id LIMIT ?", BATCH).toArray();
    if (rows.length === 0) return null;
    const body = `{"time_ms":${now},"events":[${rows.map((r) => r.event).join(",")}]}`;
    const inflight: Inflight = { delivery: crypto.randomUUID(), upTo: rows[rows.length - 1]!.id, body, attempts: 0, first: now, next: now };
    this.storage.kv.put(WEBHOOK_INFLIGHT_KEY, inflight);
    return inflight;
  }

  private async post(target: WebhookTarget, inflight: Inflight): Promise<Verdict> {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-hibercast-delivery": inflight.delivery,
      "x-hibercast-signature": `sha256=${await hmacHex(target.secret, inflight.body)}`,
    };
    // With the Pusher endpoint on, Pusher's own headers too: Pusher webhook handlers work unchanged.
    const app = pusherApp(this.env);
    if (app !== null) {
      headers["x-pusher-key"] = app.key;
      headers["x-pusher-signature"] = await hmacHex(app.secret, inflight.body);
    }
    let status: number;
    // A timer of our own, cleared when the answer comes: a pending timer would keep the hub awake.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    try {
      const res = await fetch(target.url, { method: "POST", headers, body: inflight.body, signal: abort.signal });
      await res.body?.cancel();
      status = res.status;
    } catch (err) {
      log("webhook", { delivery: inflight.delivery, attempt: inflight.attempts + 1, error: String(err) });
      return "retry";
    } finally {
      clearTimeout(timer);
    }
    if (status >= 200 && status < 300) return "delivered";
    log("webhook", { delivery: inflight.delivery, attempt: inflight.attempts + 1, status });
    return status === 429 || status >= 500 ? "retry" : "dropped";
  }
}
