import { ServiceError } from "../server/service-error.js";

/** "json" for application/json and +json types, "text" for text/plain or none, else the type. */
export function mediaType(request: Request): string {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) return "json";
  return type === "text/plain" || type === "" ? "text" : type;
}

/** The body as UTF-8 text, refused with 413 past `max` bytes (declared or actual). */
export async function readText(request: Request, max: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) throw new ServiceError("too_large", `body is over MAX_MESSAGE_BYTES (${max})`);
  const bytes = await request.arrayBuffer();
  if (bytes.byteLength > max) throw new ServiceError("too_large", `body is over MAX_MESSAGE_BYTES (${max})`);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ServiceError("bad_request", "body is not valid UTF-8");
  }
}

export async function readJson(request: Request, max: number): Promise<unknown> {
  const text = await readText(request, max);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ServiceError("bad_request", `body is not valid JSON: ${(err as Error).message}`);
  }
}
