// One WebSocket to the service, kept alive: connect, back off and reconnect, heartbeat, tokens,
// publishes waiting for their ack, and the close-code policy of the protocol. What the frames
// mean for a channel (cursor, handlers, members) is the subscription's (subscription.ts).
import { errorOfClose, retryAfter, type ConnectionWelcomeFrame, type ClientFrame, type ErrFrame, type ResetFrame, type ServerFrame, type WelcomeFrame } from "../protocol/index.js";

type AnyWelcome = WelcomeFrame | ConnectionWelcomeFrame;
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { HibercastError } from "./errors.js";

/** The part of a WebSocket the client uses: browsers', Node 22's and the `ws` package's fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each implementation types its events its own way
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: any) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ConnectionOptions {
  /** A subscribe token, for private and presence channels. */
  token?: string;
  /**
   * Fetches a token: before the first connect when `token` is absent, once after a 4401
   * refusal, and ahead of expiry on long-lived connections (sent as an `auth` frame).
   */
  getToken?: () => Promise<string>;
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

export type State = "connecting" | "open" | "reconnecting" | "closed";

/** Connection lifecycle, kept apart from message events (a message event may be named `close`). */
export interface LifecycleEvents<W extends AnyWelcome = WelcomeFrame> {
  open: { attempt: number };
  welcome: W;
  /** The log could not cover the outage: refetch state; live messages continue after `seq`. */
  reset: ResetFrame;
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
  /** Final: the connection will not reconnect. `error` says why when it was not `close()`. */
  close: { code: number; reason: string; error?: HibercastError };
  /** Something went wrong that the app may want to show; fatal ones are followed by `close`. */
  error: HibercastError;
}

/** What the connection asks of whoever uses it (a subscription). */
export interface ConnectionUser<W extends AnyWelcome> {
  /** The URL of the next attempt (resume cursor included), before the token is added. */
  url(): URL;
  /** A frame that is not the connection's own business (msg, reset, presence, …). */
  frame(frame: ServerFrame): void;
  /** Called on every welcome, before the lifecycle event and before pending publishes go out. */
  welcomed(frame: W): void;
  /**
   * How a new token reaches the server while a socket is open: an `auth` frame (a channel's own
   * socket), or a reconnect that resumes from the cursors (`/v1/ws` takes no `auth`: its
   * channels carry their grants from the token they were subscribed with). Default `auth`.
   */
  renew?: "auth" | "reconnect";
}

export interface Ack {
  seq: number;
  id: string;
  duplicate: boolean;
  /** An append's ack: the seq of the message it grew. */
  ref?: number;
}

interface Pending {
  frame: string;
  resolve: (ack: Ack) => void;
  reject: (err: HibercastError) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

/** The answer to a `more` frame: the replay page before it was read (of channel `ch`, on a multiplexed connection). */
const moreFor = (ch: string | undefined) => JSON.stringify((ch === undefined ? { t: "more" } : { t: "more", ch }) satisfies ClientFrame);

const OPEN = 1;

/** The moves `setState` allows: `closed` is final; `reconnecting` repeats while attempts fail. */
const NEXT: Record<State, readonly State[]> = {
  connecting: ["open", "reconnecting", "closed"],
  open: ["reconnecting", "closed"],
  reconnecting: ["reconnecting", "open", "closed"],
  closed: [],
};

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

export class Connection<W extends AnyWelcome = WelcomeFrame> {
  /** Lifecycle: open, welcome, reset, reconnecting, close, error. */
  readonly events = new Emitter<LifecycleEvents<W>>();
  private current: State = "connecting";

  private readonly options: Required<Pick<ConnectionOptions, "pingIntervalMs" | "pongTimeoutMs" | "refreshTokenBeforeMs" | "publishTimeoutMs" | "connectTimeoutMs">> & { backoff: BackoffOptions };
  private readonly WS: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private token: string | undefined;
  private attempt = 0;
  private triedFreshToken = false;
  private readonly pending = new Map<string, Pending>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly config: ConnectionOptions,
    private readonly user: ConnectionUser<W>,
  ) {
    const WS = config.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new HibercastError("bad_request", "no WebSocket implementation: pass one as options.WebSocket (e.g. from the ws package)");
    this.WS = WS;
    this.token = config.token;
    this.options = {
      pingIntervalMs: config.pingIntervalMs ?? 25_000,
      pongTimeoutMs: config.pongTimeoutMs ?? 10_000,
      refreshTokenBeforeMs: config.refreshTokenBeforeMs ?? 60_000,
      publishTimeoutMs: config.publishTimeoutMs ?? 10_000,
      connectTimeoutMs: config.connectTimeoutMs ?? 10_000,
      backoff: { ...DEFAULT_BACKOFF, ...config.backoff },
    };
  }

  /** `open` from the welcome on (frames may be sent), until the socket drops. */
  get state(): State {
    return this.current;
  }

  /** Starts the first attempt (a separate step so the user is fully built first). */
  start(): void {
    void this.connect();
  }

  /**
   * Sends a frame that the server answers with `ack` (or `err` with the same id). Resolves with
   * the ack; unacknowledged frames are resent as they are after a reconnect, so a drop neither
   * loses nor doubles them.
   */
  request(id: string, frame: string): Promise<Ack> {
    if (this.state === "closed") return Promise.reject(new HibercastError("closed", "connection is closed"));
    return new Promise((resolve, reject) => {
      const entry: Pending = { frame, resolve, reject, timer: null };
      this.pending.set(id, entry);
      if (this.state === "open") this.sendPending(id, entry);
    });
  }

  /** Sends a frame now if the socket is open (a frame that may be lost with a drop: `sub`, `unsub`). */
  send(frame: string): void {
    if (this.ws?.readyState === OPEN && this.state === "open") this.ws.send(frame);
  }

  /** Drops the current socket and connects again (the user's URL carries the resume point). */
  reconnect(): void {
    if (this.ws !== null && this.state !== "closed") this.giveUp(this.ws, "reconnect requested", 4000);
  }

  /**
   * Uses `token` from now on (`undefined`: none, or `getToken`'s on the next attempt) and puts it
   * to use at once: an open socket sends it as an `auth` frame, or reconnects where the server
   * takes none (a multiplexed connection: every channel resumes from its cursor).
   */
  setToken(token: string | undefined): void {
    if (this.state === "closed" || token === this.token) return;
    this.token = token;
    this.triedFreshToken = false;
    const ws = this.ws;
    if (ws === null) return; // the next attempt carries it
    if (this.state === "open" && token !== undefined && this.user.renew !== "reconnect") {
      ws.send(JSON.stringify({ t: "auth", token } satisfies ClientFrame));
      this.scheduleTokenRefresh();
      return;
    }
    // An attempt under way (or a token taken away) would go on with the old one.
    this.giveUp(ws, "new token", 4000);
  }

  /** Closes for good. */
  close(): void {
    if (this.state === "closed") return;
    this.finish(1000, "closed by client");
  }

  /** Every change of state goes through here; answers false, changing nothing, for a move not allowed. */
  private setState(state: State): boolean {
    if (!NEXT[this.current].includes(state)) return false;
    this.current = state;
    return true;
  }

  // ---- attempts ------------------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.state === "closed") return;
    if (this.token === undefined && this.config.getToken) {
      try {
        this.token = await this.config.getToken();
      } catch (err) {
        if ((this.state as State) === "closed") return;
        this.events.emit("error", new HibercastError("unauthorized", `getToken failed: ${String(err)}`));
        return this.retry(4401, "getToken failed");
      }
    }
    if ((this.state as State) === "closed") return;
    const url = this.user.url();
    if (this.token !== undefined) url.searchParams.set("token", this.token);

    const ws = new this.WS(url.toString());
    this.ws = ws;
    ws.addEventListener("open", () => this.events.emit("open", { attempt: this.attempt }));
    // A socket already given up on (connect timeout, no pong) may still deliver what it had.
    ws.addEventListener("message", (ev: { data: unknown }) => ws === this.ws && this.receive(typeof ev.data === "string" ? ev.data : String(ev.data)));
    ws.addEventListener("close", (ev: { code: number; reason: string }) => this.dropped(ws, ev.code, ev.reason));
    ws.addEventListener("error", () => {}); // a close event follows
    this.later(() => {
      if (ws === this.ws && this.state !== "open") this.giveUp(ws, "connect timeout");
    }, this.options.connectTimeoutMs);
  }

  /** The socket is gone (closed by either side, or given up as dead): act on the close code. */
  private dropped(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.ws = null;
    this.stopHeartbeat();
    for (const entry of this.pending.values()) this.clearTimer(entry);
    if (this.state === "closed") return;
    switch (retryAfter(code)) {
      case "stop":
        return this.fail(code, reason || `refused (${code})`);
      case "fresh-token":
        if (!this.config.getToken || this.triedFreshToken) return this.fail(code, reason || "token refused");
        this.triedFreshToken = true;
        this.token = undefined; // connect() fetches a fresh one
        return this.retry(code, reason, 0);
      case "backoff":
        return this.retry(code, reason);
    }
  }

  private retry(code: number, reason: string, delayMs = backoffDelay(this.attempt, this.options.backoff)): void {
    // Not after close(): a getToken that fails once the app closed must not start a new attempt.
    if (!this.setState("reconnecting")) return;
    this.attempt++;
    this.events.emit("reconnecting", { attempt: this.attempt, delayMs, code, reason });
    this.later(() => void this.connect(), delayMs);
  }

  private fail(code: number, reason: string): void {
    const error = new HibercastError(errorOfClose(code) ?? "bad_request", reason, code);
    this.events.emit("error", error);
    this.finish(code, reason, error);
  }

  private finish(code: number, reason: string, error?: HibercastError): void {
    this.setState("closed");
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
      entry.reject(error ?? new HibercastError("closed", "connection closed before the ack"));
      this.pending.delete(id);
    }
    this.events.emit("close", error ? { code, reason, error } : { code, reason });
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
    this.handle(frame);
  }

  private handle(frame: ServerFrame): void {
    switch (frame.t) {
      case "batch":
        // Frames that piled up during one flush on the server, complete and in order.
        for (const f of frame.f) this.handle(f);
        return;
      case "welcome":
        return this.welcome(frame as W);
      case "ack": {
        const entry = this.pending.get(frame.id);
        if (!entry) return;
        this.clearTimer(entry);
        this.pending.delete(frame.id);
        entry.resolve({ seq: frame.seq, id: frame.id, duplicate: frame.duplicate, ...(frame.ref === undefined ? {} : { ref: frame.ref }) });
        return;
      }
      case "err":
        return this.error(frame);
      case "more":
        // A long replay, page by page: this page has been read, send the next.
        try {
          this.ws?.send(moreFor(frame.ch));
        } catch {
          // closing: the resume picks up from the last seq
        }
        return;
      default:
        return this.user.frame(frame);
    }
  }

  private welcome(frame: W): void {
    if (!this.setState("open")) return; // a second welcome on the same socket changes nothing
    this.attempt = 0;
    this.triedFreshToken = false;
    this.user.welcomed(frame);
    this.startHeartbeat();
    this.scheduleTokenRefresh();
    this.events.emit("welcome", frame);
    for (const [id, entry] of this.pending) this.sendPending(id, entry);
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
    // About one channel of a multiplexed connection: that subscription's business.
    if (frame.ch !== undefined) return this.user.frame(frame);
    this.events.emit("error", error);
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
        if (ws !== this.ws || ws.readyState !== OPEN) return; // the next attempt carries it
        if (this.user.renew === "reconnect") return this.giveUp(ws, "token refresh", 4000);
        ws.send(JSON.stringify({ t: "auth", token: this.token } satisfies ClientFrame));
        this.scheduleTokenRefresh();
      } catch (err) {
        this.events.emit("error", new HibercastError("unauthorized", `token refresh failed: ${String(err)}`));
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
