// The hub's one publish path (DESIGN v1.3 "Layout"): every surface — HTTP publish and batch,
// Pusher's HTTP API, socket `pub` here or forwarded by an edge, Pusher client events — comes in
// through `publish(input, options)`, which records the message, then delivers it to the hub's
// own sockets and pushes it to the channel's edges, with no await in between.
import type { LoggedMessage, PublishAnswer, PublishInput, PublishOptions } from "../rpc.js";
import type { PublishRate } from "../connections/rate-limit.js";
import type { ChannelEvent } from "../connections/dialects/dialect.js";
import { log } from "../server/log.js";
import { count } from "../server/metrics.js";
import type { Env } from "../env.js";
import { pusherData } from "../pusher/frames.js";
import type { EdgeLinks } from "./edge-links.js";
import type { GrowthLimits, ReplayLog } from "./replay-log.js";
import type { WebhookEvent } from "./webhooks.js";

/** What publishing needs of its hub. */
export interface PublishSide {
  readonly channel: string;
  readonly bindings: Env;
  readonly log: ReplayLog;
  readonly edges: EdgeLinks;
  /** One event to the hub's own sockets but connection `skip`; answers how many. */
  fanOut(event: ChannelEvent, skip: string | null): number;
  /** One webhook outbox row, in the caller's step. */
  webhook(event: WebhookEvent): void;
  /** Publishes per token (its scope) per second, for HTTP publishes made with a token. */
  readonly tokenRate: PublishRate;
  /** The channel's `clientPubPerS`. */
  readonly clientPubPerS: number;
  /** How far one message may grow by appends (MAX_MESSAGE_BYTES, APPENDS_MAX). */
  readonly growthLimits: GrowthLimits;
  /** Why this channel takes no appends (a Durable Stream's messages do not grow), or null. */
  noAppends(): string | null;
}

/**
 * Refuses what no publisher may do however it came in: an HTTP publish with a token over the
 * channel's clientPubPerS (per token `sub`, as a socket is limited per socket; the publish key is
 * not limited). Answers the refusal, or null to go on.
 */
export function refusal(hub: PublishSide, options: PublishOptions, count = 1): PublishAnswer | null {
  const scope = options.scope ?? "";
  if (options.by !== "origin" || scope === "") return null;
  for (let i = 0; i < count; i++) {
    if (hub.tokenRate.take(scope, hub.clientPubPerS) !== "ok") return { refused: { code: "rate_limited", message: `at most ${hub.clientPubPerS} publishes per second with one token (clientPubPerS)` } };
  }
  return null;
}

/**
 * Record, then deliver, with no await between: no subscriber can be accepted between the log
 * write and the send (it would get the message twice or not at all). The runtime's output gate
 * holds both the sends and the answer until the row is durable. A client's publish is told to
 * the webhook in the same step as its log row.
 */
export function publish(hub: PublishSide, input: PublishInput, options: PublishOptions): PublishAnswer {
  if (input.append !== undefined) return append(hub, input, options);
  const { channel } = hub;
  const recorded = hub.log.record(channel, input, options.sender, Date.now(), options.scope ?? "", options.exclude);
  if (recorded.duplicate) {
    log("publish", { channel, seq: recorded.seq, duplicate: true });
    return { seq: recorded.seq, id: input.id, delivered: 0, duplicate: true };
  }
  const m = recorded.message;
  const delivered = deliver(hub, m, options.exclude);
  if (options.by === "client") {
    const who = { ...(options.sender === null ? {} : { user_id: options.sender }), ...(options.exclude === null ? {} : { socket_id: options.exclude }) };
    hub.webhook({ name: "client_event", channel, event: input.event, data: pusherData(input.data), ...who });
  }
  log("publish", { channel, seq: m.seq, delivered, bytes: m.data.length, sub: options.sender });
  return { seq: m.seq, id: m.id, delivered, duplicate: false };
}

/**
 * An append (DESIGN v1.3 "Appends"): recorded as its own log entry, then delivered like a
 * message, with no await in between. Refused as the log says (404, 400, 409, 413).
 */
function append(hub: PublishSide, input: PublishInput, options: PublishOptions): PublishAnswer {
  const { channel } = hub;
  const why = hub.noAppends();
  if (why !== null) return { refused: { code: "conflict", message: why } };
  const grown = hub.log.grow(channel, input, options.sender, Date.now(), options.scope ?? "", options.exclude, hub.growthLimits);
  if ("refused" in grown) return grown;
  if (grown.duplicate) {
    log("append", { channel, seq: grown.seq, duplicate: true });
    return { seq: grown.seq, id: input.id, ref: grown.ref!, delivered: 0, duplicate: true };
  }
  const m = grown.message;
  const delivered = deliver(hub, m, options.exclude);
  log("append", { channel, seq: m.seq, ref: m.ref, delivered, bytes: m.data.length, sub: options.sender, done: m.done });
  return { seq: m.seq, id: m.id, ref: m.ref!, delivered, duplicate: false };
}

/**
 * Delivers a recorded message to the hub's own sockets and pushes it to the channel's edges,
 * skipping connection `exclude` (a cid or Pusher socket id) wherever it is held.
 */
export function deliver(hub: PublishSide, m: LoggedMessage, exclude: string | null): number {
  const { channel, log: replayLog } = hub;
  const delivered = hub.fanOut({ t: "msg", ch: channel, epoch: replayLog.epoch, m }, exclude);
  hub.edges.push(channel, replayLog.epoch, m);
  count(hub.bindings, channel, "publish");
  count(hub.bindings, channel, "delivered", delivered);
  return delivered;
}
