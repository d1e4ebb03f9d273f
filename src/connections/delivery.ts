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

/**
 * How long a window after a round may wait for the frames the load says are coming (DESIGN v1.3
 * "Latency under light load"): the measured round, at most MAX_WINDOW_MS. A frame that misses a
 * round waits a whole round more, so waiting up to one round for it costs no more than that.
 */
const MAX_WINDOW_MS = 40;
/** Rounds after a window that waited in vain before the load is probed for one frame more. */
const PROBE_AFTER_ROUNDS = 8;

const batchTexts = (frames: Out[]) => pack(frames, (f) => f.json, (jsons) => `{"t":"batch","f":[${jsons.join(",")}]}`);
const sseTexts = (frames: Out[]) => pack(frames, sseEvent, (events) => events.join(""));

/**
 * The room's outbound side. Frames for everyone go out in rounds: one send per socket, of one
 * frame or of a batch of the frames that piled up.
 * - A frame that finds the room idle goes out at once and opens no window: a publisher that
 *   sends one message at a time never waits.
 * - A frame that comes while a round is still going out (the runtime has not written it yet: a
 *   zero-delay timer set after the sends has not fired) goes out with the next round.
 * - The load is the number of frames rounds carry. While it is more than one, the next round
 *   waits after the last one is out until it has that many frames, at most as long as a round
 *   takes (measured) and MAX_WINDOW_MS; a frame that comes within that window after the room
 *   went idle waits for it too. One socket send each for several frames instead of one a frame.
 *   A window that fills probes for one frame more; one that runs out sets the load to what came.
 *
 * Never reordered, never duplicated: whatever is pending goes out before any frame to a single
 * socket (welcome and replay of a new socket, acks, members), before a reset, before a closing
 * err, and before a frame that skips a socket.
 */
export class Delivery {
  private pending: Out[] = [];
  /** Set while a round is going out (a zero-delay timer) or while a window is open. */
  private timer: ReturnType<typeof setTimeout> | null = null;
  private windowOpen = false;
  /** When the last round was sent, and when it was out (its timer fired); ms. */
  private roundAt = 0;
  private idleAt = 0;
  /** What a round takes to go out, measured (a moving average, ms). */
  private roundMs = 0;
  /** The load: how many frames the next round waits for. */
  private load = 1;
  /** Rounds to go before the load is probed again (after a window that ran out). */
  private probeIn = 0;
  /** Sockets that wait for the next round, counted once per round (for `delivered`). */
  private waiting = 0;
  /** Sockets that take frames in rounds, as the last frame sent to all found them (listing them costs). */
  private batchingNow = 0;
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
    if (this.timer === null && !this.waitsAfterIdle()) {
      const sent = this.sendNow(frame, null);
      this.load = 1;
      // Only sockets that take batches can wait for a round: with none, there is none to wait for.
      if (this.batchingNow > 0) this.roundSent();
      return sent;
    }
    // Waiting for the next round: plain sockets take the frame now, the others with the round.
    if (this.pending.length === 0) this.waiting = this.batching();
    this.pending.push(frame);
    const sent = sendEach(this.sockets.group("ws"), frame.json, null, this.heldFor(frame)) + this.waiting;
    if (this.windowOpen && this.pending.length >= this.load) this.filled();
    return sent;
  }

  /** Sends what is pending now, as batches: one serialization per round for all sockets. */
  flush(): void {
    // Nothing pending: a round still going out is left to end (and be measured).
    if (this.pending.length === 0) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.windowOpen = false;
    this.sendPending();
    this.roundSent();
  }

  /** A window has the frames the load said would come: out they go, and next time one more is tried. */
  private filled(): void {
    const frames = this.pending.length;
    this.flush();
    this.load = this.probeIn > 0 ? frames : frames + 1;
    if (this.probeIn > 0) this.probeIn--;
  }

  /** A window ran out: what came is the load. */
  private ranOut(): void {
    this.load = Math.max(1, this.pending.length);
    this.probeIn = PROBE_AFTER_ROUNDS;
    this.flush();
  }

  /** A frame that finds no round going out still waits when the room went idle within the window and the load is several frames. */
  private waitsAfterIdle(): boolean {
    const left = this.idleAt + this.windowMs() - Date.now();
    if (this.load <= 1 || left <= 0) return false;
    this.openWindow(left);
    return true;
  }

  /** Sockets that take frames in rounds (batch frames, SSE writes). */
  private batching(): number {
    return this.sockets.group("wb").length + this.sockets.group("sse").length;
  }

  private windowMs(): number {
    return Math.min(MAX_WINDOW_MS, this.roundMs);
  }

  /** A round went out: it is out when the runtime gets back to timers. */
  private roundSent(): void {
    this.roundAt = Date.now();
    this.timer = setTimeout(() => this.roundOut(), 0);
  }

  /** The round is out: what piled up meanwhile goes next, now if it is the load, else after a window. */
  private roundOut(): void {
    this.timer = null;
    const now = Date.now();
    this.roundMs = this.roundMs === 0 ? now - this.roundAt : (this.roundMs * 3 + now - this.roundAt) / 4;
    this.idleAt = now;
    if (this.pending.length === 0) return;
    if (this.pending.length >= this.load || this.windowMs() < 1) this.filled();
    else this.openWindow(this.windowMs());
  }

  private openWindow(ms: number): void {
    this.windowOpen = true;
    this.timer = setTimeout(() => this.ranOut(), ms);
  }

  private sendPending(): void {
    const frames = joinAppends(this.pending);
    this.pending = [];
    const batching = this.sockets.group("wb");
    if (batching.length > 0) this.sendRun(batching, frames, batchTexts);
    const streams = this.sockets.group("sse");
    if (streams.length > 0) this.sendRun(streams, frames, sseTexts);
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

  /** Sends one frame to every socket now; notes how many take frames in rounds (`batchingNow`). */
  private sendNow(frame: Out, exclude: WebSocket | null): number {
    const held = this.heldFor(frame);
    const batching = this.sockets.group("wb");
    let sent = sendEach(this.sockets.group("ws"), frame.json, exclude, held) + sendEach(batching, frame.json, exclude, held);
    const streams = this.sockets.group("sse");
    // SSE text is made only when there is a stream to take it.
    if (streams.length > 0) sent += sendEach(streams, sseEvent(frame), exclude, held);
    this.batchingNow = batching.length + streams.length;
    return sent;
  }
}
