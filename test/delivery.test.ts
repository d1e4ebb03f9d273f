// The room's outbound side (src/connections/delivery.ts), driven directly over the runtime's own
// WebSocket pairs: what a batching socket and a plain socket read, in order, whatever the load.
// DESIGN v1.3 "Latency under light load": a frame that finds the room idle goes out at once;
// frames that come while a round is going out go out together in the next one; nothing is
// reordered or doubled, and whatever is pending goes out before a reset or a closing err.
import { describe, expect, it } from "vitest";
import { CLOSE } from "../src/protocol";
import { Delivery } from "../src/connections/delivery";
import { out } from "../src/connections/outgoing";
import { newState, type Group } from "../src/connections/sockets";

interface Peer {
  server: WebSocket;
  /** What the peer read so far: frames as sent (a batch is one entry), then the close code. */
  read: unknown[];
}

function peer(): Peer {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  client.accept();
  const read: unknown[] = [];
  client.addEventListener("message", (e) => {
    read.push(JSON.parse(e.data as string));
  });
  client.addEventListener("close", (e) => {
    read.push({ closed: e.code });
  });
  return { server, read };
}

/** A room of one batching socket (`?batch=1`) and one plain socket. */
function room() {
  const batching = peer();
  const plain = peer();
  const groups: Record<Group, WebSocket[]> = { wb: [batching.server], ws: [plain.server], sse: [] };
  const delivery = new Delivery({ group: (g) => groups[g] });
  return { delivery, batching, plain };
}

const msg = (seq: number) => out({ t: "msg", ch: "c", seq, id: `m${seq}`, e: "m", d: seq, ts: 0 });
/** The next turns of the event loop: a round's sends are out, and the peers have read them. */
const turns = () => new Promise((r) => setTimeout(r, 20));
/** The seqs a peer read, unpacked from batches, with "batch(n)" marking each batch. */
function seqs(read: unknown[]): (number | string)[] {
  return read.flatMap((f) => {
    const frame = f as { t?: string; seq?: number; f?: { seq: number }[]; closed?: number };
    if (frame.t === "batch") return [`batch(${frame.f!.length})`, ...frame.f!.map((x) => x.seq)];
    if (frame.t === "msg") return [frame.seq!];
    return [frame.t ?? `closed ${frame.closed}`];
  });
}

describe("delivery", () => {
  it("sends a frame that finds the room idle at once, on its own, every time", async () => {
    const { delivery, batching, plain } = room();
    for (let seq = 1; seq <= 5; seq++) {
      expect(delivery.toAll(msg(seq))).toBe(2);
      await turns();
    }
    expect(seqs(batching.read)).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(plain.read)).toEqual([1, 2, 3, 4, 5]);
  });

  it("packs the frames that come while a round is going out into the next round, in order", async () => {
    const { delivery, batching, plain } = room();
    // One turn: the first frame goes out at once, the next four wait for its round to be out.
    for (let seq = 1; seq <= 5; seq++) expect(delivery.toAll(msg(seq))).toBe(2);
    await turns();
    expect(seqs(batching.read)).toEqual([1, "batch(4)", 2, 3, 4, 5]);
    // A socket that did not opt in takes every frame on its own, at once.
    expect(seqs(plain.read)).toEqual([1, 2, 3, 4, 5]);
    // Idle again: the next frame goes out at once.
    delivery.toAll(msg(6));
    await turns();
    expect(seqs(batching.read).at(-1)).toBe(6);
  });

  it("sends what is pending before a frame to one socket, a reset, or a closing err", async () => {
    const { delivery, batching } = room();
    const state = newState({ ch: "c", tr: "ws", b: true });
    delivery.toAll(msg(1));
    delivery.toAll(msg(2));
    delivery.toAll(msg(3)); // 2 and 3 wait for the round of 1
    delivery.to(batching.server, state, out({ t: "members", members: [], count: 0 }));
    delivery.toAll(msg(4));
    delivery.toAll(out({ t: "reset", seq: 4, epoch: "e2" }));
    delivery.toAll(msg(5));
    delivery.toAll(msg(6));
    delivery.close(batching.server, "ws", CLOSE.unauthorized, "token expired");
    await turns();
    expect(seqs(batching.read)).toEqual([1, "batch(2)", 2, 3, "members", 4, "reset", "batch(2)", 5, 6, "err", `closed ${CLOSE.unauthorized.code}`]);
  });
});
