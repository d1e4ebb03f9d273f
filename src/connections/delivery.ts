// Every frame a room sends goes through here: to one socket, or delivered to all of them, with
// the frames of a burst coalesced (DESIGN.md "Bursts"). One object is bound by WebSocket sends,
// not bytes, so frames that pile up while a flush is pending go out as one `batch` frame to the
// sockets that opted in (`?batch=1`) and as one write of several events to SSE streams.
import type { CloseCode } from "../protocol/index.js";
import { LIMITS } from "../protocol/index.js";
import { ServiceError } from "../server/service-error.js";
import { isEntry, joinAppends, out, sseEvent, type Out } from "./outgoing.js";
import type { Group, SocketState, Transport } from "./sockets.js";

/** The sockets a Delivery sends to, by group: all of an object's, or one channel's on a connection edge. */
export interface SocketSource {
  group(group: Group): WebSocket[];
  count(): number;
}

/** Sends one frame to one socket. A socket that fails to take it is skipped: its close handler cleans up. */
function sendTo(ws: WebSocket, transport: Transport, frame: Out): boolean {
  try {
    ws.send(transport === "sse" ? sseEvent(frame) : frame.json);
    return true;
  } catch {
    return false;
  }
}

const NONE: ReadonlySet<WebSocket> = new Set();

/** One text to each socket but `exclude` and those `held`; answers how many took it. */
export function sendEach(sockets: WebSocket[], text: string, exclude: WebSocket | null = null, held: ReadonlySet<WebSocket> = NONE): number {
  let sent = 0;
  for (const ws of sockets) {
    if (ws === exclude || (held.size > 0 && held.has(ws))) continue;
    try {
      ws.send(text);
      sent++;
    } catch {
      // closing socket: its close handler cleans up
    }
  }
  return sent;
}

/**
 * Packs frames into as few texts as the caps allow (LIMITS.batchFrames frames, LIMITS.batchBytes
 * of frames each): `wrap` turns a run of frames into one text; a run of one is sent as it is.
 */
function pack(frames: Out[], one: (f: Out) => string, wrap: (texts: string[]) => string): string[] {
  const texts: string[] = [];
  let run: string[] = [];
  let bytes = 0;
  const close = () => {
    if (run.length > 0) texts.push(run.length === 1 ? run[0]! : wrap(run));
    run = [];
    bytes = 0;
  };
  for (const f of frames) {
    const text = one(f);
    if (run.length > 0 && (run.length >= LIMITS.batchFrames || bytes + text.length > LIMITS.batchBytes)) close();
    run.push(text);
    bytes += text.length;
  }
  close();
  return texts;
}

/** The longest a flush window stays open. */
const MAX_WINDOW_MS = 40;
/**
 * How long a flush window stays open per socket of the room, in µs: about half of what one
 * WebSocket send costs an object all told (20-25k sends per second measured here). Tuned on the
 * fan-out bench: longer windows pack more under bursts but make a sequential publisher's
 * messages wait; at 20 µs a lone publisher's p99 stays at a raw object's (docs/benchmarks.md).
 */
const WINDOW_US_PER_SOCKET = 20;

const batchTexts = (frames: Out[]) => pack(frames, (f) => f.json, (jsons) => `{"t":"batch","f":[${jsons.join(",")}]}`);
const sseTexts = (frames: Out[]) => pack(frames, sseEvent, (events) => events.join(""));

/**
 * The room's outbound side. A frame for everyone goes out at once when no flush is pending (a
 * lone publish is never delayed) and opens a flush window; frames made before that flush runs,
 * by the same event or by publishes arriving in other requests meanwhile, join it. Never
 * reordered, never duplicated: whatever is pending goes out before any frame to a single socket
 * (welcome and replay of a new socket, acks, members), before a reset, before a closing err, and
 * before a frame that skips a socket.
 */
export class Delivery {
  private pending: Out[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Sockets that wait for the flush, counted once per flush window (for `delivered`). */
  private waiting = 0;
  /**
   * Sockets in the middle of a paged replay: live messages skip them (they read those from the
   * log when their replay reaches the head), other frames do not.
   */
  private readonly held = new Set<WebSocket>();

  constructor(private readonly sockets: SocketSource) {}

  /** Live messages skip `ws` until released: it is being replayed page by page. */
  hold(ws: WebSocket): void {
    this.held.add(ws);
  }

  release(ws: WebSocket): void {
    this.held.delete(ws);
  }

  /** Live messages to this socket skip it (it is being replayed). */
  holds(ws: WebSocket): boolean {
    return this.held.has(ws);
  }

  /** One frame to one socket, after anything still pending for the room. */
  to(ws: WebSocket, state: SocketState, frame: Out): boolean {
    this.flush();
    return sendTo(ws, state.tr, frame);
  }

  /** Delivers one frame to every socket but `exclude`; answers how many sockets it is for. */
  toAll(frame: Out, exclude: WebSocket | null = null): number {
    if (exclude !== null || frame.t === "reset") {
      this.flush();
      return this.sendNow(frame, exclude);
    }
    if (this.timer === null) {
      const sent = this.sendNow(frame, null);
      this.open();
      return sent;
    }
    // A flush is pending: plain sockets take the frame now, the others with the flush.
    if (this.pending.length === 0) this.waiting = this.sockets.group("wb").length + this.sockets.group("sse").length;
    this.pending.push(frame);
    return sendEach(this.sockets.group("ws"), frame.json, null, this.heldFor(frame)) + this.waiting;
  }

  /** Sends what is pending, as batches: one serialization per flush for all sockets. */
  flush(): void {
    this.sendPending();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * The timer's flush: sends what is pending and, when that was anything, opens the next window,
   * so a sustained burst goes out in batches only. A flush that finds nothing closes the window:
   * the next frame goes out at once again.
   */
  private tick(): void {
    this.timer = null;
    if (this.sendPending()) this.open();
  }

  /**
   * Opens a flush window that grows with the room (WINDOW_US_PER_SOCKET per socket, at most
   * MAX_WINDOW_MS): frames that come in meanwhile would only queue behind the round of sends
   * just made, so they wait for the flush instead and go out in one round. In a small room the
   * window is next to nothing.
   */
  private open(): void {
    const sockets = this.sockets.count();
    this.timer = setTimeout(() => this.tick(), Math.min(MAX_WINDOW_MS, (sockets * WINDOW_US_PER_SOCKET) / 1000));
  }

  private sendPending(): boolean {
    if (this.pending.length === 0) return false;
    const frames = joinAppends(this.pending);
    this.pending = [];
    const batching = this.sockets.group("wb");
    if (batching.length > 0) this.sendRun(batching, frames, batchTexts);
    const streams = this.sockets.group("sse");
    if (streams.length > 0) this.sendRun(streams, frames, sseTexts);
    return true;
  }

  /**
   * Ends a connection: what is pending, then an err frame that names the close code, then the
   * close. The frame lets a client act at once, whether or not the close handshake completes.
   */
  close(ws: WebSocket, transport: Transport, close: CloseCode, message: string): void {
    this.flush();
    sendTo(ws, transport, out(new ServiceError(close.error, message).toFrame(close.code)));
    try {
      ws.close(close.code, message.slice(0, 120));
    } catch {
      // already closed
    }
  }

  /** A flush to one group; sockets held for a replay take all but its messages (they read those from the log). */
  private sendRun(sockets: WebSocket[], frames: Out[], texts: (frames: Out[]) => string[]): void {
    for (const text of texts(frames)) sendEach(sockets, text, null, this.held);
    if (this.held.size === 0) return;
    const held = sockets.filter((ws) => this.held.has(ws));
    const rest = held.length === 0 ? [] : frames.filter((f) => !isEntry(f));
    if (rest.length > 0) for (const text of texts(rest)) sendEach(held, text);
  }

  private heldFor(frame: Out): ReadonlySet<WebSocket> {
    return isEntry(frame) ? this.held : NONE;
  }

  private sendNow(frame: Out, exclude: WebSocket | null): number {
    const held = this.heldFor(frame);
    let sent = sendEach(this.sockets.group("ws"), frame.json, exclude, held) + sendEach(this.sockets.group("wb"), frame.json, exclude, held);
    const streams = this.sockets.group("sse");
    // SSE text is made only when there is a stream to take it.
    if (streams.length > 0) sent += sendEach(streams, sseEvent(frame), exclude, held);
    return sent;
  }
}
