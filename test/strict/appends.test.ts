// The limits of a message that grows, where they are small (APPENDS_MAX 3, MAX_MESSAGE_BYTES 1024
// here): past them an append is 413 and the message stays as it was.
import { describe, expect, it } from "vitest";
import { call, channelName, publish, publishOk } from "../helpers";

describe("append limits", () => {
  it("refuses the append past APPENDS_MAX (413), keeping the message whole", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "0", "m");
    for (const t of ["1", "2", "3"]) expect((await publish(ch, { append: "m", data: t })).status).toBe(200);
    const over = await publish(ch, { append: "m", data: "4" });
    expect(over.status).toBe(413);
    expect(await over.json()).toMatchObject({ error: { code: "too_large", message: expect.stringContaining("APPENDS_MAX (3)") } });
    const page = await (await call(`/v1/channels/${ch}/messages`, { headers: { authorization: "Bearer test-publish-key" } })).json<{ messages: { d: string }[] }>();
    expect(page.messages.map((m) => m.d)).toEqual(["0123"]);
  });

  it("counts the accumulated message against MAX_MESSAGE_BYTES in UTF-8 bytes, as stored", async () => {
    const ch = channelName("grow");
    await publishOk(ch, "answer", "é".repeat(400), "m"); // 800 bytes, 802 stored with its quotes
    expect((await publish(ch, { append: "m", data: "é".repeat(111) })).status).toBe(200); // 1024
    const over = await publish(ch, { append: "m", data: "x" });
    expect(over.status).toBe(413);
  });
});
