import type { Env } from "./config.js";
import { log } from "./log.js";
import { count } from "./metrics.js";
import type { Cursor, PublishInput, PublishResult } from "./protocol/index.js";
import type { RoomObject } from "./room-object.js";
import { readConnect, type ConnectRequest } from "./room/connect.js";
import type { Push } from "./room/edges.js";
import { msgOut, out } from "./room/outgoing.js";
import type { LoggedMessage, Replay } from "./room/replay-log.js";
import { SocketHost, type Opening } from "./room/socket-host.js";
import type { SocketState } from "./room/sockets.js";
import { ChannelTail } from "./room/tail.js";

/** Frames an edge keeps per channel to serve resumes without asking the hub. */
const TAIL_FRAMES = 512;

/** Where an edge is in a channel, kept in its storage: survives eviction and restarts. */
interface Position {
  seq: number;
  epoch: string;
}
const positionKey = (channel: string) => `position:${channel}`;

/**
 * An edge of a sharded channel: it holds sockets and delivers what the channel's hub (its
 * RoomObject) pushes, each seq to each socket exactly once and in order. Its lifecycle: accept
 * (attach to the hub, or serve from the tail), take the hub's pushes (drop what it has, fetch
 * gaps from the hub's log), forward sockets' publishes to the hub, and leave the hub's list when
 * its last socket goes.
 *
 * Work on a channel is done one step at a time (a promise chain per channel): a push that
 * arrives while a socket is being attached, or while a gap is being fetched, waits its turn, so
 * frames reach sockets in seq order and a new socket's replay is never overtaken.
 */
export class EdgeObject extends SocketHost {
  private readonly tails = new Map<string, ChannelTail>();
  private readonly chains = new Map<string, Promise<unknown>>();

  protected alarmJobs() {
    return { expiry: (now: number) => this.closeExpired(now) };
  }

  private hub(channel: string): DurableObjectStub<RoomObject> {
    return this.env.ROOMS.get(this.env.ROOMS.idFromName(channel));
  }

  /** Runs `step` after every earlier step for this channel. */
  private serial<T>(channel: string, step: () => Promise<T>): Promise<T> {
    const next = (this.chains.get(channel) ?? Promise.resolve()).then(step, step);
    this.chains.set(channel, next.catch(() => {}));
    return next;
  }

  /** The channel's tail: in memory, or rebuilt (empty) from the stored position after eviction. */
  private tailOf(channel: string): ChannelTail | null {
    let tail = this.tails.get(channel) ?? null;
    if (tail === null) {
      const at = this.ctx.storage.kv.get<Position>(positionKey(channel));
      if (at === undefined) return null;
      tail = new ChannelTail(at.epoch, at.seq, TAIL_FRAMES);
      this.tails.set(channel, tail);
    }
    return tail;
  }

  private remember(channel: string, tail: ChannelTail): void {
    this.ctx.storage.kv.put<Position>(positionKey(channel), { seq: tail.lastSeq, epoch: tail.epoch });
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const connect = readConnect(request);
    if (connect === null || connect.edge === undefined) return new Response("not found", { status: 404 });
    return this.serial(connect.channel, () => this.accept(connect, connect.edge!));
  }

  private async accept(connect: ConnectRequest, name: string): Promise<Response> {
    const { channel, start } = connect;
    const config = this.config(channel);
    if (this.sockets.count() >= config.maxSockets) return this.refuseFull(connect);
    let tail = this.tailOf(channel);
    let opening = tail === null ? null : this.fromTail(tail, connect, config.latest);
    if (tail === null || opening === null) {
      // Not attached yet, or the tail does not cover this socket: the hub answers (and lists us).
      const cursor: Cursor | null = tail === null ? null : { seq: tail.lastSeq, epoch: tail.epoch };
      const attached = await this.hub(channel).attachEdge(channel, name, start, cursor);
      if (tail === null) {
        tail = new ChannelTail(attached.epoch, attached.seq, TAIL_FRAMES);
        this.tails.set(channel, tail);
      } else if (attached.catchUp !== null) {
        this.catchUp(channel, tail, attached.catchUp, attached.seq, attached.epoch);
      }
      this.remember(channel, tail);
      opening = attached.opening;
    }
    const { client, state } = this.open(connect, { seq: tail.lastSeq, epoch: tail.epoch }, opening, { edge: name });
    count(this.env, channel, "connect");
    await this.watchExpiry(state);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A new socket's opening served from the tail, or null when the tail cannot serve it exactly. */
  private fromTail(tail: ChannelTail, { start }: ConnectRequest, latest: boolean): Opening | null {
    const now = Date.now();
    if (start.cursor !== null) {
      const replay = tail.since(start.cursor, now);
      return replay.reset ? null : { reset: false, messages: replay.messages };
    }
    const rewind = latest ? Math.max(1, start.rewind) : start.rewind;
    return tail.holdsLast(rewind) ? { reset: false, messages: tail.last(rewind, now) } : null;
  }

  // ---- pushes from the hub -----------------------------------------------------------------

  /** The hub's push: the next messages, or a reset after a purge. Answers the seq now delivered. */
  async receive(channel: string, name: string, push: Push): Promise<number> {
    return this.serial(channel, async () => {
      const tail = this.tailOf(channel);
      if (tail === null) return 0; // no sockets here: the hub drops us from its list on detach
      if ("reset" in push) {
        this.reset(channel, tail, push.reset, push.epoch);
      } else {
        await this.apply(channel, name, tail, push.epoch, push.messages);
      }
      this.remember(channel, tail);
      return tail.lastSeq;
    });
  }

  /** The hub's alarm after a failed push: catch up from its log. */
  async sync(channel: string, name: string): Promise<void> {
    await this.serial(channel, async () => {
      const tail = this.tailOf(channel);
      if (tail === null) return;
      const { seq, epoch, replay } = await this.hub(channel).replayFor(channel, { seq: tail.lastSeq, epoch: tail.epoch });
      this.catchUp(channel, tail, replay, seq, epoch);
      this.remember(channel, tail);
      log("sync", { channel, edge: name, seq: tail.lastSeq });
    });
  }

  /** Delivers messages in seq order: drops what was delivered, fetches a gap from the hub first. */
  private async apply(channel: string, name: string, tail: ChannelTail, epoch: string, messages: LoggedMessage[]): Promise<void> {
    for (const m of messages) {
      if (epoch !== tail.epoch) {
        // A purge this edge did not hear of: reset, and live continues with this message.
        this.reset(channel, tail, m.seq - 1, epoch);
      }
      if (m.seq <= tail.lastSeq) continue;
      if (m.seq > tail.lastSeq + 1) {
        const repaired = await this.hub(channel).replayFor(channel, { seq: tail.lastSeq, epoch: tail.epoch });
        this.catchUp(channel, tail, repaired.replay, m.seq - 1, epoch, m.seq - 1);
        // Whatever the hub could not serve is a reset, never a silent gap.
        if (tail.lastSeq < m.seq - 1) this.reset(channel, tail, m.seq - 1, epoch);
        log("gap", { channel, edge: name, to: m.seq - 1, reset: repaired.replay.reset });
        if (m.seq <= tail.lastSeq) continue;
      }
      this.deliver(channel, tail, m);
    }
  }

  /**
   * Brings the tail to the hub's head from a replay: its messages are delivered (up to `upTo`),
   * or when the log cannot serve the edge's cursor, sockets get `reset` at `seq`.
   */
  private catchUp(channel: string, tail: ChannelTail, replay: Replay, seq: number, epoch: string, upTo = Infinity): void {
    if (replay.reset) return this.reset(channel, tail, Math.min(seq, upTo), epoch);
    for (const m of replay.messages) if (m.seq === tail.lastSeq + 1 && m.seq <= upTo) this.deliver(channel, tail, m);
  }

  private deliver(channel: string, tail: ChannelTail, m: LoggedMessage): void {
    tail.push(m);
    const delivered = this.delivery.toAll(msgOut(channel, m, tail.epoch));
    count(this.env, channel, "delivered", delivered);
  }

  private reset(channel: string, tail: ChannelTail, seq: number, epoch: string): void {
    tail.restart(seq, epoch);
    this.delivery.toAll(out({ t: "reset", seq, epoch }));
  }

  // ---- sockets' publishes, counts, leaving ---------------------------------------------------

  /** A socket's `pub` is recorded by the hub; the ack is sent from here when it answers. */
  protected async publishFor(state: SocketState, input: PublishInput): Promise<PublishResult> {
    return this.hub(state.ch).publishFromEdge(state.ch, input, state.sub);
  }

  /** This edge's sockets of a channel, by transport (the hub sums its edges for stats). */
  async counts(_channel: string): Promise<{ ws: number; sse: number }> {
    return { ws: this.sockets.countOf("ws"), sse: this.sockets.countOf("sse") };
  }

  /** When the last socket of a channel goes, the edge leaves its hub's list and forgets the channel. */
  protected override async afterClose(state: SocketState): Promise<void> {
    const name = state.edge;
    if (name === undefined) return;
    await this.serial(state.ch, async () => {
      if (this.sockets.count() > 0) return;
      await this.hub(state.ch).detachEdge(name);
      this.tails.delete(state.ch);
      this.ctx.storage.kv.delete(positionKey(state.ch));
    });
  }
}
