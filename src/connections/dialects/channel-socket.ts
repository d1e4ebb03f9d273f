// The single-channel socket (`GET /v1/channels/:channel/ws`, and the socket the SSE relay holds
// for an SSE stream): one channel per socket, named in its welcome. It is what a hub holds, and
// what the edges of a sharded channel hold for that channel.
import { CLOSE, LIMITS, PROTOCOL_VERSION, type ServerFrame } from "../../protocol/index.js";
import type { MemberList, Opening } from "../../rpc.js";
import { checkChannelGrant, mayPublish, verifyToken } from "../../server/auth.js";
import { parseClientFrame } from "../../server/input.js";
import { LogBudget } from "../../server/log.js";
import { ServiceError } from "../../server/service-error.js";
import type { ConnectRequest } from "../connect.js";
import { overLimit } from "../frame-size.js";
import type { DialectHost } from "../host.js";
import { msgOut, openingOuts, out, type Out } from "../outgoing.js";
import { ReplayPages } from "../replay-pages.js";
import { newState, type SocketState } from "../sockets.js";
import type { ChannelEvent, Dialect, Ending } from "./dialect.js";

/** A channel event as a single-channel socket reads it (its welcome named the channel). */
export function render(event: ChannelEvent): Out | null {
  switch (event.t) {
    case "msg":
      return msgOut(event.ch, event.m, event.epoch);
    case "reset":
      return out({ t: "reset", seq: event.seq, epoch: event.epoch });
    case "join":
    case "leave":
      return out({ t: event.t, member: event.member });
    case "closed":
      return out({ t: "closed", seq: event.seq });
    case "count":
      return null; // hibercast clients read counts from stats
  }
}

const ENDINGS: Record<Ending, (typeof CLOSE)[keyof typeof CLOSE]> = { expired: CLOSE.unauthorized, silent: CLOSE.noPing, full: CLOSE.unavailable, tooLarge: CLOSE.tooLarge, flooding: CLOSE.rateLimited };

export class ChannelSockets implements Dialect {
  readonly kind = "channel";
  /** Connect lines in full up to 20 a second; a storm of connects is summed up in one line. */
  private readonly connectLog = new LogBudget("connect", 20, ["channel"]);

  /** Long replays, page by page, as each socket reads them. */
  private readonly pages: ReplayPages;

  /** `channel`: the one channel this object's single sockets are of (null: it holds none). */
  constructor(
    private readonly host: DialectHost,
    private readonly channel: string | null,
  ) {
    const { replays, sockets } = host;
    this.pages = new ReplayPages({
      inTurn: (ch, step) => replays.inTurn(ch, step),
      page: (ch, after, epoch) => replays.page(ch, after, epoch),
      delivery: () => host.delivery,
      socketOf: (_ch, cid) => sockets.byCid(cid),
      frames: {
        msg: (ch, m, epoch) => msgOut(ch, m, epoch),
        more: (_ch, seq) => out({ t: "more", seq }),
        reset: (_ch, seq, epoch) => out({ t: "reset", seq, epoch }),
      },
      endSlow: (ws, state) => host.end(ws, state, "full", `replay page not read within ${LIMITS.replayAckMs / 1000} s; resume from the last seq received`),
    });
  }

  /**
   * Accepts a socket and sends its welcome, then its replay (its first page, when it is long)
   * or a reset. Synchronous from accept to the last replayed frame: nothing can slip between
   * the replay and the live stream, so a resume has no gap and no duplicate. What is pending
   * goes out first, so this socket's replay cannot also come in a later batch.
   */
  accept(connect: ConnectRequest, welcome: { seq: number; epoch: string }, opening: Opening, extra: Partial<SocketState> = {}): { server: WebSocket; client: WebSocket; state: SocketState } {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const { channel, identity, transport, batch } = connect;
    const state = newState({ ch: channel, tr: transport, sub: identity.sub, pub: identity.canPublish, exp: identity.exp, info: identity.info, ...extra });
    if (batch) state.b = true;
    const { delivery, sockets } = this.host;
    delivery.flush();
    sockets.accept(server, state);
    const send = (frame: Out) => delivery.to(server, state, frame);
    send(out({ t: "welcome", v: PROTOCOL_VERSION, ch: channel, cid: state.cid, seq: welcome.seq, epoch: welcome.epoch }));
    if (opening.reset) send(out({ t: "reset", seq: welcome.seq, epoch: welcome.epoch }));
    else for (const frame of openingOuts(channel, opening.messages, welcome.epoch, `${welcome.epoch}:${welcome.seq}`)) send(frame);
    if (!opening.reset && opening.more) this.pages.begin(server, state, channel, opening.messages.at(-1)!.seq, welcome.epoch);
    const replay = opening.reset ? { replayed: 0, reset: true } : { replayed: opening.messages.length, reset: false };
    this.connectLog.log({ channel, cid: state.cid, transport, sub: state.sub, since: connect.start.cursor?.seq, ...replay, sockets: sockets.count() });
    return { server, client, state };
  }

  /** A socket of this object at MAX_SOCKETS: accepted only to be told so (4503) and closed. */
  refuseFull({ transport }: ConnectRequest): Response {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    server.accept();
    this.host.delivery.close(server, transport, CLOSE.unavailable, "room is full, retry later");
    return new Response(null, { status: 101, webSocket: client });
  }

  render(event: ChannelEvent): Out | null {
    return render(event);
  }

  membersFrame(list: MemberList): Out {
    return out({ t: "members", ...list });
  }

  deliver(event: ChannelEvent, skip: string | null): number {
    if (event.ch !== this.channel) return 0;
    if (event.t === "reset") this.pages.dropChannel(event.ch); // live after the reset: replays end
    const { delivery, sockets } = this.host;
    const frame = render(event);
    return frame === null ? 0 : delivery.toAll(frame, skip === null ? null : sockets.byCid(skip));
  }

  count(channel: string): number {
    if (channel !== this.channel) return 0;
    return this.host.sockets.countOf("ws") + this.host.sockets.countOf("sse");
  }

  channelsOf(state: SocketState): string[] {
    return [state.ch];
  }

  gone(_ws: WebSocket, state: SocketState): void {
    this.pages.drop(state.cid, state.ch);
  }

  end(ws: WebSocket, state: SocketState, why: Ending, message: string): void {
    this.host.delivery.close(ws, state.tr, ENDINGS[why], message);
  }

  async onFrame(ws: WebSocket, state: SocketState, message: string | ArrayBuffer): Promise<void> {
    const { delivery } = this.host;
    const max = this.host.config(state.ch).maxMessageBytes;
    if (typeof message !== "string") return void delivery.to(ws, state, out(new ServiceError("bad_frame", "binary frames are not supported; send JSON text").toFrame()));
    if (overLimit(message, max)) return this.host.end(ws, state, "tooLarge", `frame over MAX_MESSAGE_BYTES (${max})`);
    try {
      const frame = parseClientFrame(message);
      switch (frame.t) {
        case "pub": {
          if (frame.ch !== null && frame.ch !== state.ch) throw new ServiceError("bad_frame", `this socket is subscribed to ${state.ch}, not ${frame.ch}`, frame.input.id);
          const result = await this.host.publishFromSocket(ws, state, state.ch, state, frame.input);
          if (result !== null) delivery.to(ws, state, out({ t: "ack", id: result.id, seq: result.seq, duplicate: result.duplicate, ...(result.ref === undefined ? {} : { ref: result.ref }) } satisfies ServerFrame));
          return;
        }
        case "auth":
          return await this.reauthenticate(ws, state, frame.token);
        case "more":
          return await this.pages.more(state, state.ch);
        default:
          return; // unknown types are ignored: newer clients may send them
      }
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      delivery.to(ws, state, out(err.toFrame()));
    }
  }

  private async reauthenticate(ws: WebSocket, state: SocketState, token: string): Promise<void> {
    const env = this.host.bindings;
    const claims = await verifyToken(env, token);
    checkChannelGrant(env, state.ch, claims);
    // A socket that speaks for a user goes on only with a token for that user: one with no sub
    // would keep the user's name (publishes, presence) past the grant it was opened with.
    if (state.sub !== null && claims.sub !== state.sub) {
      throw new ServiceError("forbidden", "a fresh token must be for the same sub");
    }
    // The grant lives as long as this token, also on a socket that connected without one.
    if (state.exp === null) this.host.sockets.expiresLater(ws, state.cid);
    state.exp = claims.exp;
    state.pub = mayPublish(env, claims, state.ch);
    if (state.sub === null && claims.sub !== undefined) state.sub = claims.sub;
    this.host.sockets.save(ws, state);
    await this.host.alarms.by(claims.exp * 1000);
  }
}
