// The hub's side of edges (DESIGN.md "Edges"): which edges hold sockets of this channel (kept
// in the hub's SQLite, so a hub restart loses none), and pushing them every frame after it is
// appended, frames in seq order. An idle edge is pushed at the end of the publish's own turn; an
// edge with a push still in flight gets what came meanwhile in one push when that one settles,
// so pushes batch as the edge's pace says, with no timer. A push that fails marks the edges
// behind in storage and the alarm tells them to catch up from the log; edges drop seqs they
// already have and fetch gaps themselves, so a lost push never becomes a lost message.
import type { Env } from "../env.js";
import { errorText, log } from "../server/log.js";
import type { Member } from "../protocol/index.js";
import { edgeStub, NOT_HERE, REPAIR_PAGE, type LoggedMessage, type Push, type Pushed } from "../rpc.js";
import { EDGES_BEHIND_KEY, hasTable, TABLES } from "../schema.js";

const RETRY_MS = 1000;
/**
 * Messages held at most for one edge while a push to it is in flight. An edge slower than its
 * hub would otherwise hold them in the hub without bound; past this (or HELD_MAX_BYTES) it is
 * told to catch up from the log when its push settles (it fetches what it missed in pages).
 */
export const HELD_MAX = 256;
/** Bytes of message data held at most for one edge (as much as one page of its catch-up). */
export const HELD_MAX_BYTES = REPAIR_PAGE.bytes;

interface Held {
  channel: string;
  epoch: string;
  messages: Pushed[];
  bytes: number;
}

const bytesOf = (messages: Pushed[]) => messages.reduce((n, m) => n + m.data.length, 0);

export class EdgeLinks {
  /** Edge names, read once per wake; null until then. */
  private known: Set<string> | null = null;
  private queue: Pushed[] = [];
  private queued: { channel: string; epoch: string } | null = null;
  /** Calls in flight, by edge; messages held for an edge until its call settles; edges that held too many (they catch up). */
  private readonly inFlight = new Map<string, number>();
  private readonly held = new Map<string, Held>();
  private readonly lagging = new Set<string>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    private readonly wakeBy: (at: number) => Promise<void>,
    /** An edge answered that it holds none of the channel's subscribers. */
    private readonly notHere: (name: string) => void,
  ) {}

  private list(): Set<string> {
    if (this.known === null) {
      const sql = this.ctx.storage.sql;
      const exists = hasTable(sql, "edges");
      this.known = new Set(exists ? sql.exec<{ name: string }>("SELECT name FROM edges").toArray().map((r) => r.name) : []);
    }
    return this.known;
  }

  get count(): number {
    return this.list().size;
  }

  names(): string[] {
    return [...this.list()];
  }

  add(name: string): void {
    const names = this.list();
    if (names.has(name)) return;
    this.ctx.storage.sql.exec(TABLES.edges);
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO edges (name) VALUES (?)", name);
    names.add(name);
  }

  /** The edges table was dropped (nothing listed, see RoomObject.forgetIfUnused). */
  forgetTable(): void {
    this.known = new Set();
    this.ctx.storage.kv.delete(EDGES_BEHIND_KEY);
  }

  remove(name: string): void {
    const names = this.list();
    if (!names.delete(name)) return;
    this.held.delete(name);
    this.lagging.delete(name);
    this.ctx.storage.sql.exec("DELETE FROM edges WHERE name = ?", name);
  }

  /**
   * Queues a message for every edge (its `skip` comes with it). The queue goes out when this turn
   * ends (the messages of one call in one push), not on a timer: a timer would wait behind
   * whatever else the object has to do.
   */
  push(channel: string, epoch: string, m: LoggedMessage): void {
    if (this.list().size === 0) return;
    if (this.queued !== null && this.queued.epoch !== epoch) this.flush();
    this.queue.push(m);
    if (this.queued === null) {
      this.queued = { channel, epoch };
      queueMicrotask(() => this.flush());
    }
  }

  /** Sends what is queued now (before a reset, so edges see frames in order). */
  flush(): void {
    if (this.queued === null) return;
    const { channel, epoch } = this.queued;
    const messages = this.queue;
    this.queue = [];
    this.queued = null;
    if (messages.length > 0) this.send(channel, { epoch, messages });
  }

  /** A presence change: every edge tells its connections on the channel (but `except`). */
  presence(channel: string, epoch: string, t: "join" | "leave", member: Member, except: string | null): void {
    this.flush();
    if (this.list().size > 0) this.send(channel, { epoch, presence: { t, member, except } });
  }

  /** The channel's subscriber count: every edge tells its connections (Pusher's subscription_count). */
  subscriptionCount(channel: string, epoch: string, count: number): void {
    this.flush();
    if (this.list().size > 0) this.send(channel, { epoch, count });
  }

  /** A purge: every edge sends `reset` to its sockets. */
  reset(channel: string, seq: number, epoch: string): void {
    this.flush();
    if (this.list().size > 0) this.send(channel, { epoch, reset: seq });
  }

  private send(channel: string, push: Push): void {
    for (const name of this.list()) {
      if ("messages" in push && this.inFlight.has(name)) this.hold(name, channel, push.epoch, push.messages);
      else {
        // Whatever is held for the edge goes before a presence change, a count or a reset.
        this.release(name);
        this.call(name, channel, () => edgeStub(this.env, name).receive(channel, push));
      }
    }
  }

  /** Messages for an edge with a push in flight: they go in one push when it settles. */
  private hold(name: string, channel: string, epoch: string, messages: Pushed[]): void {
    if (this.lagging.has(name)) return; // it catches up from the log when its push settles
    const held = this.held.get(name);
    const bytes = bytesOf(messages);
    if (held === undefined && messages.length <= HELD_MAX && bytes <= HELD_MAX_BYTES) this.held.set(name, { channel, epoch, messages: [...messages], bytes });
    else if (held !== undefined && held.epoch === epoch && held.messages.length + messages.length <= HELD_MAX && held.bytes + bytes <= HELD_MAX_BYTES) {
      held.messages.push(...messages);
      held.bytes += bytes;
    } else {
      // Too many, too big, or a new epoch: the log has them all.
      this.held.delete(name);
      this.lagging.add(name);
    }
  }

  /** Sends what is held for an edge now. */
  private release(name: string): void {
    const held = this.held.get(name);
    if (held === undefined) return;
    this.held.delete(name);
    this.call(name, held.channel, () => edgeStub(this.env, name).receive(held.channel, { epoch: held.epoch, messages: held.messages }));
  }

  /**
   * One call to an edge. Not awaited by the publish: the hub answers once the message is in its
   * log (an outbound call keeps the hub in memory until it settles). When the edge has no call
   * left in flight, what was held for it goes, or, if it held too many, it is told to catch up.
   */
  private call(name: string, channel: string, rpc: () => Promise<number | void>): void {
    this.inFlight.set(name, (this.inFlight.get(name) ?? 0) + 1);
    rpc()
      .then((seq) => seq === NOT_HERE && this.notHere(name))
      .catch((err: unknown) => this.behind(name, err))
      .finally(() => {
        const left = this.inFlight.get(name)! - 1;
        if (left > 0) return void this.inFlight.set(name, left);
        this.inFlight.delete(name);
        if (!this.list().has(name)) return;
        if (this.lagging.delete(name)) this.call(name, channel, () => edgeStub(this.env, name).sync(channel));
        else this.release(name);
      });
  }

  /**
   * A push failed: remember it in storage (once: while edges keep failing, a publish still writes
   * no more than its own rows), and let the alarm tell the edges to catch up.
   */
  private behind(name: string, err: unknown): void {
    log("error", { where: "push to edge", edge: name, error: errorText(err) });
    const kv = this.ctx.storage.kv;
    if (kv.get(EDGES_BEHIND_KEY) !== true) kv.put(EDGES_BEHIND_KEY, true);
    void this.wakeBy(Date.now() + RETRY_MS);
  }

  /** The alarm's job: tell every edge to catch up from the log, until all have answered. */
  async retry(channel: string): Promise<number | null> {
    if (this.ctx.storage.kv.get(EDGES_BEHIND_KEY) !== true) return null;
    const results = await Promise.allSettled(this.names().map((name) => edgeStub(this.env, name).sync(channel)));
    if (results.every((r) => r.status === "fulfilled")) {
      this.ctx.storage.kv.delete(EDGES_BEHIND_KEY);
      return null;
    }
    return Date.now() + RETRY_MS * 5;
  }
}
