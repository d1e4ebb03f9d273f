/**
 * Every frame a room sends goes through here, so batching or coalescing under bursts can be
 * added in one place. A socket that fails to take a frame is skipped, never fatal: its close
 * handler cleans up.
 */
export function send(ws: WebSocket, data: string): boolean {
  try {
    ws.send(data);
    return true;
  } catch {
    return false;
  }
}

/** Sends one already-serialized frame to every socket of the room; answers how many took it. */
export function deliver(sockets: WebSocket[], data: string, exclude: WebSocket | null = null): number {
  let delivered = 0;
  for (const ws of sockets) {
    if (ws !== exclude && send(ws, data)) delivered++;
  }
  return delivered;
}
