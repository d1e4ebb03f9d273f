// Long replays, a page at a time (DESIGN v1.3 "Bounded memory"). The runtime reports no send
// backlog (it has no bufferedAmount), so a socket that asks `?since=0` of a big log and never
// reads would have the whole log queued in the object's memory. Instead a subscription gets one
// page (LIMITS.replayPageFrames messages, about LIMITS.replayPageBytes) and a `more` frame, and
// the next page only when it answers `{"t":"more"}`, which it can only do once it has read the
// page. Live messages skip it meanwhile (Delivery.hold): they are in the log, and its last page
// reads up to the live position, after which it is live again. A page not asked past in
// LIMITS.replayAckMs ends the connection; its client resumes from the cursor it reached. The
// pending timers also keep the object awake (not hibernated) while a replay is under way, so
// the hold is never lost. A hub pages from its log; an edge from its tail, else its hub's log.
import { LIMITS } from "../protocol/index.js";
import { cutToPage, type LoggedMessage, type Opening } from "../rpc.js";
import type { Delivery } from "./delivery.js";
import type { Out } from "./outgoing.js";
import type { SocketState } from "./sockets.js";

/** One page after a cursor, ending at or before the live position (`more`: it is not there yet), or a reset. */
export type Page = { reset: true; seq: number; epoch: string } | { reset: false; messages: LoggedMessage[]; more: boolean };

/** Where a replay's pages come from (the object that holds the sockets). */
export interface LogReader {
  /** Runs a step where no live delivery of the channel can come between its read and its sends. */
  inTurn(channel: string, step: () => Promise<void>): Promise<void>;
  /** The page after `after` of `epoch`, ending at or before what live delivery has reached. */
  page(channel: string, after: number, epoch: string): Promise<Page>;
}

/** What paging needs of a dialect: its log reader, delivery, sockets and frames. */
export interface PageSource extends LogReader {
  /** The channel's delivery, and the socket as it knows it (the one to hold). */
  delivery(channel: string): Delivery;
  socketOf(channel: string, cid: string): WebSocket | null;
  /** The channel's frames in the socket's dialect. */
  frames: {
    msg(channel: string, m: LoggedMessage, epoch: string): Out;
    more(channel: string, seq: number): Out;
    reset(channel: string, seq: number, epoch: string): Out;
  };
  /** Ends a connection that stopped taking its replay (4503). */
  endSlow(ws: WebSocket, state: SocketState): void;
}

/**
 * The first page of what a cursor or a rewind gets (read with one message more than a page):
 * `more` when the rest waits for the client.
 */
export function firstPage(messages: LoggedMessage[]): Opening {
  return cutToPage(messages) ? { reset: false, messages, more: true } : { reset: false, messages };
}

/**
 * A rewind of messages some of which grew (each whole): one page, its newest messages that fit
 * (at least one). Its next page would be log entries after the last, which would add appends
 * to texts that already hold them.
 */
export function newestPage(messages: LoggedMessage[]): Opening {
  let bytes = 0;
  let from = messages.length;
  while (from > 0 && messages.length - from < LIMITS.replayPageFrames && (from === messages.length || bytes + messages[from - 1]!.data.length <= LIMITS.replayPageBytes)) bytes += messages[--from]!.data.length;
  return { reset: false, messages: messages.slice(from) };
}

/** How many messages to read for one page: one more than fits, to learn whether there is more. */
export const PAGE_READ = LIMITS.replayPageFrames + 1;

interface Waiting {
  ws: WebSocket;
  /** The socket as the channel's delivery holds it (released by this very object). */
  held: WebSocket;
  state: SocketState;
  channel: string;
  after: number;
  epoch: string;
  timer: ReturnType<typeof setTimeout>;
}

const keyOf = (cid: string, channel: string) => `${cid}\n${channel}`;

export class ReplayPages {
  /** Subscriptions waiting to be asked for their next page, by (cid, channel). */
  private readonly waiting = new Map<string, Waiting>();

  constructor(private readonly source: PageSource) {}

  /**
   * A subscription was sent its first page, ending at `after`: hold its live messages and tell
   * it there is more. Call it right after the page, with no await between.
   */
  begin(ws: WebSocket, state: SocketState, channel: string, after: number, epoch: string): void {
    const held = this.source.socketOf(channel, state.cid) ?? ws;
    this.source.delivery(channel).hold(held);
    this.ask({ ws, held, state, channel, after, epoch });
  }

  /** The client read its page (`{"t":"more"}`): the next page, or the end of its replay. */
  more(state: SocketState, channel: string): Promise<void> {
    const w = this.waiting.get(keyOf(state.cid, channel));
    if (w === undefined) return Promise.resolve(); // no replay under way: nothing to send
    clearTimeout(w.timer);
    this.waiting.delete(keyOf(state.cid, channel));
    return this.source.inTurn(channel, async () => {
      const { source } = this;
      const page = await source.page(channel, w.after, w.epoch);
      const delivery = source.delivery(channel);
      const ws = source.socketOf(channel, state.cid);
      if (ws === null) return delivery.release(w.held); // gone (or unsubscribed) meanwhile
      // What is pending for the channel is in the log already: this socket reads it from there.
      delivery.flush();
      if (page.reset) {
        delivery.release(w.held);
        delivery.to(ws, state, source.frames.reset(channel, page.seq, page.epoch));
        return;
      }
      for (const m of page.messages) if (m.skip !== state.cid) delivery.to(ws, state, source.frames.msg(channel, m, w.epoch));
      if (!page.more) return delivery.release(w.held); // at the live position: live from here
      this.ask({ ...w, ws, after: page.messages.at(-1)?.seq ?? w.after });
    });
  }

  /** A subscription ended (unsubscribed, or its socket went): its replay goes. */
  drop(cid: string, channel: string): void {
    const w = this.waiting.get(keyOf(cid, channel));
    if (w === undefined) return;
    clearTimeout(w.timer);
    this.waiting.delete(keyOf(cid, channel));
    this.source.delivery(channel).release(w.held);
  }

  /** A connection went: every replay of its. */
  dropConnection(cid: string): void {
    for (const w of [...this.waiting.values()]) if (w.state.cid === cid) this.drop(cid, w.channel);
  }

  /** The channel was reset (a purge): every replay of it ends; each socket got the reset, live after it. */
  dropChannel(channel: string): void {
    for (const w of [...this.waiting.values()]) if (w.channel === channel) this.drop(w.state.cid, channel);
  }

  private ask(w: Omit<Waiting, "timer">): void {
    this.source.delivery(w.channel).to(w.ws, w.state, this.source.frames.more(w.channel, w.after));
    const timer = setTimeout(() => {
      this.dropConnection(w.state.cid);
      this.source.endSlow(w.ws, w.state);
    }, LIMITS.replayAckMs);
    this.waiting.set(keyOf(w.state.cid, w.channel), { ...w, timer });
  }
}
