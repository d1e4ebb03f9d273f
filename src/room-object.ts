import { DurableObject } from "cloudflare:workers";
import { grants, needsToken, verifyToken, type Identity } from "./auth";
import { configFor, type ChannelConfig, type Env } from "./config";
import type { Start } from "./cursor";
import { ApiError } from "./errors";
import { deliver, send } from "./fanout";
import {
  errFrame,
  frame,
  InvalidInput,
  msgFrame,
  parseClientFrame,
  PROTOCOL_VERSION,
  type PublishInput,
  type PublishResult,
} from "./protocol";
import { ReplayLog, type Retention } from "./replay-log";

/** How the Worker asks the room to take a socket. Only the Worker can reach the room. */
export interface ConnectRequest {
  channel: string;
  identity: Identity;
  start: Start;
}

const CONNECT_HEADER = "x-hibercast-connect";

/** Builds the internal upgrade request; the client's own headers never reach the room. */
export function connectRequest(connect: ConnectRequest): Request {
  return new Request("https://room.internal/connect", {
    headers: { Upgrade: "websocket", [CONNECT_HEADER]: JSON.stringify(connect) },
  });
}

/** Per-socket state, kept in the socket's attachment so it survives hibernation. */
interface SocketState {
  cid: string;
  ch: string;
  sub: string | null;
  pub: boolean;
  exp: number | null;
  info: string | null;
}

export interface RoomStats {
  channel: string;
  subscribers: number;
  seq: number;
  epoch: string | null;
  log: { count: number; oldestSeq: number | null };
}

/** Close codes the room uses (4000 + the HTTP status the refusal would have had). */
const CLOSE_TOO_BIG = 1009;
const CLOSE_RATE_LIMITED = 4429;
const CLOSE_FULL = 4503;

const retentionOf = (c: ChannelConfig): Retention => ({
  maxMessages: c.logMaxMessages,
  maxAgeS: c.logMaxAgeS,
  dedupeWindowS: c.dedupeWindowS,
});

function newCid(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

const encoder = new TextEncoder();
function byteLength(s: string): number {
  // Cheap upper bound first: most frames are far below the limit.
  return s.length * 3 <= 65536 ? s.length * 3 : encoder.encode(s).byteLength;
}

/**
 * One room per channel. Reads top to bottom as its lifecycle: accept a socket (welcome, then
 * replay), take its messages, close it, publish to everyone, and keep the log trimmed.
 *
 * Nothing that must survive hibernation lives in memory: sockets and their state are held by
 * the runtime (tags + attachments), the log by SQLite; fields here are caches rebuilt on wake.
 */
export class RoomObject extends DurableObject<Env> {
  private readonly log: ReplayLog;
  /** Pending alarm time: undefined until read from storage once per wake. */
  private alarmAt: number | null | undefined;
  /** Publishes per socket in the current second; losing this on hibernation is harmless. */
  private readonly pubRate = new Map<string, { window: number; count: number }>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.log = new ReplayLog(ctx.storage.sql, retentionOf(configFor(env, "")));
    this.log.retention = retentionOf(this.config(this.log.channelName));
    // Heartbeats are answered by the runtime without waking the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  private config(channel: string): ChannelConfig {
    return configFor(this.env, channel);
  }

  // ---- accept ------------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const raw = request.headers.get(CONNECT_HEADER);
    if (raw === null || request.headers.get("upgrade") !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    const { channel, identity, start } = JSON.parse(raw) as ConnectRequest;
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];

    if (this.ctx.getWebSockets().length >= this.config(channel).maxSockets) {
      server.accept();
      send(server, errFrame("unavailable", "room is full, retry later"));
      server.close(CLOSE_FULL, "room is full");
      return new Response(null, { status: 101, webSocket: client });
    }

    const state: SocketState = { cid: newCid(), ch: channel, sub: identity.sub, pub: identity.canPublish, exp: identity.exp, info: identity.info };
    this.ctx.acceptWebSocket(server, [`c:${state.cid}`]);
    server.serializeAttachment(state);
    // No await from here to the last replayed frame: a publish cannot slip between the
    // replay and the live stream, so a resume has no gap and no duplicate.
    this.sendStart(server, state, start);
    return new Response(null, { status: 101, webSocket: client });
  }

  private sendStart(ws: WebSocket, state: SocketState, start: Start): void {
    const now = Date.now();
    const log = this.log;
    send(ws, frame({ t: "welcome", v: PROTOCOL_VERSION, ch: state.ch, cid: state.cid, seq: log.lastSeq, epoch: log.epoch }));
    if (start.cursor !== null) {
      const replay = log.since(start.cursor, now);
      if (replay.reset) {
        send(ws, frame({ t: "reset", seq: log.lastSeq, epoch: log.epoch }));
        return;
      }
      for (const m of replay.messages) send(ws, msgFrame(state.ch, m));
    } else if (start.rewind > 0) {
      for (const m of log.last(start.rewind, now)) send(ws, msgFrame(state.ch, m));
    }
  }

  // ---- message -----------------------------------------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = ws.deserializeAttachment() as SocketState | null;
    if (state === null) return;
    const config = this.config(state.ch);
    if (typeof message !== "string") {
      send(ws, errFrame("bad_frame", "binary frames are not supported; send JSON text"));
      return;
    }
    if (byteLength(message) > config.maxMessageBytes) {
      ws.close(CLOSE_TOO_BIG, "frame over MAX_MESSAGE_BYTES");
      return;
    }
    let parsed;
    try {
      parsed = parseClientFrame(message);
    } catch (err) {
      if (!(err instanceof InvalidInput)) throw err;
      send(ws, errFrame("bad_frame", err.message, err.id));
      return;
    }
    switch (parsed.t) {
      case "pub":
        return this.publishFromSocket(ws, state, config, parsed.input);
      case "auth":
        return this.reauthenticate(ws, state, parsed.token);
      default:
        return; // unknown types are ignored: newer clients may send them
    }
  }

  private async publishFromSocket(ws: WebSocket, state: SocketState, config: ChannelConfig, input: PublishInput): Promise<void> {
    if (!state.pub) {
      send(ws, errFrame("forbidden", "this connection may not publish here", input.id));
      return;
    }
    const second = Math.floor(Date.now() / 1000);
    const rate = this.pubRate.get(state.cid);
    if (rate === undefined || rate.window !== second) {
      this.pubRate.set(state.cid, { window: second, count: 1 });
    } else if (++rate.count > config.clientPubPerS) {
      // One warning per second's overflow; a client that keeps going is cut off.
      if (rate.count > 2 * config.clientPubPerS) ws.close(CLOSE_RATE_LIMITED, "publish rate limit exceeded");
      else send(ws, errFrame("rate_limited", `at most ${config.clientPubPerS} publishes per second`, input.id));
      return;
    }
    const result = this.publishNow(state.ch, input, state.sub, null);
    send(ws, frame({ t: "ack", id: result.id, seq: result.seq, duplicate: result.duplicate }));
    await this.scheduleTrim();
  }

  private async reauthenticate(ws: WebSocket, state: SocketState, token: string): Promise<void> {
    try {
      const claims = await verifyToken(this.env, token);
      if (needsToken(this.env, state.ch) && !grants(claims.ch, state.ch)) {
        throw new ApiError("forbidden", `token does not grant channel ${state.ch}`);
      }
      if (claims.sub !== undefined && state.sub !== null && claims.sub !== state.sub) {
        throw new ApiError("forbidden", "a fresh token must be for the same sub");
      }
      state.exp = claims.exp;
      state.pub = grants(claims.pub, state.ch);
      ws.serializeAttachment(state);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      send(ws, errFrame(err.code, err.message));
    }
  }

  // ---- close -------------------------------------------------------------------------------

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.forget(ws);
    try {
      // Reserved codes (1005, 1006, ...) cannot be sent back; echo only what may be sent.
      ws.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, reason);
    } catch {
      // already closed
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.forget(ws);
  }

  private forget(ws: WebSocket): void {
    try {
      const state = ws.deserializeAttachment() as SocketState | null;
      if (state) this.pubRate.delete(state.cid);
    } catch {
      // a socket without readable state has nothing to clean up
    }
  }

  // ---- publish -----------------------------------------------------------------------------

  /** Publish from the Worker (HTTP). The input is already validated there. */
  async publish(channel: string, input: PublishInput, sender: string | null, exclude: string | null): Promise<PublishResult> {
    const skip = exclude === null ? null : (this.ctx.getWebSockets(`c:${exclude}`)[0] ?? null);
    const result = this.publishNow(channel, input, sender, skip);
    await this.scheduleTrim();
    return result;
  }

  /**
   * Dedupe, append, fan out: synchronous, so no subscriber can be accepted between the log
   * write and the send (it would get the message twice or not at all). The runtime's output
   * gate holds both the sends and the answer until the row is durable.
   */
  private publishNow(channel: string, input: PublishInput, sender: string | null, exclude: WebSocket | null): PublishResult {
    const now = Date.now();
    const seen = this.log.findId(input.id, now);
    if (seen !== null) return { seq: seen, id: input.id, delivered: 0, duplicate: true };
    const m = this.log.append(channel, input, sender, now);
    const delivered = deliver(this.ctx.getWebSockets(), msgFrame(channel, m), exclude);
    return { seq: m.seq, id: m.id, delivered, duplicate: false };
  }

  // ---- stats -------------------------------------------------------------------------------

  async stats(channel: string): Promise<RoomStats> {
    return {
      channel,
      subscribers: this.ctx.getWebSockets().length,
      seq: this.log.lastSeq,
      epoch: this.log.epoch,
      log: this.log.stats(Date.now()),
    };
  }

  // ---- retention ---------------------------------------------------------------------------

  /** Sets the alarm only when none is pending; reads storage once per wake. */
  private async scheduleTrim(): Promise<void> {
    this.alarmAt ??= await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null) return;
    const next = this.log.trim(Date.now());
    if (next === null) return;
    this.alarmAt = next;
    await this.ctx.storage.setAlarm(next);
  }

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    await this.scheduleTrim();
  }
}
