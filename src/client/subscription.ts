// A subscription to one channel: the resume cursor, the message handlers and the presence
// members. It rides on a connection of its own (`subscribe()`), or on a multiplexed connection
// shared with other channels (`connect().subscribe()`, multiplexed.ts); either way it sees every
// message once and in order across drops.
import type { Cursor, Member, MsgFrame, ServerFrame, WelcomeFrame } from "../protocol/index.js";
import { randomId } from "./backoff.js";
import { Connection, type Ack, type ConnectionOptions, type LifecycleEvents, type State } from "./connection.js";
import { Emitter } from "./emitter.js";

export interface SubscribeOptions extends ConnectionOptions {
  /** The service's base URL, e.g. `https://rt.example.com` (http(s) or ws(s)). */
  url: string;
  channel: string;
  /** Resume from here instead of starting live. */
  since?: Cursor;
  /** A new subscription first receives the last N messages (N ≤ 100). */
  rewind?: number;
}

export interface PresenceEvents {
  members: Member[];
  join: Member;
  leave: Member;
}

export type EventMap = Record<string, unknown>;
type MessageHandler<E extends string, D> = (data: D, message: MsgFrame<E, D>) => void;

/** What carries a subscription's frames: its own connection, or its share of a multiplexed one. */
export interface Link {
  readonly events: Emitter<LifecycleEvents>;
  readonly state: State;
  /** Sends a frame answered by `ack` (a publish), built for this link (`ch` where needed). */
  publish(id: string, event: string, data: unknown): Promise<Ack>;
  reconnect(): void;
  close(): void;
}

function socketUrl(base: string, channel: string): URL {
  const url = new URL(`v1/channels/${encodeURIComponent(channel)}/ws`, base.endsWith("/") ? base : `${base}/`);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  return url;
}

/**
 * A subscription to one channel. It reconnects with full-jitter backoff and resumes from the
 * last message it delivered, so handlers see every message once and in order across drops;
 * when the server's log cannot cover an outage, `reset` says so.
 */
export class Subscription<Events extends EventMap = EventMap> {
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

  private readonly link: Link;
  private readonly messages = new Map<string, Set<MessageHandler<string, unknown>>>();

  /** `link` is given by a multiplexed connection; without it the subscription opens its own socket. */
  constructor(
    readonly config: SubscribeOptions,
    link?: (sub: Subscription<Events>) => Link,
  ) {
    this.cursor = config.since ?? null;
    if (link !== undefined) {
      this.link = link(this);
      return;
    }
    const socket = new Connection(config, {
      url: () => this.nextUrl(),
      welcomed: (frame) => this.welcomed(frame),
      frame: (frame) => this.receive(frame),
    });
    this.link = {
      events: socket.events,
      get state() {
        return socket.state;
      },
      publish: (id, event, data) => socket.request(id, JSON.stringify({ t: "pub", e: event, d: data, id })),
      reconnect: () => socket.reconnect(),
      close: () => socket.close(),
    };
    socket.start();
  }

  /** Connection lifecycle: open, welcome, reset, reconnecting, close, error. */
  get connection(): Emitter<LifecycleEvents> {
    return this.link.events;
  }

  get state(): State {
    return this.link.state;
  }

  get channel(): string {
    return this.config.channel;
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
  publish<K extends keyof Events & string>(event: K, data: Events[K], options: { id?: string } = {}): Promise<Ack> {
    return this.link.publish(options.id ?? randomId(), event, data);
  }

  /**
   * Drops the current connection and connects again, resuming from the cursor (after a network
   * change, say). Nothing is lost: the replay covers what arrived in between.
   */
  reconnect(): void {
    this.link.reconnect();
  }

  /** Closes for good (on a multiplexed connection: this channel only). */
  close(): void {
    this.link.close();
  }

  private nextUrl(): URL {
    const url = socketUrl(this.config.url, this.config.channel);
    url.searchParams.set("batch", "1"); // frames of a burst come packed; the connection unpacks them
    if (this.cursor !== null) {
      url.searchParams.set("since", String(this.cursor.seq));
      if (this.cursor.epoch !== null) url.searchParams.set("epoch", this.cursor.epoch);
    } else if (this.config.rewind) {
      url.searchParams.set("rewind", String(this.config.rewind));
    }
    return url;
  }

  /** Where this subscription starts on its next (re)subscribe: its cursor, or a rewind, or live. */
  get start(): { since?: number; epoch?: string; rewind?: number } {
    if (this.cursor !== null) return this.cursor.epoch === null ? { since: this.cursor.seq } : { since: this.cursor.seq, epoch: this.cursor.epoch };
    return this.config.rewind ? { rewind: this.config.rewind } : {};
  }

  /** The channel's welcome (or a multiplexed connection's `subscribed`, as a welcome). */
  welcomed(frame: WelcomeFrame): void {
    this.cid = frame.cid;
    if (this.cursor === null) {
      // Live from here; a rewind's replay has seqs after this point.
      this.cursor = { seq: Math.max(0, frame.seq - (this.config.rewind ?? 0)), epoch: frame.epoch };
    } else if (this.cursor.epoch === null) {
      this.cursor = { seq: this.cursor.seq, epoch: frame.epoch };
    }
  }

  receive(frame: ServerFrame): void {
    switch (frame.t) {
      case "msg":
        return this.deliver(frame);
      case "reset":
        this.cursor = { seq: frame.seq, epoch: frame.epoch };
        this.connection.emit("reset", frame);
        return;
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
}
