// hibercast/publisher: publish from an origin service, in any runtime with fetch.
import { backoffDelay, DEFAULT_BACKOFF, randomId, sleep, type BackoffOptions } from "./backoff.js";
import { HibercastError } from "./errors.js";
import type { ErrorBody } from "../protocol/errors.js";
import type { PublishResult } from "../protocol/frames.js";
import type { BatchResult, HistoryPage } from "../protocol/http.js";

export { HibercastError, type ClientErrorCode } from "./errors.js";
export type { ErrorCode } from "../protocol/errors.js";
export type { MsgFrame, PublishResult } from "../protocol/frames.js";

export interface PublisherOptions {
  /** The service's base URL, e.g. `https://rt.example.com`. */
  url: string;
  /** The publish key (`PUBLISH_KEY`), or a token with a `pub` grant. */
  key: string;
  /** Per attempt. Default 10 s. */
  timeoutMs?: number;
  /** Extra attempts after a network error, a timeout, a 503 or a 429. Default 3. */
  retries?: number;
  backoff?: Partial<BackoffOptions>;
  /** A fetch implementation, if not the global one. */
  fetch?: typeof fetch;
}

export interface BatchMessage {
  channel: string;
  event: string;
  data: unknown;
  id?: string;
}
export type { BatchResult, HistoryPage };

export interface HistoryQuery {
  since?: number;
  epoch?: string | null;
  before?: number;
  limit?: number;
}

export interface Publisher {
  /** Publishes one message. A retry reuses the same id, so it is never delivered twice. */
  publish(channel: string, event: string, data: unknown, options?: { id?: string; exclude?: string }): Promise<PublishResult>;
  /**
   * Grows message `messageId` (published by this key with string data) by `text`; `done: true`
   * ends it. Subscribers get each fragment; late joiners get the message whole. A retry reuses
   * the append's id, so a fragment is never added twice.
   */
  append(channel: string, messageId: string, text: string, options?: { id?: string; done?: boolean }): Promise<PublishResult>;
  /** Up to 100 messages across channels; one result per message, in order (check `error`). */
  publishBatch(messages: BatchMessage[]): Promise<BatchResult[]>;
  /** One message to several channels, with one id. */
  publishToChannels(channels: string[], event: string, data: unknown, options?: { id?: string }): Promise<BatchResult[]>;
  /** Empties a channel's log and starts a new epoch (publish key only). */
  purge(channel: string): Promise<{ seq: number; epoch: string | null }>;
  history(channel: string, query?: HistoryQuery): Promise<HistoryPage>;
}

const RETRYABLE = new Set([429, 503]);

export function createPublisher(options: PublisherOptions): Publisher {
  const base = options.url.endsWith("/") ? options.url : `${options.url}/`;
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 3;
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  const channelPath = (channel: string, rest = "") => `v1/channels/${encodeURIComponent(channel)}${rest}`;

  async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let failure: HibercastError;
      try {
        const res = await doFetch(new URL(path, base), {
          method,
          headers: { authorization: `Bearer ${options.key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (res.ok) return (await res.json()) as T;
        failure = await errorOf(res);
        if (!RETRYABLE.has(res.status)) throw failure;
      } catch (err) {
        if (err instanceof HibercastError && !RETRYABLE.has(err.status ?? 0)) throw err;
        failure = err instanceof HibercastError ? err : transportError(err, timeoutMs);
      }
      if (attempt >= retries) throw failure;
      await sleep(backoffDelay(attempt, backoff));
    }
  }

  return {
    publish(channel, event, data, { id = randomId(), exclude } = {}) {
      const query = exclude === undefined ? "" : `?exclude=${encodeURIComponent(exclude)}`;
      return request("POST", channelPath(channel, `/messages${query}`), { event, data, id });
    },
    append(channel, messageId, text, { id = randomId(), done } = {}) {
      return request("POST", channelPath(channel, "/messages"), { append: messageId, data: text, id, ...(done ? { done: true } : {}) });
    },
    async publishBatch(messages) {
      const withIds = messages.map((m) => ({ ...m, id: m.id ?? randomId() }));
      return (await request<{ results: BatchResult[] }>("POST", "v1/publish", { messages: withIds })).results;
    },
    async publishToChannels(channels, event, data, { id = randomId() } = {}) {
      return (await request<{ results: BatchResult[] }>("POST", "v1/publish", { channels, event, data, id })).results;
    },
    purge(channel) {
      return request("DELETE", channelPath(channel, "/messages"));
    },
    history(channel, query = {}) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
      const qs = params.size > 0 ? `?${params}` : "";
      return request("GET", channelPath(channel, `/messages${qs}`));
    },
  };
}

async function errorOf(res: Response): Promise<HibercastError> {
  try {
    const body = (await res.json()) as ErrorBody;
    return new HibercastError(body.error.code, body.error.message, res.status);
  } catch {
    return new HibercastError(res.status >= 500 ? "internal" : "bad_request", `HTTP ${res.status}`, res.status);
  }
}

function transportError(err: unknown, timeoutMs: number): HibercastError {
  const name = (err as { name?: string }).name;
  if (name === "TimeoutError" || name === "AbortError") return new HibercastError("timeout", `no answer within ${timeoutMs} ms`);
  return new HibercastError("network", `request failed: ${String((err as Error).message ?? err)}`);
}
