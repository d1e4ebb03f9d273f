// Pusher's signatures: HMAC-SHA256 in hex, for channel auth strings, the HTTP API's signed query
// and webhooks. Checks go through crypto.subtle.verify, which compares in constant time.
const encoder = new TextEncoder();

const keys = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    if (keys.size > 16) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

const toHex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

function fromHex(hex: string): Uint8Array | null {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** Hex HMAC-SHA256 of `text` (what Pusher signs with). */
export async function hmacHex(secret: string, text: string): Promise<string> {
  return toHex(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(text)));
}

/** Whether `hex` is the HMAC-SHA256 of `text`, compared in constant time. */
export async function verifyHmacHex(secret: string, text: string, hex: string): Promise<boolean> {
  const signature = fromHex(hex);
  if (signature === null || signature.length !== 32) return false;
  return crypto.subtle.verify("HMAC", await hmacKey(secret), signature, encoder.encode(text));
}

/**
 * Hex MD5 of a body (Pusher's body_md5; the Workers runtime offers MD5 for this). Given the bytes
 * as received, so a body is checked as sent (a leading BOM, which decoding drops, included).
 */
export async function md5Hex(body: string | Uint8Array): Promise<string> {
  return toHex(await crypto.subtle.digest("MD5", typeof body === "string" ? encoder.encode(body) : body));
}

/** Hex SHA-256 of `text`: a fixed-length name for something too long to use as one. */
export async function sha256Hex(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}
