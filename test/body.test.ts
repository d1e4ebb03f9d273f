// Request bodies are read with a hard byte cap, chunked ones too (DESIGN.md v1.3 "Bounded memory
// and time per request"): past MAX_MESSAGE_BYTES (65536 here) the answer is 413 `too_large` as
// soon as the cap is passed, without reading the rest, and the cap counts bytes, not characters.
import { describe, expect, it } from "vitest";
import { call, channelName, chunkedBody as chunked, type HistoryPage, PUBLISH_KEY } from "./helpers";

const MAX = 65536;

/** POSTs a streamed body to the channel and answers within `ms`, or says it did not. */
async function post(ch: string, body: ReadableStream<Uint8Array>, contentType: string, stop: () => void, ms = 3000) {
  const answer = call(`/v1/channels/${ch}/messages`, { method: "POST", headers: { authorization: `Bearer ${PUBLISH_KEY}`, "content-type": contentType }, body }).then(
    async (res) => ({ status: res.status, body: await res.json<{ error?: { code: string } }>() }),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([answer, new Promise<"no answer">((resolve) => (timer = setTimeout(() => resolve("no answer"), ms)))]);
  clearTimeout(timer);
  stop();
  return result;
}

const encode = (text: string) => new TextEncoder().encode(text);
const history = async (ch: string) => (await (await call(`/v1/channels/${ch}/messages`)).json<HistoryPage>()).messages;

describe("request bodies: a hard byte cap, chunked ones too", () => {
  it("refuses a chunked body over MAX_MESSAGE_BYTES with 413, not reading the rest", async () => {
    const ch = channelName("body");
    const big = encode(JSON.stringify({ event: "e", data: "x".repeat(8 * MAX) }));
    const { stream, state } = chunked(big, 4096);
    expect(await post(ch, stream, "application/json", state.stop)).toMatchObject({ status: 413, body: { error: { code: "too_large" } } });
    // What the pipe holds ahead of the reader is allowed for; the other 7 × 64 KiB are not read.
    expect(state.pulled).toBeLessThan(3 * MAX);
    expect(await history(ch)).toEqual([]);
  });

  it("counts a body whose Content-Length says less than it holds (a request made in the isolate): 413, and nothing published", async () => {
    const ch = channelName("body");
    // A body that never ends, declared 100 bytes long: cut at the cap, not read to its end.
    const { stream, state } = chunked(encode(JSON.stringify({ event: "e", data: "x".repeat(2 * MAX) })), 4096, true);
    const answer = call(`/v1/channels/${ch}/messages`, { method: "POST", headers: { authorization: `Bearer ${PUBLISH_KEY}`, "content-type": "application/json", "content-length": "100" }, body: stream });
    const res = await answer;
    state.stop();
    expect(res.status).toBe(413);
    expect(state.pulled).toBeLessThan(3 * MAX);
    expect(await history(ch)).toEqual([]);
  });

  it("cuts a body that never ends at the cap: 413 at once, not a wait for its end", async () => {
    const ch = channelName("body");
    const { stream, state } = chunked(encode("y".repeat(2 * MAX)), 1000, true);
    expect(await post(ch, stream, "text/plain", state.stop)).toMatchObject({ status: 413, body: { error: { code: "too_large" } } });
  });

  it("accepts a chunked body of exactly the cap, and refuses one byte more", async () => {
    const ch = channelName("body");
    const exact = (n: number) => {
      const shell = JSON.stringify({ event: "e", data: "" });
      return encode(JSON.stringify({ event: "e", data: "z".repeat(n - shell.length) }));
    };
    expect(exact(MAX).byteLength).toBe(MAX);
    const ok = chunked(exact(MAX), 1000);
    expect(await post(ch, ok.stream, "application/json", ok.state.stop)).toMatchObject({ status: 200 });
    const over = chunked(exact(MAX + 1), 1000);
    expect(await post(ch, over.stream, "application/json", over.state.stop)).toMatchObject({ status: 413 });
    expect((await history(ch)).length).toBe(1);
  });

  it("counts bytes, not characters: 40,000 two-byte characters (80,000 bytes) are over the cap", async () => {
    const ch = channelName("body");
    const text = "é".repeat(40_000);
    expect(text.length).toBeLessThan(MAX);
    const { stream, state } = chunked(encode(text), 4096);
    expect(await post(ch, stream, "text/plain", state.stop)).toMatchObject({ status: 413 });
    // A character split across chunks is still decoded whole once the body fits.
    const fits = chunked(encode("é".repeat(30_000)), 4095);
    expect(await post(ch, fits.stream, "text/plain", fits.state.stop)).toMatchObject({ status: 200 });
    expect((await history(ch)).map((m) => m.d)).toEqual(["é".repeat(30_000)]);
  });
});
