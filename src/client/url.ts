/**
 * The WebSocket URL of `path` under the service's base URL: http(s) and ws(s) bases both work,
 * and a base with a path (`https://example.com/rt`) keeps it.
 */
export function socketUrl(base: string, path: string): URL {
  const url = new URL(path, base.endsWith("/") ? base : `${base}/`);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  return url;
}
