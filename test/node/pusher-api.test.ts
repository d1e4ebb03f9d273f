// The Pusher HTTP API over real HTTP, signed by the real `pusher` server SDK (DESIGN.md v1.3
// "Replays of signed requests"): a captured request replayed within its timestamp window
// publishes once. (That a forged request is refused before its body is read is shown inside
// workerd, test/options/pusher-api.test.ts: wrangler's dev proxy drains a request's body before
// it passes the answer on, so over this server no answer can come before the upload ends.)
import PusherServer from "pusher";
import { describe, expect, it } from "vitest";
import { baseUrl, channelName, publisher } from "./helpers";
import { NODE_PUSHER } from "./server";

const backend = (secret = NODE_PUSHER.secret) =>
  new PusherServer({ appId: NODE_PUSHER.appId, key: NODE_PUSHER.key, secret, host: "127.0.0.1", port: new URL(baseUrl()).port, useTLS: false });

/** A request as the SDK would send it (the URL it signs), to send again as a replay would. */
function captured(path: string, body: string, secret?: string): string {
  const full = `/apps/${NODE_PUSHER.appId}${path}`;
  return `${baseUrl()}${full}?${backend(secret).createSignedQueryString({ method: "POST", path: full, body })}`;
}

const post = async (url: string, body: string) => {
  const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
  return { status: res.status, text: await res.text() };
};

describe("Pusher HTTP API replays", () => {
  it("publishes a replayed events request once, on every channel it names", async () => {
    const a = channelName("pz-replay");
    const b = channelName("pz-replay");
    const body = JSON.stringify({ name: "paid", data: JSON.stringify({ order: 7 }), channels: [a, b] });
    const url = captured("/events", body);
    for (let i = 0; i < 3; i++) expect(await post(url, body)).toEqual({ status: 200, text: "{}" });
    for (const ch of [a, b]) {
      const { messages } = await publisher().history(ch);
      expect(messages.map((m) => [m.e, m.d])).toEqual([["paid", { order: 7 }]]);
    }
  });

  it("publishes a replayed batch once, keeping equal events of the batch apart", async () => {
    const ch = channelName("pz-replay");
    const batch = [0, 1, 2].map(() => ({ channel: ch, name: "tick", data: "same" }));
    const body = JSON.stringify({ batch });
    const url = captured("/batch_events", body);
    expect((await post(url, body)).status).toBe(200);
    expect((await post(url, body)).status).toBe(200);
    expect((await publisher().history(ch)).messages.map((m) => m.d)).toEqual(["same", "same", "same"]);
  });

  it("still publishes what the SDK triggers as new requests", async () => {
    const ch = channelName("pz-replay");
    await backend().trigger(ch, "e", { n: 1 });
    await backend().triggerBatch([{ channel: ch, name: "e", data: { n: 2 } }]);
    expect((await publisher().history(ch)).messages.map((m) => m.d)).toEqual([{ n: 1 }, { n: 2 }]);
  });
});
