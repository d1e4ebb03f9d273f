// Frames as a room sends them: serialized once, then formatted for each transport.
import type { ServerFrame } from "../protocol/index.js";
import type { LoggedMessage } from "../hub/replay-log.js";

/** A frame serialized once, ready for any transport; `id` is a msg's SSE id (EPOCH:SEQ). */
export interface Out {
  t: ServerFrame["t"];
  json: string;
  id?: string;
}

export const out = (f: ServerFrame): Out => ({ t: f.t, json: JSON.stringify(f) });

/**
 * The one place a `msg` frame is serialized. `data` is spliced in as stored, so a publish is
 * encoded once, not once per socket, and replay does not parse what it sends.
 */
export function msgFrame(ch: string, m: LoggedMessage): string {
  const u = m.sender === null ? "" : `,"u":${JSON.stringify(m.sender)}`;
  return `{"t":"msg","ch":${JSON.stringify(ch)},"seq":${m.seq},"id":${JSON.stringify(m.id)},"e":${JSON.stringify(m.event)},"d":${m.data},"ts":${m.ts}${u}}`;
}

export function msgOut(ch: string, m: LoggedMessage, epoch: string): Out {
  return { t: "msg", json: msgFrame(ch, m), id: `${epoch}:${m.seq}` };
}

/**
 * One frame as an SSE event: `msg` frames carry `id: EPOCH:SEQ` and no `event:` (so
 * `onmessage` fires and the browser resends the id as Last-Event-ID); other frames carry
 * `event: <t>` and no id, so they never move the browser's cursor.
 */
export function sseEvent(frame: Out): string {
  return frame.t === "msg" ? `id: ${frame.id}\ndata: ${frame.json}\n\n` : `event: ${frame.t}\ndata: ${frame.json}\n\n`;
}
