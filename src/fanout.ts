import type { Out } from "./protocol";
import { sseEvent } from "./sse";

/** How a socket's frames leave the room: as JSON text, or pre-formatted for the SSE relay. */
export type Transport = "ws" | "sse";

/**
 * Every frame a room sends goes through here, so batching or coalescing under bursts can be
 * added in one place. A socket that fails to take a frame is skipped, never fatal: its close
 * handler cleans up.
 */
export function sendTo(ws: WebSocket, transport: Transport, frame: Out): boolean {
  try {
    ws.send(transport === "sse" ? sseEvent(frame) : frame.json);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends one frame to every socket of the room (sockets are tagged with their transport), each
 * serialization made once for all sockets of a transport. Answers how many took it.
 */
export function broadcast(ctx: DurableObjectState, frame: Out, exclude: WebSocket | null = null): number {
  let delivered = 0;
  for (const transport of ["ws", "sse"] as const) {
    const sockets = ctx.getWebSockets(transport);
    if (sockets.length === 0) continue;
    const text = transport === "sse" ? sseEvent(frame) : frame.json;
    for (const ws of sockets) {
      if (ws === exclude) continue;
      try {
        ws.send(text);
        delivered++;
      } catch {
        // closing socket: its close handler cleans up
      }
    }
  }
  return delivered;
}
