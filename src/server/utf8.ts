// Bytes as the wire and storage count them, for strings the server measures without encoding
// them: a history page (frames as they go out) and a growing message (its data as stored).

/** UTF-8 length of a string, without encoding it (a frame is counted as it goes on the wire). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair is one code point of 4 bytes
      i++;
    } else n += 3; // the rest of the BMP, and a lone surrogate (sent as U+FFFD)
  }
  return n;
}
