// A subscription to one channel: the resume cursor, the message handlers and the presence
// members. It rides on a connection of its own (`subscribe()`), or on a multiplexed connection
// shared with other channels (`connect().subscribe()`, multiplexed.ts); either way it sees every
// message once and in order across drops.
import type { AppendFrame, Cursor, Member, MsgFrame, ServerFrame } from "../protocol/index.js";
import { randomId } from "./backoff.js";
import { Connection, type Ack, type ConnectionOptions, type LifecycleEvents, type State } from "./connection.js";
import { Emitter } from "./emitter.js";
import { HibercastError } from "./errors.js";
import { canMove, type StateChange, type StateReason, type SubscriptionState } from "./state.js";
import { socketUrl } from "./url.js";

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

/**
 * A message as handlers get it. A message that grows (appends) comes again after each append,
 * with the same `id` and `seq` and `d` its whole text so far: render by `id`, replacing what
 * was there. `v` is the seq of its last append, `done` says it grows no more.
 */
export type Message<E extends string = string, D = unknown> = MsgFrame<E, D> & {
  /** After an append: the text it added (`d` already holds it). */
  appended?: string;
  /** The append grew a message this subscription never had (it began before its cursor): `d` is only what arrived since. */
  partial?: true;
};
type MessageHandler<E extends string, D> = (data: D, message: Message<E, D>) => void;

/** Growing messages whose text the subscription keeps, to hand the whole text after each append. */
const TEXTS_KEPT = 1000;

/** A subscription's lifecycle: its connection's events, and the subscription's own `state`. */
export interface SubscriptionEvents extends LifecycleEvents {
  state: StateChange;
}

/** Connection events a subscription passes on to the app (`reset` it raises itself). */
export const PASSED_ON = ["open", "welcome", "reconnecting", "close", "error"] as const;

/** What a `pub` frame carries besides its id: a publish (`e`, `d`) or an append (`append`, `d`, `done`). */
export interface PubFields {
  e?: string;
  d: unknown;
  append?: string;
  done?: boolean;
}

/** Close codes of a refused socket: the subscription was refused, not the network lost. */
const REFUSALS = [4400, 4401, 4403];

/**
 * What carries a subscription's frames: its own connection, or its share of a multiplexed one.
 * The carrier tells the subscription what happens through `subscribed`, `receive`, `passOn` and `end`.
 */
export interface Link {
  /** The carrying connection's state (`closed` for a channel that left its connection). */
  readonly state: State;
  /** Sends a `pub` frame answered by `ack` (a publish or an append), built for this link (`ch` where needed). */
  publish(id: string, fields: PubFields): Promise<Ack>;
  reconnect(): void;
  close(): void;
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
  private readonly events = new Emitter<SubscriptionEvents>();
  private current: SubscriptionState = "subscribing";
  /** Why it ended, for `ready()` calls made after the fact. */
  private endError: HibercastError | undefined;
  private readonly messages = new Map<string, Set<MessageHandler<string, unknown>>>();
  /** Messages that may grow (string data, not done), by seq: their text so far. Oldest dropped past TEXTS_KEPT. */
  private readonly texts = new Map<number, Message<string, string>>();
  /**
   * After a welcome with no cursor: the seq it named. The rewind (or `latest`) that follows has
   * messages up to it, each whole, to deliver though the cursor is already there.
   */
  private opening: number | null = null;

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
      welcomed: (frame) => this.subscribed(frame.cid, frame.seq, frame.epoch),
      frame: (frame) => this.receive(frame),
    });
    for (const name of PASSED_ON) socket.events.on(name, (value) => this.passOn(name, value));
    this.link = {
      get state() {
        return socket.state;
      },
      publish: (id, fields) => socket.request(id, JSON.stringify({ t: "pub", ...fields, id })),
      reconnect: () => socket.reconnect(),
      close: () => socket.close(),
    };
    socket.start();
  }

  /** Lifecycle: state, and the connection's open, welcome, reset, reconnecting, close, error. */
  get connection(): Emitter<SubscriptionEvents> {
    return this.events;
  }

  /** subscribing → subscribed, back to subscribing while the connection is down; unsubscribed is final. */
  get subscriptionState(): SubscriptionState {
    return this.current;
  }

  /** The carrying connection's state (connecting, open, reconnecting, closed), as in 0.3.0. */
  get state(): State {
    return this.link.state;
  }

  /** The same as `state`: the carrying connection's. */
  get connectionState(): State {
    return this.link.state;
  }

  /** Resolves once subscribed (at once if it is); rejects if it ends first, with the reason's error. */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (): boolean => {
        if (this.current === "subscribed") resolve();
        else if (this.current === "unsubscribed") reject(this.endError ?? new HibercastError("closed", "unsubscribed"));
        else return false;
        return true;
      };
      if (settle()) return;
      const off = this.events.on("state", () => settle() && off());
    });
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
    if (this.current === "unsubscribed") return Promise.reject(new HibercastError("closed", `not subscribed to ${this.channel}`));
    return this.link.publish(options.id ?? randomId(), { e: event, d: data });
  }

  /**
   * Grows message `messageId` (one this publisher sent, with string data) by `text`; `done: true`
   * ends it. Every subscriber's handler gets the message again with its whole text so far.
   * Resolves with the `ack` (`ref`: the message's seq); a retry with the same `id` appends once.
   */
  append(messageId: string, text: string, options: { id?: string; done?: boolean } = {}): Promise<Ack> {
    if (this.current === "unsubscribed") return Promise.reject(new HibercastError("closed", `not subscribed to ${this.channel}`));
    return this.link.publish(options.id ?? randomId(), { append: messageId, d: text, ...(options.done ? { done: true } : {}) });
  }

  /** The whole text so far of a growing message this subscription has (by the message's seq), if it keeps it. */
  textOf(seq: number): string | undefined {
    return this.texts.get(seq)?.d;
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
    const url = socketUrl(this.config.url, `v1/channels/${encodeURIComponent(this.config.channel)}/ws`);
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

  /** From the carrier: the server accepted it (the channel's welcome, or `subscribed`) on connection `cid`. */
  subscribed(cid: string, seq: number, epoch: string): void {
    this.cid = cid;
    this.opening = null;
    if (this.cursor === null) {
      // Live from here; a rewind's messages (each whole, so not one per seq) come first, up to here.
      this.cursor = { seq, epoch };
      this.opening = seq;
    } else if (this.cursor.epoch === null) {
      this.cursor = { seq: this.cursor.seq, epoch };
    }
    this.setState("subscribed");
  }

  /** From the carrier: a connection event, passed on to the app after the state it implies. */
  passOn<K extends (typeof PASSED_ON)[number]>(name: K, value: SubscriptionEvents[K]): void {
    if (name === "reconnecting") this.setState("subscribing", "connection_lost");
    if (name === "close") {
      const { code, error } = value as SubscriptionEvents["close"];
      this.setState("unsubscribed", error === undefined ? "client_closed" : REFUSALS.includes(code) ? "refused" : "connection_failed", error);
    }
    this.events.emit(name, value);
  }

  /** From a multiplexed carrier: this channel alone is over (error, then state, then close). */
  end(reason: StateReason, error?: HibercastError): void {
    if (this.current === "unsubscribed") return;
    if (error !== undefined) this.events.emit("error", error);
    this.setState("unsubscribed", reason, error);
    this.events.emit("close", error === undefined ? { code: 1000, reason: "unsubscribed" } : { code: 1000, reason: error.message, error });
  }

  /** Every change of state goes through here; a move `canMove` does not allow changes nothing. */
  private setState(newState: SubscriptionState, reason?: StateReason, error?: HibercastError): void {
    const oldState = this.current;
    if (!canMove(oldState, newState)) return;
    this.current = newState;
    if (newState === "unsubscribed") this.endError = error;
    this.events.emit("state", { newState, oldState, ...(reason && { reason }), ...(error && { error }) });
  }

  receive(frame: ServerFrame): void {
    switch (frame.t) {
      case "msg":
        return this.deliver(frame);
      case "append":
        return this.grow(frame);
      case "reset":
        this.cursor = { seq: frame.seq, epoch: frame.epoch };
        // What came in between is lost: texts kept before it would grow without it.
        this.texts.clear();
        this.opening = null;
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

  /** Whether a frame at `seq` is new: past the cursor, or part of the opening's rewind. */
  private fresh(seq: number): boolean {
    if (this.opening !== null && seq <= this.opening) return true;
    this.opening = null;
    // Never twice: a frame at or before the cursor was already delivered.
    return this.cursor === null || seq > this.cursor.seq;
  }

  private moveTo(seq: number): void {
    if (this.cursor === null || seq > this.cursor.seq) this.cursor = { seq, epoch: this.cursor?.epoch ?? null };
  }

  private deliver(frame: MsgFrame): void {
    if (!this.fresh(frame.seq)) return;
    this.moveTo(frame.v ?? frame.seq);
    if (typeof frame.d === "string" && frame.done !== true) this.keep(frame as Message<string, string>);
    this.emit(frame);
  }

  /** An append: the message again, with its whole text so far (only what arrived when it began before this subscription). */
  private grow(frame: AppendFrame): void {
    if (!this.fresh(frame.seq)) return;
    this.moveTo(frame.seq);
    const known = this.texts.get(frame.ref);
    const message: Message<string, string> = {
      t: "msg",
      ch: frame.ch,
      seq: frame.ref,
      id: frame.id,
      e: frame.e,
      d: (known?.d ?? "") + frame.d,
      ts: known?.ts ?? frame.ts,
      ...(frame.u === undefined ? {} : { u: frame.u }),
      v: frame.seq,
      ...(frame.done === true ? { done: true as const } : {}),
      appended: frame.d,
      ...(known === undefined ? { partial: true as const } : {}),
    };
    if (frame.done === true) this.texts.delete(frame.ref);
    else this.keep(message);
    this.emit(message);
  }

  private keep(message: Message<string, string>): void {
    this.texts.delete(message.seq);
    this.texts.set(message.seq, message);
    if (this.texts.size > TEXTS_KEPT) this.texts.delete(this.texts.keys().next().value!);
  }

  private emit(message: Message): void {
    for (const key of [message.e, "*"]) {
      for (const handler of this.messages.get(key) ?? []) {
        try {
          handler(message.d, message);
        } catch (err) {
          console.error(`hibercast: a "${key}" message handler threw`, err);
        }
      }
    }
  }
}
