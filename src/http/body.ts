// Request bodies, read with a hard byte cap (DESIGN.md v1.3 "Bounded memory and time per
// request"): a declared Content-Length over the cap is refused before anything is read, and a
// chunked body (or one whose Content-Length lies) is counted while it streams and cut at the
// first chunk past the cap, so no request makes the isolate hold more than `max` bytes of it.
import { ServiceError } from "../server/service-error.js";

/** "json" for application/json and +json types, "text" for text/plain or none, else the type. */
export function mediaType(request: Request): string {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return "json";
  return type === "text/plain" || type === "" ? "text" : type;
}

const tooLarge = (max: number) => new ServiceError("too_large", `body is over MAX_MESSAGE_BYTES (${max} bytes)`);

/**
 * The body's bytes, at most `max` of them: 413 `too_large` as soon as it is known to be longer
 * (declared, or counted while reading), without reading the rest. Bytes, not UTF-16 units.
 */
export async function readBytes(request: Request, max: number, { drainUpTo = 0 } = {}): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) {
    // A client that sends its whole body before it reads the answer (Node's fetch does) sees a
    // reset, not the 413, when the answer comes first: up to `drainUpTo` bytes are read and
    // dropped (never kept) before it is given. Longer bodies are refused at once.
    if (declared <= drainUpTo) await discard(request);
    throw tooLarge(max);
  }
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      // Stop the upload here: the rest is never read (or buffered), however long it goes on.
      reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/** Bytes as UTF-8 text; anything that is not valid UTF-8 is a 400. */
export function utf8Text(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ServiceError("bad_request", "body is not valid UTF-8");
  }
}

/** The body as UTF-8 text, refused with 413 past `max` bytes (declared or actual). */
export async function readText(request: Request, max: number): Promise<string> {
  return utf8Text(await readBytes(request, max));
}

export async function readJson(request: Request, max: number): Promise<unknown> {
  const text = await readText(request, max);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ServiceError("bad_request", `body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Reads a body to its end, keeping none of it. */
async function discard(request: Request): Promise<void> {
  if (request.body === null) return;
  const reader = request.body.getReader();
  for (;;) if ((await reader.read()).done) return;
}
