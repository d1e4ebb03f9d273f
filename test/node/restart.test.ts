// Durability across a server restart: storage persisted to disk, the process stopped and
// started again; seq, epoch, history and resume carry on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { subscribe } from "../../src/client/index";
import { createPublisher } from "../../src/client/publisher";
import { channelName, TcpProxy, until } from "./helpers";
import { NODE_PUBLISH_KEY, startServer } from "./server";

const dir = mkdtempSync(path.join(tmpdir(), "hibercast-persist-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("keeps seq, epoch, history and ids across a restart, and a client resumes exactly", { timeout: 60_000 }, async () => {
  const ch = channelName("durable");
  let server = await startServer({ persist: dir });
  const proxy = await TcpProxy.start(server.url);
  try {
    const pub = () => createPublisher({ url: server.url, key: NODE_PUBLISH_KEY, retries: 0 });
    for (let i = 1; i <= 5; i++) await pub().publish(ch, "m", i, { id: `d-${i}` });
    const before = await pub().history(ch);

    const seqs: number[] = [];
    const sub = subscribe({ url: proxy.url, channel: ch, since: { seq: 3, epoch: before.epoch }, backoff: { initialMs: 50, maxMs: 200 } });
    sub.on("*", (_d, m) => seqs.push(m.seq));
    await until(() => seqs.length === 2);

    await server.stop(); // the process goes away with the client connected
    await until(() => sub.state === "reconnecting", 10_000, "the client to notice");
    server = await startServer({ persist: dir });
    proxy.retarget(server.url);

    const after = await pub().history(ch);
    expect(after).toMatchObject({ seq: 5, epoch: before.epoch });
    expect(after.messages.map((m) => m.d)).toEqual([1, 2, 3, 4, 5]);
    expect(await pub().publish(ch, "m", 3, { id: "d-3" })).toMatchObject({ seq: 3, duplicate: true });
    for (let i = 6; i <= 8; i++) expect((await pub().publish(ch, "m", i)).seq).toBe(i);

    await until(() => seqs.length === 5, 15_000, "the resume after the restart");
    expect(seqs).toEqual([4, 5, 6, 7, 8]);
    sub.close();
  } finally {
    await proxy.close();
    await server.stop();
  }
});
