import { configFor, optionsInForce, type ChannelConfig, type Env } from "./config.js";
import { directory } from "./directory-object.js";
import { pusherApp } from "./pusher/app.js";
import { pusherData } from "./pusher/frames.js";
import { Occupancy } from "./room/occupancy.js";
import { Webhooks, webhookTarget, type WebhookEvent } from "./room/webhooks.js";
import { log } from "./log.js";
import { count } from "./metrics.js";
import type { Cursor, Member, PublishInput, PublishResult } from "./protocol/index.js";
import { readConnect, rewindOf, type Start } from "./room/connect.js";
import { EdgeLinks, edgeStub } from "./room/edges.js";
import { historyBody, type HistoryQuery } from "./room/history.js";
import { msgOut, out } from "./room/outgoing.js";
import { Presence, PRESENCE_SWEEP_MS, PRESENCE_TIMEOUT_MS, RemoteMembers } from "./room/presence.js";
import { ReplayLog, type LoggedMessage, type Replay, type Retention } from "./room/replay-log.js";
import { SocketHost, type Opening } from "./room/socket-host.js";
import { isPresenceChannel, stateOf, type SocketState, type Transport } from "./room/sockets.js";
import { CLOSE } from "./protocol/index.js";

export interface RoomStats {
  channel: string;
  subscribers: number;
  transports: Record<Transport, number>;
  presence: number | null;
  publishes: number;
  seq: number;
  epoch: string;
  log: { count: number; oldestSeq: number | null };
  /** The options in force for this channel (global vars, and the CHANNEL_OPTIONS rule that matched). */
  options: ReturnType<typeof optionsInForce>;
  /** Sharded channels: the edges that hold its sockets (summed into subscribers). */
  edges?: number;
}

/** What an edge gets when it attaches: the channel's head, its new socket's opening, and what it missed. */
export interface Attached {
  seq: number;
  epoch: string;
  opening: Opening;
  /** Messages after the edge's own cursor, for its other sockets (null: it had none). */
  catchUp: Replay | null;
}

export { PRESENCE_TIMEOUT_MS } from "./room/presence.js";

/** A change of occupancy the directory has not confirmed yet (Pusher's channel list). */
const DIRECTORY_DUE = "directory-due";
interface DirectoryChange {
  channel: string;
  occupied: boolean;
}

const retentionOf = (c: ChannelConfig): Retention => ({
  maxMessages: c.logMaxMessages,
  maxAgeS: c.logMaxAgeS,
  dedupeWindowS: c.dedupeWindowS,
});

/**
 * One room per channel: the channel's hub (log, seq, epoch, dedupe, presence, the list of its
 * edges) and the edge for its own sockets. Reads top to bottom as its lifecycle: accept a socket
 * (welcome, then replay), let it go, publish (record, then deliver here and push to edges),
 * serve its edges, answer reads, and run the alarm's jobs (retention, token expiry, presence
 * liveness, edges that fell behind).
 *
 * Nothing that must survive hibernation lives in memory: sockets and their state are held by
 * the runtime (tags + attachments), the log and the edge list by SQLite; fields here are caches.
 */
export class RoomObject extends SocketHost {
  private readonly log: ReplayLog;
  private readonly presence: Presence;
  private readonly edges: EdgeLinks;
  private readonly occupancy: Occupancy;
  private readonly webhooks: Webhooks;
  /** The channel whose options the log's retention follows (a room serves one channel). */
  private retentionChannel = "";

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.log = new ReplayLog(ctx.storage.sql, retentionOf(configFor(env, "")));
    this.config(this.log.channelName);
    this.presence = new Presence(this.sockets, new RemoteMembers(ctx.storage.sql));
    this.edges = new EdgeLinks(ctx, env, (at) => this.alarms.by(at));
    this.webhooks = new Webhooks(ctx.storage, env);
    this.occupancy = new Occupancy(ctx.storage, (channel, occupied, now) => this.occupancyChanged(channel, occupied, now));
    if (!this.log.hasStoredEpoch) this.recallEpoch();
  }

  /** The channel's settings; the first call with the channel's name also sets the log's retention. */
  protected override config(channel: string): ChannelConfig {
    const config = super.config(channel);
    if (channel !== "" && this.retentionChannel !== channel) {
      this.retentionChannel = channel;
      this.log.retention = retentionOf(config);
    }
    return config;
  }

  protected alarmJobs() {
    return {
      trim: (now: number) => this.log.trim(now),
      expiry: (now: number) => this.closeExpired(now),
      presence: (now: number) => this.sweepPresence(now),
      edges: () => this.edges.retry(this.log.channelName),
      occupancy: (now: number) => this.checkOccupancy(now),
      directory: () => this.tellDirectory(),
      webhooks: (now: number) => this.webhooks.deliver(now),
    };
  }

  /**
   * A room without a stored epoch that wakes with sockets still connected takes back the epoch
   * they were welcomed with (from any one of them: all sockets accepted before the first
   * publish carry it), so the first publish stores what those clients already hold.
   */
  private recallEpoch(): void {
    for (const ws of this.sockets.all()) {
      const ep = stateOf(ws)?.ep;
      if (ep !== undefined) return this.log.adoptEpoch(ep);
    }
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const connect = readConnect(request);
    if (connect === null) return new Response("not found", { status: 404 });
    const { channel, start } = connect;
    if (this.sockets.count() >= this.config(channel).maxSockets) return this.refuseFull(connect);

    const extra: Partial<SocketState> = this.log.hasStoredEpoch ? {} : { ep: this.log.epoch };
    const { client, server, state } = this.open(connect, { seq: this.log.lastSeq, epoch: this.log.epoch }, this.opening(channel, start, null), extra);
    if (this.tracksOccupancy(channel)) this.occupancy.arrived(channel, Date.now());
    const member = this.sockets.isMember(state);
    if (member) this.announceJoin(server, state);
    count(this.env, channel, "connect");

    await this.watchExpiry(state);
    if (member) await this.alarms.by(Date.now() + PRESENCE_SWEEP_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** What a new subscriber gets after its welcome: a resume's missed messages, a rewind, or a reset. */
  private opening(channel: string, start: Start, limit: number | null): Opening {
    const now = Date.now();
    if (start.cursor !== null) {
      const replay = this.log.since(start.cursor, now, limit ?? -1);
      return replay.reset ? { reset: true } : { reset: false, messages: replay.messages };
    }
    const rewind = rewindOf(start, this.config(channel).latest);
    return { reset: false, messages: rewind > 0 ? this.log.last(rewind, now) : [] };
  }

  private announceJoin(ws: WebSocket, state: SocketState): void {
    const max = this.config(state.ch).presenceMaxMembers;
    const joined = this.presence.join(ws, state);
    if (joined !== null) this.webhook({ name: "member_added", channel: state.ch, user_id: joined.id });
    const list = this.presence.list(max);
    this.delivery.to(ws, state, out({ t: "members", ...list }));
    // Beyond PRESENCE_MAX_MEMBERS, counts only: no join/leave storm to every socket.
    if (joined !== null && list.count <= max) this.announce(state.ch, "join", joined, ws, null);
  }

  /** A join or leave, to this room's own sockets and to every edge's connections on the channel. */
  private announce(channel: string, t: "join" | "leave", member: Member, exceptWs: WebSocket | null, exceptCid: string | null): void {
    this.delivery.toAll(out({ t, member }), exceptWs);
    this.edges.presence(channel, this.log.epoch, t, member, exceptCid);
  }

  /**
   * A multiplexed connection on an edge joins a presence channel: it counts as a member like a
   * socket of this room. Answers the member list for it, or null when a new member would go over
   * `cap` (Pusher's 100 members a channel).
   */
  async presenceJoin(channel: string, edge: string, cid: string, sub: string, info: string | null, cap: number | null = null): Promise<{ members: Member[]; count: number } | null> {
    if (cap !== null && !this.presence.has(sub) && this.presence.count() >= cap) return null;
    const max = this.config(channel).presenceMaxMembers;
    const joined = this.presence.joinRemote(cid, edge, sub, info);
    if (joined !== null) this.webhook({ name: "member_added", channel, user_id: joined.id });
    const list = this.presence.list(max);
    if (joined !== null && list.count <= max) this.announce(channel, "join", joined, null, cid);
    return list;
  }

  async presenceLeave(channel: string, cid: string): Promise<void> {
    const left = this.presence.leaveRemote(cid);
    if (left !== null) this.webhook({ name: "member_removed", channel, user_id: left.id });
    if (left !== null && this.presence.count() < this.config(channel).presenceMaxMembers) this.announce(channel, "leave", left, null, cid);
  }

  // ---- close -------------------------------------------------------------------------------

  protected override async afterClose(): Promise<void> {
    await this.mayBeEmpty();
  }

  protected override gone(ws: WebSocket, state: SocketState): void {
    if (!isPresenceChannel(state.ch)) return;
    const left = this.presence.leave(ws, state);
    if (left !== null) this.webhook({ name: "member_removed", channel: state.ch, user_id: left.id });
    if (left !== null && this.presence.count() < this.config(state.ch).presenceMaxMembers) {
      this.announce(state.ch, "leave", left, ws, null);
    }
  }

  // ---- publish: record, then deliver -------------------------------------------------------

  /** Publish from the Worker (HTTP, or Pusher's HTTP API). The input is already validated there. */
  async publish(channel: string, input: PublishInput, sender: string | null, exclude: string | null): Promise<PublishResult> {
    return this.record(channel, input, sender, exclude, false);
  }

  /** Several messages to this channel, in order (batch publish: one room call per channel). */
  async publishMany(channel: string, inputs: PublishInput[], sender: string | null): Promise<PublishResult[]> {
    this.config(channel);
    const results = inputs.map((input) => this.publishNow(channel, input, sender, null));
    await this.alarms.ifNone("trim");
    return results;
  }

  /** A socket's `pub` to this room: a client publish (webhook `client_event`). */
  protected async publishFor(channel: string, sender: string | null, input: PublishInput): Promise<PublishResult> {
    return this.record(channel, input, sender, null, true);
  }

  /**
   * A socket `pub` an edge forwarded (the edge sends the ack), or a Pusher client event, which
   * its sender does not get back (`exclude`, its socket id).
   */
  async publishFromEdge(channel: string, input: PublishInput, sender: string | null, exclude: string | null = null): Promise<PublishResult> {
    return this.record(channel, input, sender, exclude, true);
  }

  /** One publish; a client's is told to the webhook in the same step as its log row. */
  private async record(channel: string, input: PublishInput, sender: string | null, exclude: string | null, byClient: boolean): Promise<PublishResult> {
    this.config(channel);
    const result = this.publishNow(channel, input, sender, exclude);
    if (byClient && !result.duplicate) {
      const who = { ...(sender === null ? {} : { user_id: sender }), ...(exclude === null ? {} : { socket_id: exclude }) };
      this.webhook({ name: "client_event", channel, event: input.event, data: pusherData(input.data), ...who });
    }
    await this.alarms.ifNone("trim");
    return result;
  }

  /**
   * Record, then deliver, with no await between: no subscriber can be accepted between the log
   * write and the send (it would get the message twice or not at all). The runtime's output
   * gate holds both the sends and the answer until the row is durable.
   */
  private publishNow(channel: string, input: PublishInput, sender: string | null, exclude: string | null): PublishResult {
    const recorded = this.log.record(channel, input, sender, Date.now());
    if (recorded.duplicate) {
      log("publish", { channel, seq: recorded.seq, duplicate: true });
      return { seq: recorded.seq, id: input.id, delivered: 0, duplicate: true };
    }
    const m = recorded.message;
    const delivered = this.deliverMessage(channel, m, exclude);
    log("publish", { channel, seq: m.seq, delivered, bytes: m.data.length, sub: sender });
    return { seq: m.seq, id: m.id, delivered, duplicate: false };
  }

  /**
   * Delivers a recorded message to this room's own sockets and pushes it to the channel's edges,
   * skipping connection `exclude` (a cid or Pusher socket id) wherever it is held.
   */
  private deliverMessage(channel: string, m: LoggedMessage, exclude: string | null): number {
    const skip = exclude === null ? null : this.sockets.byCid(exclude);
    const delivered = this.delivery.toAll(msgOut(channel, m, this.log.epoch), skip);
    this.edges.push(channel, this.log.epoch, m, exclude);
    count(this.env, channel, "publish");
    count(this.env, channel, "delivered", delivered);
    return delivered;
  }

  /** Empties the log and starts a new epoch; every connected client, on every edge, gets `reset`. */
  async purge(): Promise<{ seq: number; epoch: string }> {
    this.log.purge(Date.now());
    const reset = this.delivery.toAll(out({ t: "reset", seq: this.log.lastSeq, epoch: this.log.epoch }));
    this.edges.reset(this.log.channelName, this.log.lastSeq, this.log.epoch);
    log("purge", { channel: this.log.channelName, seq: this.log.lastSeq, reset });
    return { seq: this.log.lastSeq, epoch: this.log.epoch };
  }

  // ---- edges of a sharded channel ----------------------------------------------------------

  /**
   * An edge takes a socket: it is added to the edge list (in storage, before anything else, so
   * every later publish reaches it) and gets the head of the channel, its new socket's opening,
   * and what the edge itself missed since its own cursor.
   */
  async attachEdge(channel: string, edge: string, start: Start, edgeCursor: Cursor | null): Promise<Attached> {
    this.config(channel);
    this.log.ensureStored(channel); // the epoch edges' sockets are welcomed with must not change
    this.edges.add(edge);
    if (this.tracksOccupancy(channel)) this.occupancy.arrived(channel, Date.now());
    const catchUp = edgeCursor === null ? null : this.log.since(edgeCursor, Date.now());
    return { seq: this.log.lastSeq, epoch: this.log.epoch, opening: this.opening(channel, start, null), catchUp };
  }

  /** An edge whose sockets are all gone leaves the list. */
  async detachEdge(edge: string): Promise<void> {
    this.edges.remove(edge);
    await this.mayBeEmpty();
  }

  // ---- occupancy (Pusher's channel list, webhooks) -------------------------------------------

  /** Whether this channel's occupancy is tracked: only when something reads it. */
  private tracksOccupancy(channel: string): boolean {
    return pusherApp(this.env) !== null || this.webhooksOn(channel);
  }

  /** Whether any channel's occupancy may be tracked (cheap: no storage read). */
  private get mayTrack(): boolean {
    return pusherApp(this.env) !== null || webhookTarget(this.env) !== null;
  }

  private webhooksOn(channel: string): boolean {
    return webhookTarget(this.env) !== null && this.config(channel).webhooks;
  }

  /** One outbox row, written in the caller's step; the alarm delivers it. */
  private webhook(event: WebhookEvent): void {
    if (!this.webhooksOn(event.channel)) return;
    this.webhooks.add(event);
    void this.alarms.by(Date.now());
  }

  /** A subscriber left: when none may be left, the alarm looks again (and vacates after 5 s). */
  private async mayBeEmpty(): Promise<void> {
    if (!this.mayTrack || this.edges.count > 0 || this.sockets.count() > 1) return;
    const at = this.occupancy.mayBeEmpty(Date.now());
    if (at !== null) await this.alarms.by(at);
  }

  private checkOccupancy(now: number): number | null {
    if (!this.mayTrack || !this.occupancy.occupied) return null;
    const subscribers = this.sockets.count() + this.edges.count;
    if (subscribers === 0) this.occupancy.mayBeEmpty(now);
    return this.occupancy.check(subscribers, now);
  }

  /** Runs in the step that stored the change: what is due is written with it. */
  private occupancyChanged(channel: string, occupied: boolean, now: number): void {
    this.webhook({ name: occupied ? "channel_occupied" : "channel_vacated", channel });
    if (pusherApp(this.env) !== null) {
      this.ctx.storage.kv.put<DirectoryChange>(DIRECTORY_DUE, { channel, occupied });
      void this.alarms.by(now);
    }
  }

  /** The alarm's job: tells the directory of a change, until it has answered. */
  private async tellDirectory(): Promise<number | null> {
    const due = this.ctx.storage.kv.get<DirectoryChange>(DIRECTORY_DUE);
    if (due === undefined) return null;
    try {
      await directory(this.env).set(due.channel, due.occupied);
    } catch (err) {
      log("error", { where: "directory", channel: due.channel, error: String(err) });
      return Date.now() + 5000;
    }
    // A change made meanwhile is told on the next run.
    if (this.ctx.storage.kv.get<DirectoryChange>(DIRECTORY_DUE)?.occupied !== due.occupied) return Date.now();
    this.ctx.storage.kv.delete(DIRECTORY_DUE);
    return null;
  }

  /** Messages after an edge's cursor (gap repair, catching up after a failed push). */
  async replayFor(channel: string, cursor: Cursor): Promise<{ seq: number; epoch: string; replay: Replay }> {
    this.config(channel);
    return { seq: this.log.lastSeq, epoch: this.log.epoch, replay: this.log.since(cursor, Date.now()) };
  }

  // ---- reads -------------------------------------------------------------------------------

  async history(channel: string, query: HistoryQuery): Promise<string> {
    this.config(channel);
    return historyBody(this.log, channel, query, Date.now());
  }

  async members(channel: string): Promise<{ members: unknown[]; count: number }> {
    return this.presence.list(this.config(channel).presenceMaxMembers);
  }

  async stats(channel: string): Promise<RoomStats> {
    const transports = { ws: this.sockets.countOf("ws"), sse: this.sockets.countOf("sse") };
    const edges = this.edges.names_();
    // Stats sum the edges: each answers for its own sockets.
    for (const counted of await Promise.all(edges.map((name) => edgeStub(this.env, name).counts(channel).catch(() => ({ ws: 0, sse: 0 }))))) {
      transports.ws += counted.ws;
      transports.sse += counted.sse;
    }
    const stats: RoomStats = {
      channel,
      subscribers: transports.ws + transports.sse,
      transports,
      presence: isPresenceChannel(channel) ? this.presence.count() : null,
      publishes: this.log.lastSeq,
      seq: this.log.lastSeq,
      epoch: this.log.epoch,
      log: this.log.stats(Date.now()),
      options: optionsInForce(this.config(channel)),
    };
    if (edges.length > 0) stats.edges = edges.length;
    return stats;
  }

  // ---- alarm jobs --------------------------------------------------------------------------

  /**
   * Closes presence sockets that stopped pinging, so a vanished client does not stay a member.
   * Answers when to look again while presence sockets remain.
   */
  private sweepPresence(now: number): number | null {
    const sockets = this.sockets.members();
    for (const ws of sockets) {
      const state = stateOf(ws);
      if (state === null) continue;
      const lastSeen = Math.max(this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, state.at);
      if (now - lastSeen <= PRESENCE_TIMEOUT_MS) continue;
      this.forget(ws);
      this.delivery.close(ws, state.tr, CLOSE.noPing, "no ping received");
      log("swept", { channel: state.ch, cid: state.cid, sub: state.sub, silentMs: now - lastSeen });
    }
    return sockets.length > 0 ? now + PRESENCE_SWEEP_MS : null;
  }
}
