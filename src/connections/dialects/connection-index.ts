// Connections on an edge that name their channels in their frames (`GET /v1/ws`, DESIGN.md "Edges
// → Multiplexed connections", and Pusher's `GET /app/:key`): which of them are subscribed to
// which channel, one index per dialect. Tags cannot change after a socket is accepted, so the
// subscriptions live in each socket's attachment and this index is rebuilt from them once per
// wake. Each channel gets its own Delivery, so its frames keep their order and coalesce into
// batch frames per channel; it is made only for a channel a connection is subscribed to.
import { ServiceError } from "../../server/service-error.js";
import { Delivery, sendEach } from "../delivery.js";
import { DueQueue } from "../due-queue.js";
import type { ConnectionTag, MuxSub, SocketState, Sockets } from "../sockets.js";
import type { Dialect } from "./dialect.js";
import { stateOf } from "../sockets.js";

export class ConnectionIndex {
  /** Channel → connection id → socket (keyed by cid: the runtime may hand out a new wrapper per event). */
  private index: Map<string, Map<string, WebSocket>> | null = null;
  private readonly deliveries = new Map<string, Delivery>();
  /** Token expiries of subscriptions, by (cid, channel). */
  private readonly expiries = new DueQueue<{ cid: string; ch: string }>(
    () => this.everySub().flatMap(([state, ch, sub]) => (sub.exp === null ? [] : [{ at: sub.exp * 1000, key: { cid: state.cid, ch } }])),
    ({ cid, ch }) => `${cid}\n${ch}`,
  );
  /** When connections with no subscription count as idle since (see SocketState.idle), by cid. */
  private readonly idlers = new DueQueue<string>(() =>
    this.sockets
      .connections(this.tag)
      .map(stateOf)
      .flatMap((state) => (state?.idle === undefined ? [] : [{ at: state.idle, key: state.cid }])),
  );

  constructor(
    private readonly sockets: Sockets,
    private readonly tag: ConnectionTag,
  ) {}

  private built(): Map<string, Map<string, WebSocket>> {
    if (this.index === null) {
      this.index = new Map();
      for (const ws of this.sockets.connections(this.tag)) {
        const state = stateOf(ws);
        for (const ch of Object.keys(state?.subs ?? {})) this.entry(ch).set(state!.cid, ws);
      }
    }
    return this.index;
  }

  private entry(channel: string): Map<string, WebSocket> {
    const index = this.index!;
    let set = index.get(channel);
    if (set === undefined) index.set(channel, (set = new Map()));
    return set;
  }

  of(channel: string): WebSocket[] {
    return [...(this.built().get(channel)?.values() ?? [])];
  }

  count(channel: string): number {
    return this.built().get(channel)?.size ?? 0;
  }

  /** One text to every connection on a channel but `except` (a cid), each as it is: no coalescing. */
  sendAll(channel: string, text: string, except: string | null): number {
    return sendEach(this.of(channel), text, this.byCid(channel, except));
  }

  /** The connection `cid` when it is subscribed to `channel`. */
  byCid(channel: string, cid: string | null): WebSocket | null {
    return cid === null ? null : (this.built().get(channel)?.get(cid) ?? null);
  }

  /** The delivery of one channel to the connections subscribed to it (always in batch frames). */
  delivery(channel: string): Delivery {
    let d = this.deliveries.get(channel);
    if (d === undefined) {
      d = new Delivery({ group: (g) => (g === "wb" ? this.of(channel) : []) });
      this.deliveries.set(channel, d);
    }
    return d;
  }

  /**
   * Adds a channel to a connection. The attachment is read afresh and written back with no await
   * between: `sub` frames are handled concurrently, and each handler's copy of the state may be
   * older than another's write. An attachment past the runtime's 16 KiB is refused (too_large),
   * and nothing of the channel is kept.
   */
  add(ws: WebSocket, channel: string, sub: MuxSub): void {
    const state = stateOf(ws)!;
    (state.subs ??= {})[channel] = sub;
    delete state.idle;
    try {
      this.sockets.save(ws, state);
    } catch (err) {
      throw new ServiceError("too_large", `this connection holds as many channels as fit its state (${Object.keys(state.subs).length - 1}); unsubscribe from some first`, undefined, { cause: err });
    }
    this.built();
    this.entry(channel).set(state.cid, ws);
    this.idlers.delete(state.cid);
    if (sub.exp !== null) this.expiries.add(sub.exp * 1000, { cid: state.cid, ch: channel });
    else this.expiries.delete({ cid: state.cid, ch: channel });
  }

  remove(ws: WebSocket, channel: string): void {
    const state = stateOf(ws)!;
    if (state.subs !== undefined) delete state.subs[channel];
    // A multiplexed connection left with no subscription starts counting as idle.
    if (!state.pz && Object.keys(state.subs ?? {}).length === 0) {
      state.idle = Date.now();
      this.idlers.add(state.idle, state.cid);
    }
    this.sockets.save(ws, state);
    this.built().get(channel)?.delete(state.cid);
    this.expiries.delete({ cid: state.cid, ch: channel });
  }

  /** The connection's subscriptions as stored now. */
  subsOf(ws: WebSocket): Record<string, MuxSub> {
    return stateOf(ws)?.subs ?? {};
  }

  /** A connection is gone: it leaves every channel's index. */
  drop(state: SocketState): void {
    for (const ch of Object.keys(state.subs ?? {})) {
      this.built().get(ch)?.delete(state.cid);
      this.expiries.delete({ cid: state.cid, ch });
    }
    this.idlers.delete(state.cid);
  }

  /** Deadlines kept (expiries, idle connections): no more than live subscriptions and connections. */
  get deadlines(): { expiries: number; idlers: number } {
    return { expiries: this.expiries.size, idlers: this.idlers.size };
  }

  /** The edge no longer serves a channel: its delivery and index entry go. */
  forget(channel: string): void {
    this.deliveries.get(channel)?.flush();
    this.deliveries.delete(channel);
    if (this.index?.get(channel)?.size === 0) this.index.delete(channel);
  }

  private everySub(): [SocketState, string, MuxSub][] {
    return this.sockets.connections(this.tag).flatMap((ws) => {
      const state = stateOf(ws);
      return state === null ? [] : Object.entries(state.subs ?? {}).map(([ch, sub]) => [state, ch, sub] as [SocketState, string, MuxSub]);
    });
  }

  /** Subscriptions whose token expired by `now` (as their attachment holds them now), and the next expiry. */
  expired(now: number): { due: [WebSocket, SocketState, string][]; next: number | null } {
    const due: [WebSocket, SocketState, string][] = [];
    for (const { at, key } of this.expiries.due(now)) {
      const ws = this.sockets.byCid(key.cid);
      const state = ws === null ? null : stateOf(ws);
      if (ws !== null && state !== null && state.subs?.[key.ch]?.exp != null && state.subs[key.ch]!.exp! * 1000 === at) due.push([ws, state, key.ch]);
    }
    return { due, next: this.expiries.next() };
  }

  /** A new connection with no subscription yet counts as idle from `at`. */
  idleSince(cid: string, at: number): void {
    this.idlers.add(at, cid);
  }

  /** Connections idle since `before` or earlier, still idle since then; and the next one's start. */
  idleBefore(before: number): { due: [WebSocket, SocketState][]; next: number | null } {
    const due: [WebSocket, SocketState][] = [];
    for (const { at, key } of this.idlers.due(before)) {
      const ws = this.sockets.byCid(key);
      const state = ws === null ? null : stateOf(ws);
      if (ws !== null && state?.idle === at) due.push([ws, state]);
    }
    return { due, next: this.idlers.next() };
  }
}

/**
 * What the dialects of connections that name their channels (`/v1/ws`, Pusher) share: their
 * subscribers are this index's, by channel.
 */
export abstract class IndexedConnections implements Pick<Dialect, "count" | "channelsOf" | "gone"> {
  readonly index: ConnectionIndex;

  constructor(sockets: Sockets, tag: ConnectionTag) {
    this.index = new ConnectionIndex(sockets, tag);
  }

  count(channel: string): number {
    return this.index.count(channel);
  }

  channelsOf(state: SocketState): string[] {
    return Object.keys(state.subs ?? {});
  }

  gone(_ws: WebSocket, state: SocketState): void {
    this.index.drop(state);
  }

  /** The edge no longer serves a channel: what the index keeps for it goes. */
  dropChannel(channel: string): void {
    this.index.forget(channel);
  }
}
