// The platform's floor for a durable write through a Durable Object, to set the product's
// write-only figure against (`npm run floor`): the path the product takes (Worker → Durable
// Object → SQLite), with nothing of the product's in it. Each mode answers an append-like POST:
//   /worker/:name   the Worker alone reads the body and answers 204 (no object);
//   /rpc/:name      plus one RPC call to the channel's object, which does nothing;
//   /insert/:name   plus one SQLite row written in that call (its answer waits for the commit);
//   /group/:name    the same row, with group commit: a write that comes while a commit is
//                   pending waits for it and runs with the others that did, so they share the
//                   next commit (the most a hub could get from batching writes);
//   /fetch/:name    the row of /insert, reached with stub.fetch instead of RPC.
import { DurableObject } from "cloudflare:workers";

const INSERT = "INSERT INTO log (data) VALUES (?)";

export class RoomObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, data TEXT NOT NULL)");
    this.committing = null;
    this.waiting = [];
    this.next = null;
  }
  noop(_body) {
    return { status: 204 };
  }
  insert(body) {
    this.ctx.storage.sql.exec(INSERT, body);
    return { status: 204 };
  }
  group(body) {
    if (this.committing === null) return this.insert(body), this.watch(), { status: 204 };
    this.waiting.push(body);
    this.next ??= this.committing.then(() => {
      for (const b of this.waiting) this.ctx.storage.sql.exec(INSERT, b);
      this.waiting = [];
      this.next = null;
      this.watch();
    });
    return this.next.then(() => ({ status: 204 }));
  }
  /** A commit is pending until storage says the writes so far are durable. */
  watch() {
    const mine = (this.committing = this.ctx.storage.sync().then(() => void (this.committing === mine && (this.committing = null))));
  }
  async fetch(request) {
    this.ctx.storage.sql.exec(INSERT, await request.text());
    return new Response(null, { status: 204 });
  }
}
// The names the product's configuration binds (serve-workerd declares all three).
export class EdgeObject extends DurableObject {}
export class DirectoryObject extends DurableObject {}

export default {
  async fetch(request, env) {
    const [, mode, name] = new URL(request.url).pathname.split("/");
    if (mode === "healthz") return new Response("ok");
    const stub = env.ROOMS.get(env.ROOMS.idFromName(name ?? "floor"));
    if (mode === "fetch") return stub.fetch("https://room.internal/", { method: "POST", body: await request.text() });
    const body = await request.text();
    if (mode === "worker") return new Response(null, { status: 204 });
    const r = mode === "rpc" ? await stub.noop(body) : mode === "group" ? await stub.group(body) : await stub.insert(body);
    return new Response(null, { status: r.status });
  },
};
