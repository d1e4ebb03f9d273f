// The Pusher endpoint's limits that need many members (DESIGN.md "Pusher-compatible endpoint"):
// presence channels hold at most 100 members for Pusher clients, as on Pusher.
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { hmacHex } from "../../src/pusher/signature";
import { channelName, TestSocket, hubOf } from "../helpers";

const hub = hubOf;

it("refuses the 101st member of a presence channel with subscription_error 403, keeping the socket", async () => {
  const ch = channelName("presence-pz-full");
  // 100 members already there (connections on some edge, as the hub records them).
  for (let i = 0; i < 100; i++) await hub(ch).presenceJoin("#pusher/0", `cid${i}`, `user${i}`, null, null);
  const s = await TestSocket.open("/app/test-pusher-key?protocol=7");
  const established = (await s.next()) as unknown as { event: string; data: string };
  expect(established.event).toBe("pusher:connection_established");
  const socketId = (JSON.parse(established.data) as { socket_id: string }).socket_id;
  const channelData = JSON.stringify({ user_id: "newcomer" });
  const auth = `test-pusher-key:${await hmacHex("test-pusher-secret", `${socketId}:${ch}:${channelData}`)}`;
  s.send({ event: "pusher:subscribe", data: { channel: ch, auth, channel_data: channelData } });
  const refusal = (await s.next()) as unknown as { event: string; channel: string; data: string };
  expect(refusal).toMatchObject({ event: "pusher:subscription_error", channel: ch });
  expect(JSON.parse(refusal.data)).toMatchObject({ type: "AuthError", status: 403, error: expect.stringContaining("100 members") });
  // A user already present may still join with another connection; the socket stayed open.
  const again = JSON.stringify({ user_id: "user7" });
  const auth7 = `test-pusher-key:${await hmacHex("test-pusher-secret", `${socketId}:${ch}:${again}`)}`;
  s.send({ event: "pusher:subscribe", data: { channel: ch, auth: auth7, channel_data: again } });
  const ok = (await s.next()) as unknown as { event: string; data: string };
  expect(ok.event).toBe("pusher_internal:subscription_succeeded");
  expect(JSON.parse(ok.data).presence.count).toBe(100);
  s.close();
});
