// EdgeObject (binding EDGES): an edge of a sharded channel (`channel#k`: single-channel sockets
// of that channel) or of a connection pool (`#conn/…`: `/v1/ws` connections; `#pusher/…`: Pusher
// connections). Read as its lifecycle: accept a socket in its dialect, take its hubs' pushes
// and fan them out to every dialect, forward clients' publishes to the hubs, sweep expired and
// silent connections, and leave a hub's list when a channel's last subscriber goes.
import { log } from "./server/log.js";
import { count } from "./server/metrics.js";
import type { PublishResult } from "./protocol/index.js";
import { userOf } from "./pusher/users.js";
import { hubStub, ownName, shardChannel, type EdgeRpc, type PublishInput, type PublishOptions, type Push } from "./rpc.js";
import { readConnect } from "./connections/connect.js";
import { ChannelSockets } from "./connections/dialects/channel-socket.js";
import { MuxConnections } from "./connections/dialects/mux.js";
import { PING_AFTER_MS, PusherConnections } from "./connections/dialects/pusher.js";
import type { ChannelEvent } from "./connections/dialects/dialect.js";
import { PRESENCE_SWEEP_MS, PRESENCE_TIMEOUT_MS, silentFor } from "./connections/liveness.js";
import { SocketHost } from "./connections/socket-host.js";
import type { LogReader } from "./connections/replay-pages.js";
import { stateOf, type SocketState } from "./connections/sockets.js";
import { ChannelEdge } from "./edge/channel-edge.js";
import type { Env } from "./env.js";
import { isPresenceChannel } from "./protocol/index.js";
import { accepted } from "./server/service-error.js";

export class EdgeObject extends SocketHost implements EdgeRpc {
  /** This edge's name: `channel#k` or a pool's (`ctx.id.name`; old sockets' attachments as a fallback). */
  readonly name: string;
  private readonly channels: ChannelEdge;
  /** A long replay's later pages: from the channel's tail here, else its hub's log. */
  readonly replays: LogReader = {
    inTurn: (channel, step) => this.channels.inTurn(channel, step),
    page: (channel, after, epoch) => this.channels.page(channel, after, epoch),
  };
  protected readonly dialects: { channel: ChannelSockets; mux: MuxConnections; pusher: PusherConnections };
  private readonly channelSockets: ChannelSockets;
  private readonly mux: MuxConnections;
  private readonly pusher: PusherConnections;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.name = ownName(ctx, () => this.sockets.all().map((ws) => stateOf(ws)?.edge).find((e) => e !== undefined) ?? null) ?? "";
    this.channels = new ChannelEdge(this);
    this.channelSockets = new ChannelSockets(this, shardChannel(this.name));
    this.mux = new MuxConnections(this, this.channels);
    this.pusher = new PusherConnections(this, this.channels);
    this.dialects = { channel: this.channelSockets, mux: this.mux, pusher: this.pusher };
  }

  protected alarmJobs() {
    return {
      expiry: (now: number) => this.closeExpired(now),
      subscriptions: (now: number) => this.mux.endExpired(now),
      idle: (now: number) => this.closeIdle(now),
      presence: (now: number) => this.sweepSilent(now),
    };
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const connect = readConnect(request);
    if (connect === null) return new Response("not found", { status: 404 });
    if (connect.mux?.pusher) return this.pusher.accept();
    if (connect.mux !== undefined) return this.mux.accept(connect);
    const { channel } = connect;
    return this.channels.inTurn(channel, async () => {
      if (this.sockets.count() >= this.config(channel).maxSockets) return this.channelSockets.refuseFull(connect);
      const { head, opening } = await this.channels.attach(channel, connect.start);
      const { client, state } = this.channelSockets.accept(connect, head, opening);
      count(this.env, channel, "connect");
      if (state.exp !== null) await this.alarms.by(state.exp * 1000);
      return new Response(null, { status: 101, webSocket: client });
    });
  }

  // ---- pushes from hubs (EdgeRpc) -------------------------------------------------------------

  async receive(channel: string, push: Push): Promise<number> {
    return this.channels.receive(channel, push);
  }

  async sync(channel: string): Promise<void> {
    return this.channels.sync(channel);
  }

  async counts(channel: string): Promise<{ ws: number; sse: number }> {
    const sse = this.channelSockets.count(channel) > 0 ? this.sockets.countOf("sse") : 0;
    return { ws: this.subscribersOf(channel) - sse, sse };
  }

  async holds(channel: string, cids: string[], head?: { seq: number; epoch: string }): Promise<{ holds: boolean; live: string[] }> {
    // In the channel's turn: a subscribe on its way (attached, not yet added) is counted.
    const answer = await this.channels.inTurn(channel, async () => {
      const live = cids.filter((cid) => {
        const ws = this.sockets.byCid(cid);
        return (ws === null ? null : stateOf(ws))?.subs?.[channel] !== undefined;
      });
      return { holds: this.subscribersOf(channel) > 0, live };
    });
    if (answer.holds && head !== undefined) await this.channels.sync(channel, head);
    return answer;
  }

  /** What the channel edge asks of this object: its dialects, all at once. */
  override fanOut(event: ChannelEvent, skip: string | null): number {
    return super.fanOut(event, skip);
  }

  override subscribersOf(channel: string): number {
    return super.subscribersOf(channel);
  }

  dropChannel(channel: string): void {
    this.mux.dropChannel(channel);
    this.pusher.dropChannel(channel);
  }

  // ---- clients' publishes go to the hub; leaving ------------------------------------------------

  async publishFor(channel: string, input: PublishInput, options: PublishOptions): Promise<PublishResult> {
    return accepted(await hubStub(this.env, channel).publish(input, options));
  }

  /** Every channel the socket was in: it leaves the channel's presence, and the edge maybe the hub's list. */
  override async afterClose(state: SocketState): Promise<void> {
    // Presence channels cannot be sharded: only connections (which name their channels) are members here.
    // A user channel's signed-in connection is its user's presence too (watchlists).
    const member = (ch: string) => state.subs !== undefined && (isPresenceChannel(ch) || (userOf(ch) !== null && state.subs[ch]?.sub != null));
    const channels = this.dialectOf(state)?.channelsOf(state) ?? [];
    await Promise.all(channels.map((ch) => this.channels.left(ch, state.cid, member(ch))));
  }

  // ---- alarm jobs ----------------------------------------------------------------------------

  /** `/v1/ws` connections that held no subscription for 5 minutes are closed (4408). */
  private closeIdle(now: number): number | null {
    const { due, next } = this.mux.idleOnes(now);
    for (const [ws, state] of due) {
      this.end(ws, state, "silent", "no subscription for 5 minutes");
      log("swept", { cid: state.cid, idleMs: now - state.idle! });
    }
    return next;
  }

  /**
   * Closes connections on presence channels that stopped pinging, so a vanished client does not
   * stay a member (their close makes them leave). pusher-js pings only when it hears nothing, so
   * a quiet Pusher connection is pinged first. Answers when to look again.
   */
  private sweepSilent(now: number): number | null {
    let members = 0;
    for (const ws of [...this.sockets.connections("mx"), ...this.sockets.connections("pz")]) {
      const state = stateOf(ws);
      if (state === null || !Object.keys(state.subs ?? {}).some(isPresenceChannel)) continue;
      members++;
      const silent = silentFor(this.ctx, ws, state, now);
      if (state.pz && silent > PING_AFTER_MS && silent <= PRESENCE_TIMEOUT_MS) this.pusher.ping(ws);
      if (silent <= PRESENCE_TIMEOUT_MS) continue;
      this.end(ws, state, "silent", state.pz ? "Pong reply not received" : "no ping received");
      log("swept", { cid: state.cid, sub: state.sub, silentMs: silent });
    }
    return members > 0 ? now + PRESENCE_SWEEP_MS : null;
  }
}
