// An edge's side of a channel (DESIGN.md "Edges"): it holds some of the channel's subscribers
// and delivers what the channel's hub pushes, each seq to each subscriber exactly once and in
// order, whatever dialect they speak. Its lifecycle per channel: attach (serve a new subscriber
// from the tail, or from the hub, which lists this edge), take the hub's pushes (drop what it
// has, fetch gaps from the hub's log), and leave the hub's list when its last subscriber goes.
import { countsSubscriptions } from "../pusher/app.js";
import { log } from "../server/log.js";
import { count } from "../server/metrics.js";
import type { Cursor } from "../protocol/index.js";
import { cutToPage, hubStub, NOT_HERE, type LoggedMessage, type Opening, type Push, type Pushed, type Replay, type Start } from "../rpc.js";
import { firstPage, PAGE_READ, type Page } from "../connections/replay-pages.js";
import type { ChannelEvent } from "../connections/dialects/dialect.js";
import { rewindOf } from "../connections/connect.js";
import type { Env } from "../env.js";
import type { ChannelConfig } from "../settings/config.js";
import { Serial } from "./serial.js";
import { ChannelTail } from "./tail.js";
import { positionKey } from "../schema.js";

/** Frames an edge keeps per channel to serve resumes without asking the hub. */
const TAIL_FRAMES = 512;
/** Bytes of frames kept per channel, and per edge over all its channels (DESIGN v1.3). */
const TAIL_BYTES = 1024 * 1024;
const EDGE_TAIL_BYTES = 32 * 1024 * 1024;

/** Where an edge is in a channel, kept in its storage: survives eviction and restarts. */
interface Position {
  seq: number;
  epoch: string;
}

/** What the edge object lends its channels: who it is, and its subscribers in every dialect. */
export interface EdgeSide {
  readonly runtime: DurableObjectState;
  readonly bindings: Env;
  readonly name: string;
  config(channel: string): ChannelConfig;
  /** One event to every subscriber of its channel here, in each one's dialect, but connection `skip`. */
  fanOut(event: ChannelEvent, skip: string | null): number;
  /** Subscribers of a channel here, over every dialect. */
  subscribersOf(channel: string): number;
  /** The edge no longer serves a channel: its dialects drop what they keep for it. */
  dropChannel(channel: string): void;
}

export class ChannelEdge {
  private readonly tails = new Map<string, ChannelTail>();
  private readonly serial = new Serial();

  constructor(private readonly edge: EdgeSide) {}

  /** This edge's name, as its hubs list it. */
  get edgeName(): string {
    return this.edge.name;
  }

  hub(channel: string) {
    return hubStub(this.edge.bindings, channel);
  }

  /** Runs `step` after every earlier step for this channel. */
  inTurn<T>(channel: string, step: () => Promise<T>): Promise<T> {
    return this.serial.run(channel, step);
  }

  private get kv(): SyncKvStorage {
    return this.edge.runtime.storage.kv;
  }

  /** The channel's tail: in memory, or rebuilt (empty) from the stored position after eviction. */
  private tailOf(channel: string): ChannelTail | null {
    let tail = this.tails.get(channel) ?? null;
    if (tail === null) {
      const at = this.kv.get<Position>(positionKey(channel));
      if (at === undefined) return null;
      tail = this.newTail(channel, at.epoch, at.seq);
      this.tails.set(channel, tail);
    }
    return tail;
  }

  /** A channel's tail, with its share of the edge's byte budget (fewer channels, more each). */
  private newTail(channel: string, epoch: string, seq: number): ChannelTail {
    const bytes = () => Math.min(TAIL_BYTES, EDGE_TAIL_BYTES / Math.max(1, this.tails.size));
    return new ChannelTail(epoch, seq, TAIL_FRAMES, bytes, () => this.edge.config(channel).logMaxAgeS);
  }

  private remember(channel: string, tail: ChannelTail): void {
    this.kv.put<Position>(positionKey(channel), { seq: tail.lastSeq, epoch: tail.epoch });
  }

  /**
   * Gets the channel ready for a new subscriber: its tail when that covers the subscriber, else
   * the hub answers (and lists this edge), and the edge first catches up what it missed. Run it
   * inside the channel's turn; the caller sends the opening with no await after this.
   */
  async attach(channel: string, start: Start): Promise<{ head: { seq: number; epoch: string }; opening: Opening }> {
    this.counted(channel);
    let tail = this.tailOf(channel);
    const opening = tail === null ? null : this.fromTail(tail, start, this.edge.config(channel).latest);
    if (tail !== null && opening !== null) return { head: { seq: tail.lastSeq, epoch: tail.epoch }, opening };
    const cursor: Cursor | null = tail === null ? null : { seq: tail.lastSeq, epoch: tail.epoch };
    const attached = await this.hub(channel).attachEdge(this.edge.name, start, cursor);
    if (tail === null) {
      tail = this.newTail(channel, attached.epoch, attached.seq);
      this.tails.set(channel, tail);
    } else if (attached.catchUp !== null) {
      // The hub sends a page of what this edge missed; the rest a page per call.
      this.catchUp(channel, tail, attached.catchUp, attached.seq, attached.epoch);
      if (!attached.catchUp.reset && tail.lastSeq < attached.seq) await this.repair(channel, tail, attached.seq);
    }
    this.remember(channel, tail);
    return { head: { seq: tail.lastSeq, epoch: tail.epoch }, opening: attached.opening };
  }

  /** A new subscriber's opening (its first page) served from the tail, or null when the tail cannot serve it exactly. */
  private fromTail(tail: ChannelTail, start: Start, latest: boolean): Opening | null {
    const now = Date.now();
    if (start.cursor !== null) {
      const replay = tail.since(start.cursor, now, PAGE_READ);
      return replay.reset ? null : firstPage(replay.messages);
    }
    const rewind = rewindOf(start, latest);
    return tail.holdsLast(rewind, now) ? firstPage(tail.last(rewind, now)) : null;
  }

  /**
   * A long replay's next page for a subscriber here (ReplayPages; run in the channel's turn):
   * from the tail when it covers `after`, else from the hub's log, never past what this edge
   * has delivered, so the subscriber is live from where the page ends.
   */
  async page(channel: string, after: number, epoch: string): Promise<Page> {
    const tail = this.tailOf(channel);
    if (tail === null) return { reset: false, messages: [], more: false }; // the channel left this edge: nothing to send
    const reset = { reset: true as const, seq: tail.lastSeq, epoch: tail.epoch };
    if (epoch !== tail.epoch || after > tail.lastSeq) return reset;
    if (after === tail.lastSeq) return { reset: false, messages: [], more: false };
    const fromTail = tail.since({ seq: after, epoch }, Date.now(), PAGE_READ);
    let messages: LoggedMessage[];
    if (!fromTail.reset) messages = fromTail.messages;
    else {
      const { replay } = await this.hub(channel).replayFor({ seq: after, epoch });
      if (replay.reset) return reset;
      messages = replay.messages.filter((m) => m.seq <= tail.lastSeq);
    }
    // Whatever cannot be served is a reset, never a silent gap.
    if (messages.length === 0 || messages[0]!.seq !== after + 1) return reset;
    const cut = cutToPage(messages);
    return { reset: false, messages, more: cut || messages.at(-1)!.seq < tail.lastSeq };
  }

  // ---- pushes from the hub -----------------------------------------------------------------

  /** The hub's push: the next messages, a reset after a purge, or a presence change. Answers the seq now delivered. */
  receive(channel: string, push: Push): Promise<number> {
    return this.inTurn(channel, async () => {
      const tail = this.tailOf(channel);
      // No subscribers here (gone without close events, as after a reset): not here, so the hub
      // drops this edge, and this edge forgets the channel instead of rewriting its position.
      if (tail === null || this.edge.subscribersOf(channel) === 0) {
        this.forget(channel);
        return NOT_HERE;
      }
      if ("reset" in push) {
        this.reset(channel, tail, push.reset, push.epoch);
      } else if ("presence" in push) {
        const { t, member, except } = push.presence;
        this.edge.fanOut({ t, ch: channel, member }, except);
      } else if ("count" in push) {
        this.edge.fanOut({ t: "count", ch: channel, count: push.count }, null);
      } else {
        await this.apply(channel, tail, push.epoch, push.messages);
      }
      this.remember(channel, tail);
      return tail.lastSeq;
    });
  }

  /** The hub's alarm after a failed push, or its reconciliation when this edge is behind `head`: catch up from its log. */
  async sync(channel: string, head?: { seq: number; epoch: string }): Promise<void> {
    await this.inTurn(channel, async () => {
      const tail = this.tailOf(channel);
      if (tail === null || (head !== undefined && tail.epoch === head.epoch && tail.lastSeq >= head.seq)) return;
      await this.repair(channel, tail, Infinity);
      this.remember(channel, tail);
      log("sync", { channel, edge: this.edge.name, seq: tail.lastSeq });
    });
  }

  /** Delivers messages in seq order: drops what was delivered, fetches a gap from the hub first. */
  private async apply(channel: string, tail: ChannelTail, epoch: string, messages: Pushed[]): Promise<void> {
    for (const m of messages) {
      // Seqs are never reused, across purges too: one at or before the tail's is old news, even
      // in another epoch (a push from before a purge that the purge's reset overtook).
      if (m.seq <= tail.lastSeq) continue;
      if (epoch !== tail.epoch) {
        // A purge this edge did not hear of: reset, and live continues with this message.
        this.reset(channel, tail, m.seq - 1, epoch);
      }
      if (m.seq > tail.lastSeq + 1) {
        const reset = await this.repair(channel, tail, m.seq - 1);
        // Whatever the hub could not serve is a reset, never a silent gap.
        if (tail.lastSeq < m.seq - 1) this.reset(channel, tail, m.seq - 1, epoch);
        log("gap", { channel, edge: this.edge.name, to: m.seq - 1, reset });
        if (m.seq <= tail.lastSeq) continue;
      }
      this.deliver(channel, tail, m, m.skip ?? null);
    }
  }

  /**
   * Fetches what the tail misses from the hub's log, a page per call, until it reaches `upTo`
   * (or the hub's head, whichever is first); answers whether the log could not serve it (reset).
   */
  private async repair(channel: string, tail: ChannelTail, upTo: number): Promise<boolean> {
    for (;;) {
      const before = tail.lastSeq;
      const { seq, epoch, replay } = await this.hub(channel).replayFor({ seq: tail.lastSeq, epoch: tail.epoch });
      this.catchUp(channel, tail, replay, seq, epoch, upTo);
      if (replay.reset) return true;
      if (tail.lastSeq >= Math.min(upTo, seq) || tail.lastSeq === before) return false;
    }
  }

  /**
   * Brings the tail to the hub's head from a replay: its messages are delivered (up to `upTo`),
   * or when the log cannot serve the edge's cursor, subscribers get `reset` at `seq`.
   */
  private catchUp(channel: string, tail: ChannelTail, replay: Replay, seq: number, epoch: string, upTo = Infinity): void {
    if (replay.reset) return this.reset(channel, tail, Math.min(seq, upTo), epoch);
    // The log kept whom each message skips: repair and catch-up skip them too.
    for (const m of replay.messages) if (m.seq === tail.lastSeq + 1 && m.seq <= upTo) this.deliver(channel, tail, m, m.skip ?? null);
  }

  private deliver(channel: string, tail: ChannelTail, m: LoggedMessage, skip: string | null = null): void {
    tail.push(m);
    const delivered = this.edge.fanOut({ t: "msg", ch: channel, epoch: tail.epoch, m }, skip);
    count(this.edge.bindings, channel, "delivered", delivered);
  }

  private reset(channel: string, tail: ChannelTail, seq: number, epoch: string): void {
    tail.restart(seq, epoch);
    this.edge.fanOut({ t: "reset", ch: channel, seq, epoch }, null);
  }

  // ---- leaving -------------------------------------------------------------------------------

  /** A subscriber of `channel` went: it leaves the channel's presence, and the edge maybe the hub's list. */
  left(channel: string, cid: string, member: boolean): Promise<void> {
    this.counted(channel);
    const leaving = member ? this.inTurn(channel, () => this.hub(channel).presenceLeave(cid)) : Promise.resolve();
    return Promise.all([leaving, this.leaveIfIdle(channel)]).then(() => {});
  }

  /** When the last subscriber of a channel goes, the edge leaves its hub's list and forgets the channel. */
  private leaveIfIdle(channel: string): Promise<void> {
    return this.inTurn(channel, async () => {
      // tailOf, not the in-memory map: an edge woken from eviction must leave its hub's list too.
      if (this.edge.subscribersOf(channel) > 0 || this.tailOf(channel) === null) return;
      await this.hub(channel).detachEdge(this.edge.name);
      this.forget(channel);
    });
  }

  /**
   * Its subscribers here change: the hub counts again soon, where the app counts subscriptions
   * (PUSHER_SUBSCRIPTION_COUNT). Internal channels count for no one.
   */
  private counted(channel: string): void {
    if (!countsSubscriptions(this.edge.bindings, channel)) return;
    void this.hub(channel).subscriptionsChanged().catch(() => {});
  }

  private forget(channel: string): void {
    this.tails.delete(channel);
    this.edge.dropChannel(channel);
    this.kv.delete(positionKey(channel));
  }
}
