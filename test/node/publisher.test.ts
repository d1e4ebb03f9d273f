import { describe, expect, it } from "vitest";
import { createPublisher, HibercastError } from "../../src/client/publisher";
import { NODE_PUBLISH_KEY } from "./server";
import { baseUrl, channelName, publisher, token } from "./helpers";

const fast = { backoff: { initialMs: 5, maxMs: 20 } };

describe("publisher", () => {
  it("publishes, reads history, batches and purges", async () => {
    const pub = publisher();
    const ch = channelName();
    expect(await pub.publish(ch, "e", { n: 1 }, { id: "one" })).toEqual({ seq: 1, id: "one", delivered: 0, duplicate: false });
    const results = await pub.publishBatch([
      { channel: ch, event: "e", data: 2 },
      { channel: ch, event: "e", data: 3 },
    ]);
    expect(results.map((r) => ("seq" in r ? r.seq : r.error.code))).toEqual([2, 3]);
    const fanned = await pub.publishToChannels([channelName(), channelName()], "alert", true);
    expect(fanned.every((r) => "seq" in r && r.seq === 1)).toBe(true);
    const page = await pub.history(ch, { before: 3, limit: 5 });
    expect(page.messages.map((m) => m.d)).toEqual([2, { n: 1 }]);
    const purged = await pub.purge(ch);
    expect(purged.seq).toBe(3);
    expect((await pub.history(ch)).messages).toEqual([]);
  });

  it("throws typed errors carrying the server's code and status", async () => {
    const wrong = createPublisher({ url: baseUrl(), key: "wrong" });
    const err = await wrong.publish(channelName(), "e", 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HibercastError);
    expect(err).toMatchObject({ code: "forbidden", status: 403, message: "wrong publish key" });
    const bad = await publisher().publish("no spaces allowed", "e", 1).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: "bad_request", status: 400 });
    const tokenPub = createPublisher({ url: baseUrl(), key: await token({ sub: "w", pub: ["only-*"] }) });
    expect(await tokenPub.publish(channelName("only"), "e", 1)).toMatchObject({ seq: 1 });
    await expect(tokenPub.purge(channelName("only"))).rejects.toMatchObject({ code: "forbidden" });
  });

  it("retries a lost answer with the same id, so the message is delivered once", async () => {
    const ch = channelName();
    let calls = 0;
    // The first attempt reaches the server, but its answer is lost on the way back.
    const lossy: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (++calls === 1) throw new TypeError("fetch failed: connection reset");
      return res;
    };
    const pub = createPublisher({ url: baseUrl(), key: NODE_PUBLISH_KEY, fetch: lossy, ...fast });
    const result = await pub.publish(ch, "e", "once");
    expect(calls).toBe(2);
    expect(result).toMatchObject({ seq: 1, duplicate: true });
    expect((await publisher().history(ch)).messages).toHaveLength(1);
  });

  it("retries 503 with backoff and gives up after `retries` with the last error", async () => {
    let calls = 0;
    const busy: typeof fetch = async () => {
      calls++;
      return Response.json({ error: { code: "unavailable", message: "room overloaded" } }, { status: 503 });
    };
    const pub = createPublisher({ url: baseUrl(), key: NODE_PUBLISH_KEY, fetch: busy, retries: 2, ...fast });
    await expect(pub.publish(channelName(), "e", 1)).rejects.toMatchObject({ code: "unavailable", status: 503 });
    expect(calls).toBe(3);
  });

  it("times out a hanging request and reports it as a timeout", async () => {
    const hang: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
    const pub = createPublisher({ url: baseUrl(), key: NODE_PUBLISH_KEY, fetch: hang, timeoutMs: 50, retries: 1, ...fast });
    await expect(pub.publish(channelName(), "e", 1)).rejects.toMatchObject({ code: "timeout" });
  });

  it("reports a server that is down as a network error", async () => {
    const pub = createPublisher({ url: "http://127.0.0.1:9", key: "k", retries: 0 });
    await expect(pub.publish("c", "e", 1)).rejects.toMatchObject({ code: "network" });
  });
});
