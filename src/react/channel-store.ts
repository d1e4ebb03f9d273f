// One channel as React reads it: what its subscription delivers (messages, state, members),
// kept as immutable snapshots so `useSyncExternalStore` re-renders only the components whose
// part changed. The store outlives a subscription when a new token brings a refused channel back.
import type { HibercastError } from "../client/errors.js";
import type { Message, Subscription } from "../client/subscription.js";
import type { SubscriptionState } from "../client/state.js";
import type { Member, ResetFrame } from "../protocol/frames.js";

/** What every view of a channel carries. */
export interface ChannelStatus {
  /** The subscription's state (`subscribing`, `subscribed`, `unsubscribed`). */
  state: SubscriptionState;
  /** Why it ended, or the last error reported for it; cleared once subscribed again. */
  error: HibercastError | null;
  /** The last `reset`: the log could not cover an outage, so refetch what was derived from messages. */
  reset: ResetFrame | null;
}

export interface ChannelView extends ChannelStatus {
  /** The latest messages, oldest first; a growing message once, in its place, with its whole text so far. */
  messages: readonly Message[];
}

export interface PresenceView extends ChannelStatus {
  members: readonly Member[];
  /** All members, also beyond those listed (past `PRESENCE_MAX_MEMBERS`). */
  count: number;
}

/** One user of the store: a hook, with what it wants kept and told. */
export interface Watcher {
  /** How many of the latest messages it reads (0: none). */
  keep: number;
  /** Something it may read changed. */
  onChange: () => void;
  /** Every message as it arrives (and again after each append to it). */
  onMessage?: (message: Message) => void;
}

const NONE: readonly never[] = Object.freeze([]);

/** Before a channel is watched (the first render): nothing yet, on its way to subscribing. */
export const INITIAL_STATUS: ChannelView = Object.freeze({ state: "subscribing", error: null, reset: null, messages: NONE });
export const INITIAL_PRESENCE: PresenceView = Object.freeze({ ...INITIAL_STATUS, members: NONE, count: 0 });

/** Messages kept by id for `useMessage`, past the lists' limits (oldest dropped): as many as the SDK keeps texts of. */
const KEPT_BY_ID = 1000;

export class ChannelStore {
  /** Status and the kept messages: for lists. */
  channel: ChannelView = INITIAL_STATUS;
  /** Status alone: for hooks that keep no list, so a message does not re-render them. */
  status: ChannelView = INITIAL_STATUS;
  presence: PresenceView = INITIAL_PRESENCE;

  private readonly watchers = new Set<Watcher>();
  private readonly byId = new Map<string, Message>();
  private keep = 0;
  private current: Subscription;
  private detach: () => void;

  constructor(subscription: Subscription) {
    this.current = subscription;
    this.detach = this.attach(subscription);
  }

  get subscription(): Subscription {
    return this.current;
  }

  get watched(): boolean {
    return this.watchers.size > 0;
  }

  /** The latest version of message `id`, if it came while this store was watched (and is among the last KEPT_BY_ID). */
  message(id: string): Message | undefined {
    return this.byId.get(id);
  }

  watch(watcher: Watcher): () => void {
    this.watchers.add(watcher);
    this.keep = Math.max(this.keep, watcher.keep);
    return () => {
      if (!this.watchers.delete(watcher)) return;
      // Kept no longer than the remaining watchers read; trimmed with the next message.
      this.keep = Math.max(0, ...[...this.watchers].map((w) => w.keep));
    };
  }

  /** Carries on with a new subscription to the same channel (the old one ended): what was kept stays. */
  replace(subscription: Subscription): void {
    this.detach();
    this.current = subscription;
    this.detach = this.attach(subscription);
  }

  close(): void {
    this.detach();
    this.current.close();
    this.watchers.clear();
  }

  private attach(sub: Subscription): () => void {
    const offs = [
      sub.on("*", (_data, message) => this.take(message)),
      sub.connection.on("state", ({ newState, error }) => this.setStatus({ state: newState, error: error ?? (newState === "subscribed" ? null : this.status.error) })),
      sub.connection.on("error", (error) => this.setStatus({ error })),
      sub.connection.on("reset", (reset) => this.setStatus({ reset })),
      sub.presence.on("members", () => this.setMembers()),
      sub.presence.on("join", () => this.setMembers()),
      sub.presence.on("leave", () => this.setMembers()),
    ];
    // A subscription already under way (a shared one) may be past its first state.
    if (sub.subscriptionState !== this.status.state) this.setStatus({ state: sub.subscriptionState });
    return () => offs.forEach((off) => off());
  }

  private take(message: Message): void {
    this.byId.delete(message.id);
    this.byId.set(message.id, message);
    if (this.byId.size > KEPT_BY_ID) this.byId.delete(this.byId.keys().next().value!);
    if (this.keep > 0 || this.channel.messages.length > 0) this.channel = { ...this.channel, messages: this.withMessage(this.channel.messages, message) };
    this.notify();
    for (const w of [...this.watchers]) w.onMessage?.(message);
  }

  /** The list with `message` in it: in place of its earlier version when it grew, else at the end; at most `keep` long. */
  private withMessage(list: readonly Message[], message: Message): readonly Message[] {
    if (this.keep === 0) return NONE;
    let next: Message[] | null = null;
    if (message.v !== undefined) {
      // A growing message is usually among the last few: search from the end.
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i]!.seq === message.seq) {
          next = [...list];
          next[i] = message;
          break;
        }
      }
    }
    next ??= [...list, message];
    return next.length > this.keep ? next.slice(next.length - this.keep) : next;
  }

  private setStatus(change: Partial<ChannelStatus>): void {
    const status = { state: this.status.state, error: this.status.error, reset: this.status.reset, ...change };
    this.status = { ...status, messages: NONE };
    this.channel = { ...status, messages: this.channel.messages };
    this.presence = { ...status, members: this.presence.members, count: this.presence.count };
    this.notify();
  }

  private setMembers(): void {
    const sub = this.current;
    this.presence = { ...this.presence, members: [...sub.members.values()], count: sub.memberCount };
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.watchers]) w.onChange();
  }
}
