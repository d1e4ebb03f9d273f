// Frames as a room sends them: serialized once, then formatted for each transport.
import type { ServerFrame } from "../protocol/index.js";
import type { LoggedMessage } from "../hub/replay-log.js";

/** A frame serialized once, ready for any transport; `id` is a msg's or an append's SSE id (EPOCH:SEQ). */
export interface Out {
  t: ServerFrame["t"];
  json: string;
  id?: string;
  /** An append's parts, so consecutive appends to one message sent together become one frame. */
  grows?: { ch: string; m: LoggedMessage; epoch: string };
}

export const out = (f: ServerFrame): Out => ({ t: f.t, json: JSON.stringify(f) });

/** Frames that carry a log entry (a message or an append): replays serve them, held sockets skip them live. */
export const isEntry = (frame: Out): boolean => frame.t === "msg" || frame.t === "append";

/**
 * The one place a `msg` (or `append`) frame is serialized. `data` is spliced in as stored, so a
 * publish is encoded once, not once per socket, and replay does not parse what it sends.
 */
export function msgFrame(ch: string, m: LoggedMessage): string {
  const u = m.sender === null ? "" : `,"u":${JSON.stringify(m.sender)}`;
  const done = m.done === true ? ',"done":true' : "";
  if (m.ref !== undefined) return `{"t":"append","ch":${JSON.stringify(ch)},"seq":${m.seq},"ref":${m.ref},"id":${JSON.stringify(m.of)},"d":${m.data},"e":${JSON.stringify(m.event)},"ts":${m.ts}${u}${done}}`;
  const v = m.v === undefined ? "" : `,"v":${m.v}`;
  return `{"t":"msg","ch":${JSON.stringify(ch)},"seq":${m.seq},"id":${JSON.stringify(m.id)},"e":${JSON.stringify(m.event)},"d":${m.data},"ts":${m.ts}${u}${v}${done}}`;
}

export function msgOut(ch: string, m: LoggedMessage, epoch: string): Out {
  if (m.ref !== undefined) return { t: "append", json: msgFrame(ch, m), id: `${epoch}:${m.seq}`, grows: { ch, m, epoch } };
  return { t: "msg", json: msgFrame(ch, m), id: `${epoch}:${m.seq}` };
}

/**
 * The frames of a new socket's opening. Where a message that grew comes whole (its text holds
 * appends up to the head), no frame carries an id of its own on SSE (resuming after any of them
 * would add those appends again): the last one carries the head's (`head`, EPOCH:SEQ).
 */
export function openingOuts(ch: string, messages: LoggedMessage[], epoch: string, head: string): Out[] {
  if (!messages.some((m) => m.v !== undefined)) return messages.map((m) => msgOut(ch, m, epoch));
  return messages.map((m, i) => (i === messages.length - 1 ? { t: "msg", json: msgFrame(ch, m), id: head } : { t: "msg", json: msgFrame(ch, m) }));
}

/**
 * Consecutive appends to one message (same sender, none but the last done) as one frame: `d`
 * joined, `seq` the last one's. Everything else as it is, in order.
 */
export function joinAppends(frames: Out[]): Out[] {
  if (!frames.some((f) => f.grows !== undefined)) return frames;
  const joined: Out[] = [];
  for (const f of frames) {
    const prev = joined.at(-1)?.grows;
    const next = f.grows;
    if (prev !== undefined && next !== undefined && prev.ch === next.ch && prev.m.ref === next.m.ref && prev.m.sender === next.m.sender && prev.m.done !== true && prev.m.skip === next.m.skip) {
      // JSON strings join by their insides: "ab" + "cd" is "abcd".
      joined[joined.length - 1] = msgOut(next.ch, { ...next.m, data: prev.m.data.slice(0, -1) + next.m.data.slice(1) }, next.epoch);
    } else joined.push(f);
  }
  return joined;
}

/**
 * One frame as an SSE event: `msg` frames carry `id: EPOCH:SEQ` and no `event:` (so
 * `onmessage` fires and the browser resends the id as Last-Event-ID); `append` frames carry
 * `event: append` and their id too (so Last-Event-ID resumes after them); other frames carry
 * `event: <t>` and no id, so they never move the browser's cursor.
 */
export function sseEvent(frame: Out): string {
  if (frame.t === "msg") return frame.id === undefined ? `data: ${frame.json}\n\n` : `id: ${frame.id}\ndata: ${frame.json}\n\n`;
  if (frame.t === "append") return `event: append\nid: ${frame.id}\ndata: ${frame.json}\n\n`;
  return `event: ${frame.t}\ndata: ${frame.json}\n\n`;
}
