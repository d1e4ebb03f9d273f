// The one "accept, say why, close" of a socket that is refused: browsers cannot read the status
// of a failed handshake, but they read a frame and a close code.

/** Accepts a socket only to send `frame` and close it with `code`. */
export function refuseSocket(frame: string, code: number, reason: string): Response {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  server.send(frame);
  // A close reason is at most 123 bytes.
  server.close(code, reason.slice(0, 120));
  return new Response(null, { status: 101, webSocket: client });
}
