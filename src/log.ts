/**
 * Structured logs: one JSON line per event, so Workers Logs can filter and aggregate on fields.
 * Callers pass counts, ids and durations only; tokens, keys and message bodies never reach a
 * log line.
 */
export type LogEvent = "connect" | "refused" | "publish" | "purge" | "close" | "expired" | "swept" | "error";

export function log(event: LogEvent, fields: Record<string, string | number | boolean | null | undefined>): void {
  const line = JSON.stringify({ event, ...fields });
  if (event === "error") console.error(line);
  else console.log(line);
}
