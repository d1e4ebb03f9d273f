// The Pusher endpoint (GET /app/:key, protocol 7) on inputs at its edges: user ids that are
// special keys of a plain JS object, and frames over MAX_MESSAGE_BYTES (65536 in this project).
import { expect, it } from "vitest";
import { hmacHex } from "../../src/pusher/signature";
import { channelName, TestSocket } from "../helpers";

type PusherFrame = { event: string; channel?: string; data: string };

async function connect(): Promise<[TestSocket, string]> {
  const s = await TestSocket.open("/app/test-pusher-key?protocol=7");
  const established = (await s.next()) as unknown as PusherFrame;
  expect(established.event).toBe("pusher:connection_established");
  return [s, (JSON.parse(established.data) as { socket_id: string }).socket_id];
}

/** Subscribes to a presence channel as `user_id`, signed as the app's auth endpoint would. */
async function join(ch: string, user: string, info: unknown): Promise<{ ids: string[]; hash: Record<string, unknown>; count: number }> {
  const [s, socketId] = await connect();
  const channelData = JSON.stringify({ user_id: user, user_info: info });
  const auth = `test-pusher-key:${await hmacHex("test-pusher-secret", `${socketId}:${ch}:${channelData}`)}`;
  s.send({ event: "pusher:subscribe", data: { channel: ch, auth, channel_data: channelData } });
  const ok = (await s.next()) as unknown as PusherFrame;
  expect(ok).toMatchObject({ event: "pusher_internal:subscription_succeeded", channel: ch });
  return (JSON.parse(ok.data) as { presence: { ids: string[]; hash: Record<string, unknown>; count: number } }).presence;
}

it("lists members whose user_id is __proto__ or constructor in ids and hash, like any other", async () => {
  const ch = channelName("presence-pz-keys");
  expect(await join(ch, "__proto__", { name: "Proto" })).toMatchObject({ ids: ["__proto__"], count: 1 });
  const presence = await join(ch, "constructor", { name: "Ctor" });
  expect(presence.count).toBe(2);
  expect([...presence.ids].sort()).toEqual(["__proto__", "constructor"]);
  // JSON.parse makes "__proto__" an own key, so entries see both members with their info.
  expect(Object.entries(presence.hash).sort(([a], [b]) => a.localeCompare(b))).toEqual([
    ["__proto__", { name: "Proto" }],
    ["constructor", { name: "Ctor" }],
  ]);
});

it("answers a frame over MAX_MESSAGE_BYTES with pusher:error naming the limit, then closes with 1009", async () => {
  const [s] = await connect();
  s.send({ event: "client-big", channel: "private-x", data: "x".repeat(70_000) });
  const error = (await s.next()) as unknown as PusherFrame;
  expect(error.event).toBe("pusher:error");
  expect(JSON.parse(error.data)).toMatchObject({ code: 1009, message: "frame over MAX_MESSAGE_BYTES (65536)" });
  const closed = await Promise.race([s.closed, new Promise<"open">((r) => setTimeout(() => r("open"), 2000))]);
  expect(closed).toMatchObject({ code: 1009 });
});

it("keeps a socket open for a frame of exactly MAX_MESSAGE_BYTES (counted in UTF-8 bytes)", async () => {
  const [s] = await connect();
  const shell = JSON.stringify({ event: "pusher:ping", data: "" });
  s.send({ event: "pusher:ping", data: "x".repeat(65_536 - shell.length) });
  expect(((await s.next()) as unknown as PusherFrame).event).toBe("pusher:pong");
  s.send({ event: "pusher:ping", data: "é".repeat(33_000) }); // 33,000 characters, 66,000 bytes
  expect(((await s.next()) as unknown as PusherFrame).event).toBe("pusher:error");
  expect((await s.closed).code).toBe(1009);
});
