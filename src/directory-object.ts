// DirectoryObject (binding DIRECTORY): which channels are occupied, for Pusher's channel list
// (GET /apps/:id/channels). One object (named "directory"); hubs tell it when their channel
// becomes occupied or vacated (after the 5 s debounce), from their alarm, until it has answered.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.js";
import type { DirectoryRpc } from "./rpc.js";
import { TABLES } from "./schema.js";

/** At most this many channels in one answer (Pusher's list is meant for small apps and dashboards). */
const LIST_MAX = 1000;

export class DirectoryObject extends DurableObject<Env> implements DirectoryRpc {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(TABLES.occupied);
  }

  async set(channel: string, occupied: boolean): Promise<void> {
    if (occupied) this.ctx.storage.sql.exec("INSERT OR IGNORE INTO occupied (channel) VALUES (?)", channel);
    else this.ctx.storage.sql.exec("DELETE FROM occupied WHERE channel = ?", channel);
  }

  /** Occupied channels whose name starts with `prefix`, in name order. */
  async list(prefix: string): Promise<string[]> {
    // A range scan on the key, not LIKE: prefixes may hold `_`, which LIKE would treat as a wildcard.
    const rows = this.ctx.storage.sql.exec<{ channel: string }>("SELECT channel FROM occupied WHERE channel >= ? ORDER BY channel LIMIT ?", prefix, LIST_MAX).toArray();
    return rows.map((r) => r.channel).filter((c) => c.startsWith(prefix));
  }
}
