// Nothing an outsider sends may leave state behind (DESIGN v1.3), also where occupancy is tracked
// (this project has the Pusher endpoint and webhooks on): a drive-by subscriber of a public name
// nobody publishes to makes its hub write occupancy, then `channel_vacated` and the directory's
// update; once those are done the hub drops all of it. (`quiet-*` has webhooks off, so no
// webhook waits for the receiver that is down here.)
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { channelName, hubOf, publishOk, storedOf, TestSocket } from "../helpers";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the hub's alarms as they come due, until none is due within 10 s (the vacate waits 5 s
 * from when the hub saw the close, which a loaded machine may make later than the client's).
 */
async function settleHub(ch: string): Promise<void> {
  for (;;) {
    const at = await runInDurableObject(hubOf(ch), (_room, state) => state.storage.getAlarm());
    if (at === null || at > Date.now() + 10_000) return;
    if (at > Date.now()) await sleep(Math.min(at - Date.now(), 250));
    else await runDurableObjectAlarm(hubOf(ch));
  }
}

describe("a hub that tracks occupancy forgets a channel nobody published to", () => {
  it("after a socket of its own came and went", async () => {
    const ch = channelName("quiet-drive-by");
    const [s] = await TestSocket.subscribe(ch);
    expect((await storedOf(ch)).keys).toContain("occupancy");
    s.close();
    await settleHub(ch);
    expect(await storedOf(ch)).toEqual({ tables: [], keys: [] });
    // The channel still works.
    const [again] = await TestSocket.subscribe(ch);
    await publishOk(ch, "now", 1);
    expect(await again.take("msg", 1)).toMatchObject([{ e: "now" }]);
    again.close();
  }, 25_000);

  it("after a /v1/ws subscription came and went", async () => {
    const ch = channelName("quiet-mux");
    const s = await TestSocket.open("/v1/ws");
    await s.expect("welcome");
    s.send({ t: "sub", ch });
    await s.expect("subscribed");
    s.send({ t: "unsub", ch });
    await s.expect("unsubscribed");
    s.close();
    await settleHub(ch);
    expect(await storedOf(ch)).toEqual({ tables: [], keys: [] });
  }, 25_000);

  it("keeps everything of a channel that had a publish", async () => {
    const ch = channelName("quiet-kept");
    const [s] = await TestSocket.subscribe(ch);
    await publishOk(ch, "kept", 1);
    s.close();
    await settleHub(ch);
    expect((await storedOf(ch)).tables).toContain("log");
  }, 25_000);
});
