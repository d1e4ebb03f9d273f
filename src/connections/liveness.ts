// When a presence connection counts as gone: clients ping every ~25 s (the runtime answers
// without waking the object and records when), so one silent for 90 s has vanished.

/** Presence sockets that sent no `ping` for this long are swept. */
export const PRESENCE_TIMEOUT_MS = 90_000;
/** How often the sweep runs while presence sockets are open. */
export const PRESENCE_SWEEP_MS = 30_000;

/** How long a socket has been silent: since its last auto-answered ping, or since it was accepted. */
export function silentFor(runtime: DurableObjectState, ws: WebSocket, state: { at: number }, now: number): number {
  return now - Math.max(runtime.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, state.at);
}
