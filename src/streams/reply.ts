// How a Durable Streams answer leaves the Worker: the hub's status, headers and body, with the
// headers every answer carries (CORS for browsers, and the security headers the suite checks).
import type { StreamReply } from "../rpc.js";

/** Headers every answer carries (the suite checks them on errors too). */
export const ALWAYS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "cross-origin-resource-policy": "cross-origin",
  "access-control-allow-origin": "*",
  "access-control-expose-headers":
    "stream-next-offset, stream-cursor, stream-up-to-date, stream-closed, producer-epoch, producer-seq, producer-expected-seq, producer-received-seq, etag, content-type, location, stream-ttl, stream-expires-at, stream-sse-data-encoding",
};

/** A CORS preflight's answer: what browsers may send (only preflights read these, so only they carry them). */
export const PREFLIGHT: Record<string, string> = {
  ...ALWAYS,
  "access-control-allow-methods": "GET, POST, PUT, DELETE, HEAD, OPTIONS",
  "access-control-allow-headers":
    "authorization, content-type, if-none-match, stream-seq, stream-ttl, stream-expires-at, stream-closed, producer-id, producer-epoch, producer-seq, stream-forked-from, stream-fork-offset, stream-fork-sub-offset",
  "access-control-max-age": "86400",
};

export function reply(r: StreamReply, extra: Record<string, string> = {}): Response {
  const headers = new Headers({ ...ALWAYS, ...r.headers, ...extra });
  const status = r.status;
  const body = status === 204 || status === 304 ? null : (r.body ?? null);
  if (body === null && status !== 204 && status !== 304 && !headers.has("content-type")) headers.set("content-type", "text/plain");
  return new Response(body, { status, headers });
}

/** The long-poll cursor: 20 s intervals since 2024-10-09, always past the one the client sent. */
export function cursorFor(sent: string | null, now = Date.now()): string {
  const interval = Math.floor((now - Date.UTC(2024, 9, 9)) / 20_000);
  const client = sent !== null && /^\d+$/.test(sent) ? Number(sent) : -1;
  return String(client >= interval ? client + 1 + Math.floor(Math.random() * 180) : interval);
}

