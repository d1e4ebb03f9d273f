// RoomObject (binding ROOMS): a channel's hub, named by its channel. It owns the channel's log,
// seq, epoch, dedupe, presence, occupancy, webhooks and the list of its edges, and is the edge
// of its own single-channel sockets. Read top to bottom as its lifecycle: wake, accept a
// socket (welcome, then replay), let it go, publish (one entry point: record, then deliver here
// and push to edges), serve its edges, answer reads, and run the alarm's jobs.
//
// Nothing that must survive hibernation lives in memory: sockets and their state are held by
// the runtime (tags + attachments), the log and the edge list by SQLite; fields here are caches.
import { optionsInForce, type ChannelConfig } from "./settings/config.js";
import { errorText, log } from "./server/log.js";
import { count } from "./server/metrics.js";
import { isPresenceChannel, LIMITS, type Cursor, type Member, type PublishResult } from "./protocol/index.js";
import { directoryStub, edgeStub, hubStub, isInternalChannel, ownName, cutToPage, RECONCILE_MS, REPAIR_PAGE, type Attached, type HistoryQuery, type HubRpc, type MemberList, type Opening, type PublishAnswer, type PublishInput, type PublishOptions, type RoomStats, type Replay, type Start, type StreamReply, type StreamRequest, type ForkAnswer } from "./rpc.js";
import type { Env } from "./env.js";
import { readConnect, rewindOf } from "./connections/connect.js";
import { ChannelSockets } from "./connections/dialects/channel-socket.js";
import type { ChannelEvent } from "./connections/dialects/dialect.js";
import { PRESENCE_SWEEP_MS, PRESENCE_TIMEOUT_MS, silentFor } from "./connections/liveness.js";
import { SocketHost } from "./connections/socket-host.js";
import { stateOf, type SocketState } from "./connections/sockets.js";
import { EdgeLinks } from "./hub/edge-links.js";
import { Commits } from "./hub/commits.js";
import { historyBody } from "./hub/history.js";
import { Occupancy } from "./hub/occupancy.js";
import { LocalMembers, Presence, RemoteMembers } from "./hub/presence.js";
import { deliver, publish, refusal } from "./hub/publish.js";
import { STREAM_EVENT, StreamState } from "./hub/stream.js";
import { PublishRate } from "./connections/rate-limit.js";
import { accepted } from "./server/service-error.js";
import { ReplayLog, type GrowthLimits, type Retention } from "./hub/replay-log.js";
import { firstPage, newestPage, PAGE_READ, type LogReader, type Page } from "./connections/replay-pages.js";
import { forgetSchemaVersion, migrate, DIRECTORY_DUE_KEY, WATCH_TOLD_KEY, WATCHERS_KEY } from "./schema.js";
import { Webhooks, webhookTarget, type WebhookEvent } from "./hub/webhooks.js";
import { CACHE_MISS_EVERY_MS } from "./pusher/cache.js";
import { userChannel, userOf, watchlistData, WATCHERS_MAX, WATCHLIST_EVENT } from "./pusher/users.js";
import { countsSubscriptions, pusherApp } from "./pusher/app.js";

/** Subscription counts: told at most this often per channel, as Pusher debounces them, and a moment after a change settles. */
const COUNT_EVERY_MS = 5_000;
const COUNT_SETTLE_MS = 500;
/** Watchlists: a user's online/offline change is told after this long, if it still holds. */
const WATCH_SETTLE_MS = 1_000;

/** A change of occupancy the directory has not confirmed yet (Pusher's channel list). */
interface DirectoryChange {
  channel: string;
  occupied: boolean;
}

/** A stream's log keeps everything until the stream is deleted or expires. */
const KEEP_ALL = { maxMessages: Number.MAX_SAFE_INTEGER, maxAgeS: 3e9 }; // 95 years: alarms take dates up to 2189

/** Long-polls one stream holds waiting at most. */
const MAX_STREAM_WAITERS = 10_000;

const retentionOf = (c: ChannelConfig): Retention => ({
  maxMessages: c.logMaxMessages,
  maxAgeS: c.logMaxAgeS,
  dedupeWindowS: c.dedupeWindowS,
});

export class RoomObject extends SocketHost implements HubRpc {
  /** The channel: this object's name (`ctx.id.name`, or the one its log stored). */
  readonly channel: string;
  readonly log: ReplayLog;
  readonly edges: EdgeLinks;
  private readonly presence: Presence;
  private readonly occupancy: Occupancy;
  private readonly webhooks: Webhooks;
  private readonly streams: StreamState;
  private readonly commits: Commits;
  /** The edges' counts being asked for now (stats), shared by the requests that come meanwhile. */
  private counting: Promise<{ ws: number; sse: number }> | null = null;
  /** Long-polls of the stream waiting for its next append (or its end). */
  private readonly streamWaiters = new Set<() => void>();
  protected readonly dialects: { channel: ChannelSockets };
  private readonly channelSockets: ChannelSockets;

  // ---- wake --------------------------------------------------------------------------------

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage);
    this.log = new ReplayLog(ctx.storage.sql, retentionOf(this.config("")));
    this.channel = ownName(ctx, () => this.log.channelName || null) ?? "";
    this.log.retention = retentionOf(this.config(this.channel));
    this.channelSockets = new ChannelSockets(this, this.channel);
    this.dialects = { channel: this.channelSockets };
    this.presence = new Presence(this.sockets, new RemoteMembers(ctx.storage.sql), new LocalMembers(ctx.storage.sql));
    this.edges = new EdgeLinks(ctx, env, (at) => this.alarms.by(at), (name) => this.edgeGone(name));
    this.webhooks = new Webhooks(ctx.storage, env);
    this.occupancy = new Occupancy(ctx.storage, (channel, occupied, now) => this.occupancyChanged(channel, occupied, now));
    if (!this.log.hasStoredEpoch) this.recallEpoch();
    const replayLog = this.log;
    this.commits = new Commits(ctx.storage);
    this.streams = new StreamState(
      {
        sql: ctx.storage.sql,
        name: this.channel,
        get lastSeq() {
          return replayLog.lastSeq;
        },
        get epoch() {
          return replayLog.epoch;
        },
        retained: (now) => this.log.stats(now).count,
        after: (seq, limit, bytes) => {
          const replay = this.log.since({ seq, epoch: null }, Date.now(), limit, bytes);
          return replay.reset ? [] : replay.messages;
        },
        append: (datas) => {
          const now = Date.now();
          // One append record: its messages' ids say which (a fork's sub-offset counts within one).
          const record = `ds-${this.log.lastSeq + 1}`;
          // Delivering wakes the stream's long-polls (fanOut does, for every message of the channel).
          datas.forEach((data, i) => deliver(this, this.log.append(this.channel, { event: STREAM_EVENT, data, id: `${record}.${i}` }, null, now, "stream"), null));
        },
        purge: () => void this.clearLog(),
        keepAll: (yes) => (this.log.retention = { ...retentionOf(this.config(this.channel)), ...(yes ? KEEP_ALL : {}) }),
        wake: () => this.wakeStream(),
        closed: () => void this.fanOut({ t: "closed", ch: this.channel, seq: this.log.lastSeq }, null), // wakes long-polls too
        other: (name) => hubStub(env, name),
      },
      () => this.config(this.channel).streamMaxBytes,
    );
    if (this.streams.meta() !== null) this.log.retention = { ...this.log.retention, ...KEEP_ALL };
  }

  protected alarmJobs() {
    return {
      trim: (now: number) => this.log.trim(now),
      expiry: (now: number) => this.closeExpired(now),
      presence: (now: number) => this.sweepPresence(now),
      edges: () => this.edges.retry(this.channel),
      occupancy: (now: number) => this.checkOccupancy(now),
      directory: () => this.tellDirectory(),
      webhooks: (now: number) => this.webhooks.deliver(now),
      reconcile: (now: number) => this.reconcile(now),
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
    if (this.sockets.count() >= this.config(this.channel).maxSockets) return this.channelSockets.refuseFull(connect);

    const extra: Partial<SocketState> = this.log.hasStoredEpoch ? {} : { ep: this.log.epoch };
    const head = { seq: this.log.lastSeq, epoch: this.log.epoch };
    const { client, server, state } = this.channelSockets.accept(connect, head, this.opening(connect.start), extra);
    if (this.tracksOccupancy()) this.occupancy.arrived(this.channel, Date.now());
    this.recountSoon();
    const member = this.sockets.isMember(state);
    if (member) this.announceJoin(server, state);
    count(this.env, this.channel, "connect");

    if (state.exp !== null) await this.alarms.by(state.exp * 1000);
    if (member) await this.alarms.by(Date.now() + PRESENCE_SWEEP_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * What a new subscriber gets after its welcome: a resume's missed messages, a rewind, or a
   * reset; only its first page when it is long (the rest as it reads: `replays`).
   */
  private opening(start: Start): Opening {
    const now = Date.now();
    if (start.cursor !== null) {
      const replay = this.log.since(start.cursor, now, PAGE_READ, LIMITS.replayPageBytes);
      return replay.reset ? { reset: true } : firstPage(replay.messages);
    }
    const rewind = rewindOf(start, this.config(this.channel).latest);
    const rewound = rewind > 0 ? this.log.last(rewind, now) : [];
    return rewound.some((m) => m.v !== undefined) ? newestPage(rewound) : firstPage(rewound);
  }

  /** A replay's later pages, from the log, up to its head (what live delivery has reached). */
  readonly replays: LogReader = {
    inTurn: (_channel, step) => step(), // reads and sends here are synchronous: nothing comes between
    page: async (_channel, after, epoch): Promise<Page> => {
      const head = { seq: this.log.lastSeq, epoch: this.log.epoch };
      const replay = this.log.since({ seq: after, epoch }, Date.now(), PAGE_READ, LIMITS.replayPageBytes);
      if (replay.reset) return { reset: true, ...head };
      return { reset: false, messages: replay.messages, more: cutToPage(replay.messages) };
    },
  };

  // ---- presence: one member per user, on this hub's sockets and on edges' connections -------

  private announceJoin(ws: WebSocket, state: SocketState): void {
    const joined = this.presence.join(ws, state);
    this.delivery.to(ws, state, this.channelSockets.membersFrame(this.presence.list(this.maxMembers)));
    this.joined(joined, ws, null);
  }

  private get maxMembers(): number {
    return this.config(this.channel).presenceMaxMembers;
  }

  /**
   * A member's first socket or connection joined: webhook, and beyond PRESENCE_MAX_MEMBERS counts
   * only (no join/leave storm to every socket). One rule for joins and leaves: a change is
   * announced when the channel held at most that many members with the member in it (after a
   * join: count ≤ max; after a leave: count + 1 ≤ max, so count < max).
   */
  private joined(member: Member | null, exceptWs: WebSocket | null, exceptCid: string | null): void {
    if (member === null) return;
    if (userOf(this.channel) !== null) return this.tellWatchersSoon();
    this.webhook({ name: "member_added", channel: this.channel, user_id: member.id });
    if (this.presence.count() <= this.maxMembers) this.announce("join", member, exceptWs, exceptCid);
  }

  private left(member: Member | null, exceptWs: WebSocket | null, exceptCid: string | null): void {
    if (member === null) return;
    if (userOf(this.channel) !== null) return this.tellWatchersSoon();
    this.webhook({ name: "member_removed", channel: this.channel, user_id: member.id });
    if (this.presence.count() < this.maxMembers) this.announce("leave", member, exceptWs, exceptCid);
  }

  /** A join or leave, to this room's own sockets and to every edge's connections on the channel. */
  private announce(t: "join" | "leave", member: Member, exceptWs: WebSocket | null, exceptCid: string | null): void {
    this.delivery.toAll(this.channelSockets.render({ t, ch: this.channel, member })!, exceptWs);
    this.edges.presence(this.channel, this.log.epoch, t, member, exceptCid);
  }

  async presenceJoin(edge: string, cid: string, sub: string, info: string | null, cap: number | null): Promise<MemberList | null> {
    if (cap !== null && !this.presence.has(sub) && this.presence.count() >= cap) return null;
    const joined = this.presence.joinRemote(cid, edge, sub, info);
    const list = this.presence.list(this.maxMembers);
    this.joined(joined, null, cid);
    await this.alarms.by(Date.now() + RECONCILE_MS);
    return list;
  }

  async presenceLeave(cid: string): Promise<void> {
    this.left(this.presence.leaveRemote(cid), null, cid);
  }

  // ---- close -------------------------------------------------------------------------------

  protected override gone(ws: WebSocket, state: SocketState): void {
    this.recountSoon();
    if (isPresenceChannel(state.ch)) this.left(this.presence.leave(ws, state), ws, null);
  }

  override async afterClose(): Promise<void> {
    await this.mayBeEmpty();
  }

  // ---- publish: record, then deliver -------------------------------------------------------

  /** The one publish entry point: every surface comes here, or to publishMany. */
  async publish(input: PublishInput, options: PublishOptions): Promise<PublishAnswer> {
    const refused = refusal(this, options) ?? this.streamRefusal([input]);
    if (refused !== null) return refused;
    const result = publish(this, input, options);
    await this.alarms.ifNone("trim");
    return result;
  }

  /** Several messages to this channel, in order (batch publish: one room call per channel). */
  async publishMany(inputs: PublishInput[], options: PublishOptions): Promise<PublishAnswer[]> {
    const refused = refusal(this, options, inputs.length) ?? this.streamRefusal(inputs);
    if (refused !== null) return inputs.map(() => refused);
    const results = inputs.map((input) => publish(this, input, options));
    await this.alarms.ifNone("trim");
    return results;
  }

  /** A client's publish on this hub's own socket. */
  async publishFor(_channel: string, input: PublishInput, options: PublishOptions): Promise<PublishResult> {
    return accepted(await this.publish(input, options));
  }

  /** Token publishes over HTTP, per token, this second (in memory: a hibernated hub had none). */
  readonly tokenRate = new PublishRate();

  get clientPubPerS(): number {
    return this.config(this.channel).clientPubPerS;
  }

  get growthLimits(): GrowthLimits {
    const config = this.config(this.channel);
    return { maxBytes: config.maxMessageBytes, maxAppends: config.appendsMax };
  }

  noAppends(): string | null {
    return this.streams.meta() === null ? null : "this channel is a Durable Stream: its messages do not grow (append to the stream with POST /v1/stream/:name)";
  }

  /** What publishing reaches here: this hub's own sockets (edges get the push). */
  override fanOut(event: ChannelEvent, skip: string | null): number {
    // A Durable Streams long-poll waits for any message of the channel (a publish appends too).
    if (this.streamWaiters.size > 0) this.wakeStream();
    return super.fanOut(event, skip);
  }

  /** Empties the log and starts a new epoch; every connected client, on every edge, gets `reset`. */
  async purge(): Promise<{ seq: number; epoch: string }> {
    // A stream goes with its messages (DELETE /v1/stream/:name is the stream's own way).
    await this.streams.purged();
    return this.clearLog();
  }

  /** Empties the log and starts a new epoch; every subscriber, on every edge, gets `reset`. */
  private clearLog(): { seq: number; epoch: string } {
    this.log.purge(Date.now());
    const { lastSeq: seq, epoch } = this.log;
    const reset = this.fanOut({ t: "reset", ch: this.channel, seq, epoch }, null);
    this.edges.reset(this.channel, seq, epoch);
    log("purge", { channel: this.channel, seq, reset });
    return { seq, epoch };
  }

  // ---- edges of the channel ----------------------------------------------------------------

  /**
   * An edge takes a socket: it is added to the edge list (in storage, before anything else, so
   * every later publish reaches it) and gets the head of the channel, its new socket's opening,
   * and what the edge itself missed since its own cursor.
   */
  async attachEdge(edge: string, start: Start, edgeCursor: Cursor | null): Promise<Attached> {
    this.log.ensureStored(this.channel); // the epoch edges' sockets are welcomed with must not change
    this.edges.add(edge);
    await this.alarms.by(Date.now() + RECONCILE_MS);
    if (this.tracksOccupancy()) this.occupancy.arrived(this.channel, Date.now());
    // What the edge missed, a page of it (the edge asks for the rest a page per call).
    const catchUp = edgeCursor === null ? null : this.log.since(edgeCursor, Date.now(), REPAIR_PAGE.messages, REPAIR_PAGE.bytes);
    if (catchUp !== null && !catchUp.reset) cutToPage(catchUp.messages);
    return { seq: this.log.lastSeq, epoch: this.log.epoch, opening: this.opening(start), catchUp };
  }

  /** An edge whose sockets are all gone leaves the list. */
  async detachEdge(edge: string): Promise<void> {
    this.edges.remove(edge);
    this.forgetIfUnused();
    await this.mayBeEmpty();
  }

  /**
   * A channel that never had a publish, whose last subscriber left, keeps no storage:
   * subscriptions of random public names (through `/v1/ws`, or sockets of their own) must not
   * leave a table in every hub they touched. Only where nothing else needs it: no sockets, edges
   * or members, and where occupancy is tracked, the channel vacated, its webhooks delivered and
   * the directory told.
   */
  private forgetIfUnused(): void {
    if (this.log.lastSeq !== 0 || this.edges.count > 0 || this.sockets.count() > 0 || this.presence.remoteByEdge().size > 0 || this.presence.localCount() > 0) return;
    const kv = this.ctx.storage.kv;
    if (this.mayTrack && (this.occupancy.occupied || !this.webhooks.idle() || kv.get(DIRECTORY_DUE_KEY) !== undefined)) return;
    this.log.forgetIfUnused();
    this.ctx.storage.sql.exec("DROP TABLE IF EXISTS edges; DROP TABLE IF EXISTS remote_members; DROP TABLE IF EXISTS local_members");
    this.edges.forgetTable();
    this.occupancy.forget();
    this.webhooks.forget();
    forgetSchemaVersion(this.ctx.storage);
  }

  /** After the alarm's jobs (a vacated channel's webhook and directory update): maybe nothing is left to keep. */
  override async alarm(): Promise<void> {
    await super.alarm();
    this.forgetIfUnused();
  }

  /** An edge holds none of the channel's subscribers (it was reset, say): it and its members go. */
  private edgeGone(edge: string): void {
    for (const cid of this.presence.remoteByEdge().get(edge) ?? []) this.left(this.presence.leaveRemote(cid), null, cid);
    this.edges.remove(edge);
    this.forgetIfUnused();
    void this.mayBeEmpty();
  }

  /**
   * The alarm's job while edges or members on edges are listed: each edge says whether it still
   * holds the channel's subscribers and which listed members are still connected to it, so an
   * edge reset without close events leaves no stale link and no ghost member (with the due
   * member_removed and channel_vacated webhooks). An edge that does not answer is asked again.
   */
  private async reconcile(now: number): Promise<number | null> {
    const byEdge = this.presence.remoteByEdge();
    const edges = new Set([...this.edges.names(), ...byEdge.keys()]);
    if (edges.size === 0) return null;
    await Promise.all(
      [...edges].map(async (edge) => {
        const cids = byEdge.get(edge) ?? [];
        let answer: { holds: boolean; live: string[] };
        try {
          answer = await edgeStub(this.env, edge).holds(this.channel, cids, { seq: this.log.lastSeq, epoch: this.log.epoch });
        } catch (err) {
          return log("error", { where: "reconcile", channel: this.channel, edge, error: errorText(err) });
        }
        for (const cid of cids) if (!answer.live.includes(cid)) this.left(this.presence.leaveRemote(cid), null, cid);
        if (!answer.holds) this.edges.remove(edge);
      }),
    );
    await this.mayBeEmpty();
    return this.edges.count > 0 || this.presence.remoteByEdge().size > 0 ? now + RECONCILE_MS : null;
  }

  async replayFor(cursor: Cursor): Promise<{ seq: number; epoch: string; replay: Replay }> {
    const replay = this.log.since(cursor, Date.now(), REPAIR_PAGE.messages, REPAIR_PAGE.bytes);
    // At most about a page of bytes per call (at least one message, so the edge moves on).
    if (!replay.reset) cutToPage(replay.messages);
    return { seq: this.log.lastSeq, epoch: this.log.epoch, replay };
  }

  // ---- the channel as a Durable Stream ---------------------------------------------------------

  async streamCall(req: StreamRequest): Promise<StreamReply> {
    // Appends with a token count toward its publish rate, as its HTTP publishes do.
    if (req.op === "append" && (req.scope ?? "") !== "" && this.tokenRate.take(req.scope!, this.clientPubPerS) !== "ok") {
      return { status: 429, headers: { "content-type": "text/plain" }, body: `at most ${this.clientPubPerS} appends per second with one token (clientPubPerS)` };
    }
    if (req.op === "append") return this.commits.run(() => this.streams.handle(req, Date.now()), () => ({ status: 503, headers: { "content-type": "text/plain", "retry-after": "1" }, body: "too many appends waiting for this stream: retry" }));
    if (req.op !== "read" || req.waitMs <= 0) return this.streams.handle(req, Date.now());
    // A long-poll: from where the stream is (offset=now) or from the offset, wait for news.
    const offset = req.offset === "now" ? await this.streams.tailOffset(Date.now()) : req.offset;
    if (offset === null) return this.streams.handle(req, Date.now());
    if (!(await this.streams.hasNews(offset!, Date.now()))) await this.waitForStream(req.waitMs);
    const reply = await this.streams.handle({ ...req, offset }, Date.now());
    if (reply.status !== 200 || reply.count !== 0) return reply;
    // Nothing came (or the stream was closed): 204, with where to go on from.
    const { etag: _etag, ...headers } = reply.headers;
    return { status: 204, headers: { ...headers, "stream-up-to-date": "true" } };
  }

  streamFork(fork: string, contentType: string | null, offset: string | null, sub: number): Promise<ForkAnswer> {
    return this.streams.forkFrom(fork, contentType, offset, sub, Date.now());
  }

  streamRows(from: number, to: number): Promise<string[]> {
    return this.streams.rows(from, to);
  }

  streamUnref(fork: string): Promise<void> {
    return this.streams.unref(fork);
  }

  streamAlive(): Promise<boolean> {
    return this.streams.alive(Date.now());
  }

  /** A publish to this channel while it is a Durable Stream appends to it (or is refused why not). */
  private streamRefusal(inputs: PublishInput[]): PublishAnswer | null {
    if (this.streams.meta() === null) return null;
    const refused = this.streams.refusesPublish(inputs.map((i) => i.data), Date.now());
    return refused === null ? null : { refused };
  }

  private waitForStream(ms: number): Promise<void> {
    // Bounded: past MAX_STREAM_WAITERS a long-poll answers at once (204) instead of waiting.
    if (this.streamWaiters.size >= MAX_STREAM_WAITERS) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.streamWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.streamWaiters.add(done);
    });
  }

  private wakeStream(): void {
    for (const done of [...this.streamWaiters]) done();
  }

  // ---- occupancy (Pusher's channel list, webhooks) -------------------------------------------

  /** Whether this channel's occupancy is tracked: only when something reads it. */
  private tracksOccupancy(): boolean {
    return pusherApp(this.env) !== null || this.webhooksOn();
  }

  /** Whether any channel's occupancy may be tracked (cheap: no storage read). */
  private get mayTrack(): boolean {
    if (isInternalChannel(this.channel)) return false;
    return pusherApp(this.env) !== null || webhookTarget(this.env) !== null;
  }

  private webhooksOn(): boolean {
    return webhookTarget(this.env) !== null && this.config(this.channel).webhooks && !isInternalChannel(this.channel);
  }

  // ---- subscription counts (Pusher's subscription_count, and its webhook) -------------------

  /** The count last told and when; a recount is pending while `recount` is set (in memory). */
  private toldCount: number | null = null;
  private toldAt = 0;
  private recount: ReturnType<typeof setTimeout> | null = null;

  async subscriptionsChanged(): Promise<void> {
    this.recountSoon();
  }

  /**
   * Counts again in a moment, at most once per COUNT_EVERY_MS; a changed count is told to every
   * edge's Pusher clients (`pusher_internal:subscription_count`) and to the webhook.
   */
  private recountSoon(): void {
    if (this.recount !== null || !countsSubscriptions(this.env, this.channel)) return;
    const at = Math.max(Date.now() + COUNT_SETTLE_MS, this.toldAt + COUNT_EVERY_MS);
    this.recount = setTimeout(() => void this.countNow().catch((err: unknown) => log("error", { where: "subscription count", channel: this.channel, error: errorText(err) })), at - Date.now());
  }

  private async countNow(): Promise<void> {
    this.recount = null;
    const { subscribers } = await this.stats();
    if (subscribers === this.toldCount) return;
    this.toldCount = subscribers;
    this.toldAt = Date.now();
    this.edges.subscriptionCount(this.channel, this.log.epoch, subscribers);
    this.webhook({ name: "subscription_count", channel: this.channel, subscription_count: subscribers });
  }

  // ---- a Pusher user's channel: who watches this user --------------------------------------

  async watch(watcher: string): Promise<boolean> {
    const kv = this.ctx.storage.kv;
    const watchers = (kv.get<string[]>(WATCHERS_KEY) ?? []).filter((w) => w !== watcher);
    watchers.push(watcher);
    kv.put(WATCHERS_KEY, watchers.slice(-WATCHERS_MAX));
    return this.presence.count() > 0;
  }

  /** The pending tell of this user's online/offline change to its watchers. */
  private tellTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * This user's first connection signed in, or its last went. Watchers hear it a moment later,
   * at most once per WATCH_SETTLE_MS, and only if it still holds then: a user flapping between
   * online and offline costs its watchers one event a window, not one per change.
   */
  private tellWatchersSoon(): void {
    if (this.tellTimer !== null) return;
    this.tellTimer = setTimeout(() => {
      this.tellTimer = null;
      // What watchers were last told is stored (an evicted hub must not tell it again, or miss
      // a change); never told is offline, as watchers take a user they have heard nothing of.
      const kv = this.ctx.storage.kv;
      const online = this.presence.count() > 0;
      if (online === (kv.get<boolean>(WATCH_TOLD_KEY) ?? false)) return;
      kv.put(WATCH_TOLD_KEY, online);
      this.tellWatchers(online ? "online" : "offline");
    }, WATCH_SETTLE_MS);
  }

  /** Each watcher's signed-in connections hear that this user is online or offline. */
  private tellWatchers(name: "online" | "offline"): void {
    const user = userOf(this.channel)!;
    const data = watchlistData(name, [user]);
    for (const w of this.ctx.storage.kv.get<string[]>(WATCHERS_KEY) ?? []) {
      const input = { event: WATCHLIST_EVENT, data, id: crypto.randomUUID() };
      void hubStub(this.env, userChannel(w)).publish(input, { sender: null, exclude: null, by: "origin", scope: "" }).catch(() => {});
    }
  }

  /** When this hub last wrote a `cache_miss` webhook (in memory: a storm of empty subscribes costs one a window). */
  private lastCacheMiss = 0;

  async cacheMiss(): Promise<void> {
    const now = Date.now();
    if (now - this.lastCacheMiss < CACHE_MISS_EVERY_MS) return;
    this.lastCacheMiss = now;
    this.webhook({ name: "cache_miss", channel: this.channel });
  }

  /** One outbox row, written in the caller's step; the alarm delivers it. */
  webhook(event: WebhookEvent): void {
    if (!this.webhooksOn()) return;
    this.webhooks.add(event);
    void this.alarms.by(Date.now());
  }

  /** A subscriber left: when none may be left, the alarm looks again (and vacates after 5 s). */
  private async mayBeEmpty(): Promise<void> {
    // The socket that is closing may still be counted.
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
      this.ctx.storage.kv.put<DirectoryChange>(DIRECTORY_DUE_KEY, { channel, occupied });
      void this.alarms.by(now);
    }
  }

  /** The alarm's job: tells the directory of a change, until it has answered. */
  private async tellDirectory(): Promise<number | null> {
    const due = this.ctx.storage.kv.get<DirectoryChange>(DIRECTORY_DUE_KEY);
    if (due === undefined) return null;
    try {
      await directoryStub(this.env).set(due.channel, due.occupied);
    } catch (err) {
      log("error", { where: "directory", channel: due.channel, error: errorText(err) });
      return Date.now() + 5000;
    }
    // A change made meanwhile is told on the next run.
    if (this.ctx.storage.kv.get<DirectoryChange>(DIRECTORY_DUE_KEY)?.occupied !== due.occupied) return Date.now();
    this.ctx.storage.kv.delete(DIRECTORY_DUE_KEY);
    return null;
  }

  // ---- reads -------------------------------------------------------------------------------

  async history(query: HistoryQuery): Promise<string> {
    return historyBody(this.log, this.channel, query, Date.now());
  }

  async members(): Promise<MemberList> {
    return this.presence.list(this.maxMembers);
  }

  /**
   * What the edges hold, summed: each answers for its own sockets; one that does not is said in
   * the log. Requests that come while the edges are being asked share that answer, so a flood of
   * stats requests asks each edge once a round trip, not once a request.
   */
  private edgeCounts(): Promise<{ ws: number; sse: number }> {
    return (this.counting ??= Promise.all(
      this.edges.names().map((name) =>
        edgeStub(this.env, name)
          .counts(this.channel)
          .catch((err: unknown) => {
            log("error", { where: "edge counts", channel: this.channel, edge: name, error: errorText(err) });
            return { ws: 0, sse: 0 };
          }),
      ),
    )
      .then((counted) => counted.reduce((sum, c) => ({ ws: sum.ws + c.ws, sse: sum.sse + c.sse }), { ws: 0, sse: 0 }))
      .finally(() => (this.counting = null)));
  }

  async stats(): Promise<RoomStats> {
    const edges = this.edges.names();
    const remote = edges.length === 0 ? { ws: 0, sse: 0 } : await this.edgeCounts();
    const transports = { ws: this.sockets.countOf("ws") + remote.ws, sse: this.sockets.countOf("sse") + remote.sse };
    const stats: RoomStats = {
      channel: this.channel,
      subscribers: transports.ws + transports.sse,
      transports,
      presence: isPresenceChannel(this.channel) ? this.presence.count() : null,
      publishes: this.log.lastSeq,
      seq: this.log.lastSeq,
      epoch: this.log.epoch,
      log: this.log.stats(Date.now()),
      options: optionsInForce(this.config(this.channel)),
    };
    if (edges.length > 0) stats.edges = edges.length;
    if (this.webhooksOn()) stats.webhooks = this.webhooks.stats();
    const stream = this.streams.meta();
    if (stream !== null && stream.deleted !== 1) stats.stream = { contentType: stream.content_type, closed: stream.closed === 1 };
    return stats;
  }

  // ---- alarm jobs --------------------------------------------------------------------------

  /**
   * Closes presence sockets that stopped pinging, so a vanished client does not stay a member.
   * Answers when to look again while presence sockets remain.
   */
  private sweepPresence(now: number): number | null {
    const sockets = this.sockets.members();
    // Members whose sockets went with a restart, without close events, leave now.
    for (const member of this.presence.ghosts()) this.left(member, null, null);
    for (const ws of sockets) {
      const state = stateOf(ws);
      // An SSE stream's socket never pings: its relay notices a vanished client itself.
      if (state === null || state.tr === "sse") continue;
      const silent = silentFor(this.ctx, ws, state, now);
      if (silent <= PRESENCE_TIMEOUT_MS) continue;
      this.end(ws, state, "silent", "no ping received");
      log("swept", { channel: state.ch, cid: state.cid, sub: state.sub, silentMs: silent });
    }
    return sockets.length > 0 ? now + PRESENCE_SWEEP_MS : null;
  }
}
