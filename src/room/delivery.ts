// Every frame a room sends goes through here: to one socket, or delivered to all of them. This
// is the seam that coalescing (batch frames) and edges extend.
import type { CloseCode } from "../protocol/index.js";
import { ServiceError } from "../protocol/index.js";
import { out, sseEvent, type Out } from "./outgoing.js";
import { TRANSPORTS, type Transport } from "./sockets.js";

/** Sends one frame to one socket. A socket that fails to take it is skipped: its close handler cleans up. */
export function sendTo(ws: WebSocket, transport: Transport, frame: Out): boolean {
  try {
    ws.send(transport === "sse" ? sseEvent(frame) : frame.json);
    return true;
  } catch {
    return false;
  }
}

/**
 * Delivers one frame to every socket of the room (sockets are tagged with their transport), each
 * serialization made once for all sockets of a transport. Answers how many took it.
 */
export function deliver(ctx: DurableObjectState, frame: Out, exclude: WebSocket | null = null): number {
  let delivered = 0;
  for (const transport of TRANSPORTS) {
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

/**
 * Ends a connection: an err frame that names the close code, then the close. The frame lets a
 * client act at once, whether or not the close handshake completes promptly.
 */
export function closeWith(ws: WebSocket, transport: Transport, close: CloseCode, message: string): void {
  sendTo(ws, transport, out(new ServiceError(close.error, message).toFrame(close.code)));
  try {
    ws.close(close.code, message.slice(0, 120));
  } catch {
    // already closed
  }
}
