// Many channels over one socket (`GET /v1/ws`): one connection (backoff, heartbeat, tokens,
// pending acks) and a subscription per channel, each with the same API as `subscribe()`'s. After
// every reconnect each channel is subscribed again from its own cursor, so each resumes exactly.
import type { ConnectionWelcomeFrame, ErrorCode, ServerFrame } from "../protocol/index.js";
import { Connection, type ConnectionOptions, type LifecycleEvents, type State } from "./connection.js";
import { Emitter } from "./emitter.js";
import { HibercastError } from "./errors.js";
import { Subscription, type EventMap } from "./subscription.js";
import { socketUrl } from "./url.js";

export interface ConnectOptions extends ConnectionOptions {
  /** The service's base URL, e.g. `https://rt.example.com` (http(s) or ws(s)). */
  url: string;
}

export interface ChannelOptions {
  /** Resume from here instead of starting live. */
  since?: { seq: number; epoch: string | null };
  /** A new subscription first receives the last N messages (N ≤ 100). */
  rewind?: number;
  /** A token for this channel only (else the connection's is used). */
  token?: string;
}

/** Lifecycle events that concern the whole connection, passed on to every channel. */
const SHARED = ["open", "reconnecting", "close", "error"] as const;

/** An `err` answering a `sub` with one of these is a refusal: that channel is over. */
const REFUSED: readonly ErrorCode[] = ["unauthorized", "forbidden", "bad_request", "too_large"];

export class MultiplexedConnection {
  /** The connection's lifecycle (welcome here is the v2 welcome, with no channel). */
  readonly events: Emitter<LifecycleEvents<ConnectionWelcomeFrame>>;
  /** This connection's id, for `?exclude=` on HTTP publishes. */
  cid: string | null = null;

  private readonly socket: Connection<ConnectionWelcomeFrame>;
  private readonly subs = new Map<string, { sub: Subscription<EventMap>; token?: string }>();

  constructor(private readonly options: ConnectOptions) {
    this.socket = new Connection<ConnectionWelcomeFrame>(options, {
      url: () => socketUrl(options.url, "v1/ws"),
      welcomed: (frame) => {
        this.cid = frame.cid;
        for (const channel of this.subs.keys()) this.sendSub(channel);
      },
      frame: (frame) => this.route(frame),
      // `/v1/ws` takes no `auth` frame: a fresh token comes in with a reconnect, and every
      // channel subscribes again under it from its cursor.
      renew: "reconnect",
    });
    this.events = this.socket.events;
    for (const name of SHARED) {
      this.events.on(name, (value) => {
        for (const { sub } of [...this.subs.values()]) sub.passOn(name, value);
      });
    }
    // Closed for good (by close() or on an error): every channel ended with it, above.
    this.events.on("close", () => this.subs.clear());
    this.socket.start();
  }

  get state(): State {
    return this.socket.state;
  }

  /** Subscribes to a channel over this connection: the same subscription as `subscribe()` gives. */
  subscribe<Events extends EventMap = EventMap>(channel: string, options: ChannelOptions = {}): Subscription<Events> {
    if (this.subs.has(channel)) throw new HibercastError("bad_request", `already subscribed to ${channel} on this connection`);
    // Nothing would ever subscribe it: it would wait in `subscribing` for good.
    if (this.socket.state === "closed") throw new HibercastError("closed", "connection is closed");
    const sub = new Subscription<Events>({ url: this.options.url, channel, since: options.since, rewind: options.rewind }, () => ({
      get state() {
        return socketState();
      },
      publish: (id, fields) => this.socket.request(id, JSON.stringify({ t: "pub", ch: channel, ...fields, id })),
      reconnect: () => this.socket.reconnect(),
      close: () => this.unsubscribe(channel),
    }));
    const socketState = () => (this.subs.has(channel) ? this.socket.state : "closed");
    this.subs.set(channel, { sub: sub as Subscription<EventMap>, token: options.token });
    if (this.socket.state === "open") this.sendSub(channel);
    return sub;
  }

  /**
   * Uses `token` for the connection from now on (`undefined`: none, or `getToken`'s): it
   * reconnects at once, and every channel subscribes again under it from its cursor, so none
   * misses or repeats a message. Channels with a token of their own keep theirs.
   */
  setToken(token: string | undefined): void {
    this.socket.setToken(token);
  }

  /** Drops the socket and connects again; every channel resumes from its cursor. */
  reconnect(): void {
    this.socket.reconnect();
  }

  /** Closes the connection and every channel on it. */
  close(): void {
    this.socket.close();
  }

  private unsubscribe(channel: string): void {
    const entry = this.subs.get(channel);
    if (entry === undefined) return;
    this.subs.delete(channel);
    this.send({ t: "unsub", ch: channel });
    entry.sub.end("client_closed");
  }

  private sendSub(channel: string): void {
    const entry = this.subs.get(channel);
    if (entry === undefined) return;
    this.send({ t: "sub", ch: channel, ...entry.sub.start, ...(entry.token === undefined ? {} : { token: entry.token }) });
  }

  private send(frame: unknown): void {
    this.socket.send(JSON.stringify(frame));
  }

  /** A frame about one channel goes to that channel's subscription. */
  private route(frame: ServerFrame): void {
    const ch = "ch" in frame ? frame.ch : undefined;
    const entry = ch === undefined ? undefined : this.subs.get(ch);
    if (entry === undefined || ch === undefined) return;
    switch (frame.t) {
      case "subscribed": {
        const cid = this.cid!; // subs are sent after the welcome that named it
        entry.sub.subscribed(cid, frame.seq, frame.epoch);
        // Kept for apps that listen for `welcome` per channel; `state` says the same.
        entry.sub.passOn("welcome", { t: "welcome", v: 1, ch, cid, seq: frame.seq, epoch: frame.epoch });
        return;
      }
      case "unsubscribed": {
        // The server ended it (token expired, not granted): final for this channel.
        this.subs.delete(ch);
        return entry.sub.end("server_ended", new HibercastError(frame.code ?? "forbidden", frame.message ?? "unsubscribed by the server"));
      }
      case "err": {
        const error = new HibercastError(frame.code, frame.message);
        // An `err` with no `id` about a channel still subscribing answers its `sub`: on the first
        // subscribe or after a reconnect (an expired per-channel token), a refusal is final.
        if (entry.sub.subscriptionState === "subscribing" && frame.id === undefined && REFUSED.includes(frame.code)) {
          this.subs.delete(ch);
          return entry.sub.end("refused", error);
        }
        // Anything else is reported and the channel goes on.
        return entry.sub.passOn("error", error);
      }
      default:
        return entry.sub.receive(frame);
    }
  }
}

/** Opens one socket for many channels; see `ConnectOptions` and `MultiplexedConnection.subscribe`. */
export function connect(options: ConnectOptions): MultiplexedConnection {
  return new MultiplexedConnection(options);
}
