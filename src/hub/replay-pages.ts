// Long replays, a page at a time (DESIGN v1.3 "Bounded memory"). The runtime reports no send
// backlog (it has no bufferedAmount), so a socket that asks `?since=0` of a big log and never
// reads would have the whole log queued in this object's memory. Instead a socket gets one page
// (LIMITS.replayPageFrames messages, about LIMITS.replayPageBytes) and a `more` frame, and the
// next page only when it answers `{"t":"more"}`, which it can only do once it has read the page.
// Live messages skip it meanwhile (Delivery.hold): they are in the log, and its last page reads
// up to the head, after which it is live again. A page not asked past in LIMITS.replayAckMs ends
// the socket; its client resumes from the cursor it reached. The pending timers also keep the
// object awake (not hibernated) while a replay is under way, so the hold is never lost.
import { LIMITS, type Cursor } from "../protocol/index.js";
import { cutToPage, type LoggedMessage, type Opening } from "../rpc.js";
import type { Delivery } from "../connections/delivery.js";
import { msgOut, out } from "../connections/outgoing.js";
import type { SocketState } from "../connections/sockets.js";

/** What paging needs of its hub. */
export interface PageSource {
  readonly channel: string;
  readonly delivery: Delivery;
  /** A page's worth of messages after a cursor (PAGE_READ, reading little past a page's bytes), or a reset. */
  since(cursor: Cursor): { reset: true } | { reset: false; messages: LoggedMessage[] };
  head(): { seq: number; epoch: string };
  /** Ends a socket that stopped taking its replay (4503). */
  endSlow(ws: WebSocket, state: SocketState): void;
  /** A socket's replay is done: it is live from here (a presence socket gets the members again). */
  done(ws: WebSocket, state: SocketState): void;
}

/**
 * The first page of what a cursor or a rewind gets (read with one message more than a page):
 * `more` when the rest waits for the client.
 */
export function firstPage(messages: LoggedMessage[]): Opening {
  return cutToPage(messages) ? { reset: false, messages, more: true } : { reset: false, messages };
}

/** How many messages to read for one page: one more than fits, to learn whether there is more. */
export const PAGE_READ = LIMITS.replayPageFrames + 1;

export class ReplayPages {
  /** Sockets waiting to be asked for their next page: where they are, and their deadline. */
  private readonly waiting = new Map<WebSocket, { after: number; epoch: string; timer: ReturnType<typeof setTimeout> }>();

  constructor(private readonly hub: PageSource) {}

  get size(): number {
    return this.waiting.size;
  }

  /** A socket was sent its first page (ending at `after`): hold its live messages, tell it there is more. */
  begin(ws: WebSocket, state: SocketState, after: number): void {
    this.hub.delivery.hold(ws);
    this.ask(ws, state, after, this.hub.head().epoch);
  }

  /** The socket read its page (`{"t":"more"}`): its next page, or the end of its replay. */
  more(ws: WebSocket, state: SocketState): void {
    const w = this.waiting.get(ws);
    if (w === undefined) return; // no replay under way: nothing to send
    clearTimeout(w.timer);
    this.waiting.delete(ws);
    const { delivery, channel } = this.hub;
    // What is pending for the room is in the log already: this socket takes it from there.
    delivery.flush();
    const head = this.hub.head();
    const page = w.epoch === head.epoch ? this.hub.since({ seq: w.after, epoch: w.epoch }) : { reset: true as const };
    if (page.reset) {
      this.finish(ws, state);
      delivery.to(ws, state, out({ t: "reset", seq: head.seq, epoch: head.epoch }));
      return;
    }
    const cut = cutToPage(page.messages);
    for (const m of page.messages) if (m.skip !== state.cid) delivery.to(ws, state, msgOut(channel, m, head.epoch));
    if (!cut) return this.finish(ws, state); // it read up to the head: live from here
    this.ask(ws, state, page.messages.at(-1)!.seq, head.epoch);
  }

  /** A socket went (or the log was purged and every socket gets a reset): drop its replay. */
  drop(ws: WebSocket): void {
    const w = this.waiting.get(ws);
    if (w !== undefined) clearTimeout(w.timer);
    this.waiting.delete(ws);
    this.hub.delivery.release(ws);
  }

  /** The log was purged: every replay ends (each socket gets the purge's reset, live after it). */
  dropAll(): void {
    for (const ws of [...this.waiting.keys()]) this.drop(ws);
  }

  private ask(ws: WebSocket, state: SocketState, after: number, epoch: string): void {
    this.hub.delivery.to(ws, state, out({ t: "more", seq: after }));
    const timer = setTimeout(() => {
      this.drop(ws);
      this.hub.endSlow(ws, state);
    }, LIMITS.replayAckMs);
    this.waiting.set(ws, { after, epoch, timer });
  }

  private finish(ws: WebSocket, state: SocketState): void {
    this.hub.delivery.release(ws);
    this.hub.done(ws, state);
  }
}
