// hibercast/client: subscribe to a channel over WebSocket, in browsers and Node, with exact
// resume across reconnects. No server code in here.
import { backoffDelay, DEFAULT_BACKOFF, randomId, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { HibercastError } from "./errors.js";
import type { Cursor, ErrFrame, Member, MsgFrame, ResetFrame, ServerFrame, WelcomeFrame } from "./frames.js";

export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { Emitter } from "./emitter.js";
export { HibercastError, type ClientErrorCode } from "./errors.js";
export type * from "./frames.js";

/** The part of a WebSocket the client uses: browsers', Node 22's and the `ws` package's fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each implementation types its events its own way
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: any) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface SubscribeOptions {
  /** The service's base URL, e.g. `https://rt.example.com` (http(s) or ws(s)). */
  url: string;
  channel: string;
  /** A subscribe token, for private and presence channels. */
  token?: string;
  /**
   * Fetches a token: before the first connect when `token` is absent, once after a 4401
   * refusal, and ahead of expiry on long-lived connections (sent as an `auth` frame).
   */
  getToken?: () => Promise<string>;
  /** Resume from here instead of starting live. */
  since?: Cursor;
  /** A new subscription first receives the last N messages (N ≤ 100). */
  rewind?: number;
  /** A WebSocket implementation where there is no global one (Node 20: the `ws` package). */
  WebSocket?: WebSocketConstructor;
  backoff?: Partial<BackoffOptions>;
  /** How often to send `ping` (the room answers without waking). Default 25 s. */
  pingIntervalMs?: number;
  /** A connection with no `pong` this long after a ping is taken as dead. Default 10 s. */
  pongTimeoutMs?: number;
  /** Refresh the token this long before it expires. Default 60 s. */
  refreshTokenBeforeMs?: number;
  /** A socket publish with no `ack` this long after it was sent is rejected. Default 10 s. */
  publishTimeoutMs?: number;
  /** An attempt with no `welcome` this long after it started is given up and retried. Default 10 s. */
  connectTimeoutMs?: number;
}

/** Connection lifecycle, kept apart from message events (a message event may be named `close`). */
export interface LifecycleEvents {
  open: { attempt: number };
  welcome: WelcomeFrame;
  /** The log could not cover the outage: refetch state; live messages continue after `seq`. */
  reset: ResetFrame;
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
  /** Final: the subscription will not reconnect. `error` says why when it was not `close()`. */
  close: { code: number; reason: string; error?: HibercastError };
  /** Something went wrong that the app may want to show; fatal ones are followed by `close`. */
  error: HibercastError;
}

export interface PresenceEvents {
  members: Member[];
  join: Member;
  leave: Member;
}

export type EventMap = Record<string, unknown>;
type MessageHandler<E extends string, D> = (data: D, message: MsgFrame<E, D>) => void;

export type State = "connecting" | "open" | "reconnecting" | "closed";

interface Pending {
  frame: string;
  resolve: (ack: { seq: number; id: string; duplicate: boolean }) => void;
  reject: (err: HibercastError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

const OPEN = 1;
/** Close codes after which retrying cannot help. */
const FATAL = new Set([4400, 4403, 1009]);

function socketUrl(base: string, channel: string): URL {
  const url = new URL(`v1/channels/${encodeURIComponent(channel)}/ws`, base.endsWith("/") ? base : `${base}/`);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  return url;
}

/** The `exp` of a JWT, in ms, without verifying it (the server does that). */
function tokenExpiry(token: string): number | null {
  try {
    const payload = token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/");
    const exp = (JSON.parse(atob(payload)) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * A subscription to one channel. It reconnects with full-jitter backoff and resumes from the
 * last message it delivered, so handlers see every message once and in order across drops;
 * when the server's log cannot cover an outage, `reset` says so.
 */
export class Subscription<Events extends EventMap = EventMap> {
  /** Connection lifecycle: open, welcome, reset, reconnecting, close, error. */
  readonly connection = new Emitter<LifecycleEvents>();
  /** Presence channels: the member list and join/leave. */
  readonly presence = new Emitter<PresenceEvents>();
  /** Current members of a presence channel, by id (at most PRESENCE_MAX_MEMBERS of them). */
  readonly members = new Map<string, Member>();
  /** How many members the channel has, also beyond those listed in `members`. */
  memberCount = 0;
  /** What has been delivered: resume point of the next reconnect. */
  cursor: Cursor | null;
  /** This connection's id (from `welcome`), for `?exclude=` on HTTP publishes. */
  cid: string | null = null;
  state: State = "connecting";

  private readonly messages = new Map<string, Set<MessageHandler<string, unknown>>>();
  private readonly options: Required<Pick<SubscribeOptions, "pingIntervalMs" | "pongTimeoutMs" | "refreshTokenBeforeMs" | "publishTimeoutMs" | "connectTimeoutMs">> & { backoff: BackoffOptions };
  private readonly WS: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private token: string | undefined;
  private attempt = 0;
  private welcomed = false;
  private triedFreshToken = false;
  private readonly pending = new Map<string, Pending>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly config: SubscribeOptions) {
    const WS = config.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new HibercastError("bad_request", "no WebSocket implementation: pass one as options.WebSocket (e.g. from the ws package)");
    this.WS = WS;
    this.token = config.token;
    this.cursor = config.since ?? null;
    this.options = {
      pingIntervalMs: config.pingIntervalMs ?? 25_000,
      pongTimeoutMs: config.pongTimeoutMs ?? 10_000,
      refreshTokenBeforeMs: config.refreshTokenBeforeMs ?? 60_000,
      publishTimeoutMs: config.publishTimeoutMs ?? 10_000,
      connectTimeoutMs: config.connectTimeoutMs ?? 10_000,
      backoff: { ...DEFAULT_BACKOFF, ...config.backoff },
    };
    void this.connect();
  }

  /** Handles messages of one event (typed by the Events map), or of all with `"*"`. */
  on<K extends keyof Events & string>(event: K, handler: MessageHandler<K, Events[K]>): () => void;
  on(event: "*", handler: MessageHandler<string, unknown>): () => void;
  on(event: string, handler: MessageHandler<string, never>): () => void {
    let set = this.messages.get(event);
    if (!set) this.messages.set(event, (set = new Set()));
    set.add(handler as MessageHandler<string, unknown>);
    return () => set.delete(handler as MessageHandler<string, unknown>);
  }

  /**
   * Publishes over the socket (the token needs a `pub` grant). Resolves with the `ack`; rejects
   * with the server's `err`. Unacknowledged publishes are resent with the same id after a
   * reconnect, so a drop never loses or doubles one.
   */
  publish<K extends keyof Events & string>(event: K, data: Events[K], options: { id?: string } = {}): Promise<{ seq: number; id: string; duplicate: boolean }> {
    if (this.state === "closed") return Promise.reject(new HibercastError("closed", "subscription is closed"));
    const id = options.id ?? randomId();
    const frame = JSON.stringify({ t: "pub", e: event, d: data, id });
    return new Promise((resolve, reject) => {
      const entry: Pending = { frame, resolve, reject, timer: null };
      this.pending.set(id, entry);
      if (this.welcomed) this.sendPending(id, entry);
    });
  }

  /**
   * Drops the current connection and connects again, resuming from the cursor (after a network
   * change, say). Nothing is lost: the replay covers what arrived in between.
   */
  reconnect(): void {
    if (this.ws !== null && this.state !== "closed") this.giveUp(this.ws, "reconnect requested", 4000);
  }

  /** Closes for good. */
  close(): void {
    if (this.state === "closed") return;
    this.finish(1000, "closed by client");
  }

  // ---- connection ----------------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.state === "closed") return;
    if (this.token === undefined && this.config.getToken) {
      try {
        this.token = await this.config.getToken();
      } catch (err) {
        this.connection.emit("error", new HibercastError("unauthorized", `getToken failed: ${String(err)}`));
        return this.retry(4401, "getToken failed");
      }
    }
    if ((this.state as State) === "closed") return;
    const url = socketUrl(this.config.url, this.config.channel);
    if (this.cursor !== null) {
      url.searchParams.set("since", String(this.cursor.seq));
      if (this.cursor.epoch !== null) url.searchParams.set("epoch", this.cursor.epoch);
    } else if (this.config.rewind) {
      url.searchParams.set("rewind", String(this.config.rewind));
    }
    if (this.token !== undefined) url.searchParams.set("token", this.token);

    const ws = new this.WS(url.toString());
    this.ws = ws;
    this.welcomed = false;
    ws.addEventListener("open", () => this.connection.emit("open", { attempt: this.attempt }));
    ws.addEventListener("message", (ev: { data: unknown }) => this.receive(typeof ev.data === "string" ? ev.data : String(ev.data)));
    ws.addEventListener("close", (ev: { code: number; reason: string }) => this.dropped(ws, ev.code, ev.reason));
    ws.addEventListener("error", () => {}); // a close event follows
    this.later(() => {
      if (ws === this.ws && !this.welcomed) this.giveUp(ws, "connect timeout");
    }, this.options.connectTimeoutMs);
  }

  /** The socket is gone (closed by either side, or given up as dead). */
  private dropped(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcomed = false;
    this.stopHeartbeat();
    for (const entry of this.pending.values()) this.clearTimer(entry);
    if (this.state === "closed") return;
    if (FATAL.has(code)) return this.fail(code, reason || `refused (${code})`);
    if (code === 4401) {
      if (!this.config.getToken || this.triedFreshToken) return this.fail(code, reason || "token refused");
      this.triedFreshToken = true;
      this.token = undefined; // connect() fetches a fresh one
      return this.retry(code, reason, 0);
    }
    this.retry(code, reason);
  }

  private retry(code: number, reason: string, delayMs = backoffDelay(this.attempt, this.options.backoff)): void {
    this.attempt++;
    this.state = "reconnecting";
    this.connection.emit("reconnecting", { attempt: this.attempt, delayMs, code, reason });
    this.later(() => void this.connect(), delayMs);
  }

  private fail(code: number, reason: string): void {
    const error = new HibercastError(code === 1009 ? "too_large" : code === 4401 ? "unauthorized" : code === 4403 ? "forbidden" : "bad_request", reason, code);
    this.connection.emit("error", error);
    this.finish(code, reason, error);
  }

  private finish(code: number, reason: string, error?: HibercastError): void {
    this.state = "closed";
    this.stopHeartbeat();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const ws = this.ws;
    this.ws = null;
    try {
      ws?.close(1000, "bye");
    } catch {
      // already closing
    }
    for (const [id, entry] of this.pending) {
      this.clearTimer(entry);
      entry.reject(error ?? new HibercastError("closed", "subscription closed before the ack"));
      this.pending.delete(id);
    }
    this.connection.emit("close", error ? { code, reason, error } : { code, reason });
  }

  // ---- frames --------------------------------------------------------------------------

  private receive(text: string): void {
    if (text === "pong") {
      if (this.pongTimer !== null) clearTimeout(this.pongTimer);
      this.pongTimer = null;
      return;
    }
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return; // not a frame of ours; ignore like any unknown frame
    }
    switch (frame.t) {
      case "welcome":
        return this.welcome(frame);
      case "msg":
        return this.deliver(frame);
      case "reset":
        this.cursor = { seq: frame.seq, epoch: frame.epoch };
        this.connection.emit("reset", frame);
        return;
      case "ack": {
        const entry = this.pending.get(frame.id);
        if (!entry) return;
        this.clearTimer(entry);
        this.pending.delete(frame.id);
        entry.resolve({ seq: frame.seq, id: frame.id, duplicate: frame.duplicate });
        return;
      }
      case "err":
        return this.error(frame);
      case "members":
        this.members.clear();
        for (const m of frame.members) this.members.set(m.id, m);
        this.memberCount = frame.count;
        this.presence.emit("members", frame.members);
        return;
      case "join":
        this.members.set(frame.member.id, frame.member);
        this.memberCount++;
        this.presence.emit("join", frame.member);
        return;
      case "leave":
        this.members.delete(frame.member.id);
        this.memberCount = Math.max(0, this.memberCount - 1);
        this.presence.emit("leave", frame.member);
        return;
      default:
        return; // unknown frame types are ignored (forward compatible)
    }
  }

  private welcome(frame: WelcomeFrame): void {
    this.welcomed = true;
    this.state = "open";
    this.attempt = 0;
    this.triedFreshToken = false;
    this.cid = frame.cid;
    if (this.cursor === null) {
      // Live from here; a rewind's replay has seqs after this point.
      this.cursor = { seq: Math.max(0, frame.seq - (this.config.rewind ?? 0)), epoch: frame.epoch };
    } else if (this.cursor.epoch === null && frame.epoch !== null) {
      this.cursor = { seq: this.cursor.seq, epoch: frame.epoch };
    }
    this.startHeartbeat();
    this.scheduleTokenRefresh();
    this.connection.emit("welcome", frame);
    for (const [id, entry] of this.pending) this.sendPending(id, entry);
  }

  private deliver(frame: MsgFrame): void {
    // Never twice: a frame at or before the cursor was already delivered.
    if (this.cursor !== null && frame.seq <= this.cursor.seq) return;
    this.cursor = { seq: frame.seq, epoch: this.cursor?.epoch ?? null };
    for (const key of [frame.e, "*"]) {
      for (const handler of this.messages.get(key) ?? []) {
        try {
          handler(frame.d, frame);
        } catch (err) {
          console.error(`hibercast: a "${key}" message handler threw`, err);
        }
      }
    }
  }

  private error(frame: ErrFrame): void {
    if (typeof frame.close === "number" && this.ws !== null) {
      // The server is closing this connection: act on its code now.
      return this.giveUp(this.ws, frame.message, frame.close);
    }
    const error = new HibercastError(frame.code, frame.message);
    const entry = frame.id === undefined ? undefined : this.pending.get(frame.id);
    if (entry && frame.id !== undefined) {
      this.clearTimer(entry);
      this.pending.delete(frame.id);
      entry.reject(error);
      return;
    }
    this.connection.emit("error", error);
  }

  private sendPending(id: string, entry: Pending): void {
    if (this.ws?.readyState !== OPEN) return;
    this.ws.send(entry.frame);
    this.clearTimer(entry);
    entry.timer = this.later(() => {
      this.pending.delete(id);
      entry.reject(new HibercastError("timeout", `no ack for publish ${id} within ${this.options.publishTimeoutMs} ms`));
    }, this.options.publishTimeoutMs);
  }

  private clearTimer(entry: Pending): void {
    if (entry.timer !== null) clearTimeout(entry.timer);
    this.timers.delete(entry.timer!);
    entry.timer = null;
  }

  // ---- liveness and token refresh ------------------------------------------------------

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const ws = this.ws;
    if (ws === null) return;
    this.pingTimer = setInterval(() => {
      if (ws !== this.ws || ws.readyState !== OPEN) return;
      ws.send("ping");
      // No pong: the connection is dead even if the OS has not noticed.
      this.pongTimer ??= setTimeout(() => this.giveUp(ws, "no pong"), this.options.pongTimeoutMs);
    }, this.options.pingIntervalMs);
  }

  /** Abandons a socket that stopped answering, without waiting for a close that may never come. */
  private giveUp(ws: WebSocketLike, reason: string, code = 1006): void {
    try {
      ws.close(4000, reason.slice(0, 120));
    } catch {
      // already closing
    }
    this.dropped(ws, code, reason);
  }

  private stopHeartbeat(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    if (this.pongTimer !== null) clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = null;
  }

  private scheduleTokenRefresh(): void {
    const getToken = this.config.getToken;
    const exp = this.token === undefined ? null : tokenExpiry(this.token);
    if (!getToken || exp === null) return;
    const delay = Math.max(0, exp - this.options.refreshTokenBeforeMs - Date.now());
    // Timers overflow past ~24.8 days; such a token is refreshed on a later reconnect instead.
    if (delay > 2 ** 31 - 1) return;
    const ws = this.ws;
    if (ws === null) return;
    this.later(async () => {
      if (ws !== this.ws || this.state !== "open") return;
      try {
        this.token = await getToken();
        if (ws === this.ws && ws.readyState === OPEN) ws.send(JSON.stringify({ t: "auth", token: this.token }));
        this.scheduleTokenRefresh();
      } catch (err) {
        this.connection.emit("error", new HibercastError("unauthorized", `token refresh failed: ${String(err)}`));
      }
    }, delay);
  }

  private later(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }
}

/** Subscribes to a channel; see `SubscribeOptions`. */
export function subscribe<Events extends EventMap = EventMap>(options: SubscribeOptions): Subscription<Events> {
  return new Subscription<Events>(options);
}
