// The size rule of incoming frames (MAX_MESSAGE_BYTES counts UTF-8 bytes).
const encoder = new TextEncoder();
/** Whether a text frame's UTF-8 size is over `max`, encoding it only when the bounds cannot tell. */
export function overLimit(s: string, max: number): boolean {
  // A UTF-16 unit takes 1 to 3 UTF-8 bytes: most frames are decided without encoding.
  if (s.length > max) return true;
  if (s.length * 3 <= max) return false;
  return encoder.encode(s).byteLength > max;
}
