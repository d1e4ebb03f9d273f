import type { Member } from "../protocol/index.js";
import type { MemberList } from "../rpc.js";
import type { Sockets } from "../connections/sockets.js";
import { hasTable, TABLES } from "../schema.js";

/** What presence needs of a socket's state. */
export interface PresenceState {
  sub: string | null;
  info: string | null;
}

const OPEN = 1; // WebSocket.READY_STATE_OPEN


const memberOf = (sub: string, info: string | null): Member => ({ id: sub, info: info === null ? null : JSON.parse(info) });

/**
 * Members of a presence channel: one per `sub`, however many sockets it has open. Sockets of a
 * presence channel are tagged by user (see sockets.ts), so join and leave decisions ask the
 * runtime for one user's sockets instead of scanning the room. The member map is a cache: after
 * hibernation it is rebuilt once from the sockets' attachments.
 */
export class Presence {
  private cache: Map<string, Member> | null = null;

  constructor(
    private readonly sockets: Sockets,
    private readonly remote: RemoteMembers,
    private readonly local: LocalMembers,
  ) {}

  /** Users announced from this object's own sockets (kept until their last one leaves). */
  localCount(): number {
    return this.local.size;
  }

  private members(): Map<string, Member> {
    if (this.cache === null) {
      this.cache = new Map();
      for (const ws of this.sockets.members()) {
        if (ws.readyState !== OPEN) continue;
        const state = ws.deserializeAttachment() as PresenceState | null;
        if (state?.sub != null && !this.cache.has(state.sub)) this.cache.set(state.sub, memberOf(state.sub, state.info));
      }
      for (const r of this.remote.all()) if (!this.cache.has(r.sub)) this.cache.set(r.sub, memberOf(r.sub, r.info));
    }
    return this.cache;
  }

  /** Whether a user has an open socket of this object's own (other than `ws`). */
  private openHere(sub: string, ws: WebSocket | null): boolean {
    return this.sockets.ofUser(sub).some((o) => o !== ws && o.readyState === OPEN);
  }

  /** Whether a user has an open socket here (other than `ws`) or a connection on an edge (other than `cid`). */
  private present(sub: string, ws: WebSocket | null, cid: string | null): boolean {
    return this.openHere(sub, ws) || this.remote.hasUser(sub, cid);
  }

  /** Call after accepting a socket; answers the member when this is its first socket. */
  join(ws: WebSocket, state: PresenceState): Member | null {
    if (state.sub === null) return null;
    this.local.add(state.sub, state.info);
    return this.joined(state.sub, state.info, !this.present(state.sub, ws, null));
  }

  /** Call when a socket goes; answers the member when it was its last open socket. */
  leave(ws: WebSocket, state: PresenceState): Member | null {
    if (state.sub === null) return null;
    const here = this.openHere(state.sub, ws);
    if (!here) this.local.remove(state.sub);
    if (here || this.remote.hasUser(state.sub, null)) return null;
    return this.left(state.sub);
  }

  /**
   * Members announced from this object's own sockets that have none open any more: sockets that
   * went with a restart of the object (every deploy) give no close event, so nothing else would
   * ever say they left. Answers those not connected elsewhere either (they leave now).
   */
  ghosts(): Member[] {
    const gone: Member[] = [];
    for (const { sub, info } of this.local.all()) {
      if (this.openHere(sub, null)) continue;
      this.local.remove(sub);
      if (this.remote.hasUser(sub, null)) continue;
      this.members().delete(sub);
      gone.push(memberOf(sub, info));
    }
    return gone;
  }

  /** A multiplexed connection on an edge joins (kept in storage: the hub may be evicted meanwhile). */
  joinRemote(cid: string, edge: string, sub: string, info: string | null): Member | null {
    const first = !this.present(sub, null, cid);
    this.remote.add(cid, edge, sub, info);
    return this.joined(sub, info, first);
  }

  /** Connections on edges, by edge: what the hub asks each edge to confirm. */
  remoteByEdge(): Map<string, string[]> {
    return this.remote.byEdge();
  }

  leaveRemote(cid: string): Member | null {
    const gone = this.remote.remove(cid);
    if (gone === null || this.present(gone.sub, null, cid)) return null;
    return this.left(gone.sub);
  }

  private joined(sub: string, info: string | null, first: boolean): Member | null {
    // The newest socket's info wins: a fresh token may carry fresh info.
    const member = memberOf(sub, info);
    this.members().set(sub, member);
    return first ? member : null;
  }

  private left(sub: string): Member | null {
    const members = this.members();
    const member = members.get(sub) ?? null;
    members.delete(sub);
    return member;
  }

  count(): number {
    return this.members().size;
  }

  has(sub: string): boolean {
    return this.members().has(sub);
  }

  list(max: number): MemberList {
    const all = this.members();
    const members: Member[] = [];
    for (const m of all.values()) {
      if (members.length >= max) break;
      members.push(m);
    }
    return { members, count: all.size };
  }
}

/**
 * Presence members whose sockets are multiplexed connections on edges: one row per connection
 * (cid) in the hub's SQLite, so an evicted hub keeps them. Nothing is created until the first.
 */
export class RemoteMembers {
  private rows: Map<string, { edge: string; sub: string; info: string | null }> | null = null;

  constructor(private readonly sql: SqlStorage) {}

  private load(): Map<string, { edge: string; sub: string; info: string | null }> {
    if (this.rows === null) {
      const exists = hasTable(this.sql, "remote_members");
      const rows = exists ? this.sql.exec<{ cid: string; edge: string; sub: string; info: string | null }>("SELECT cid, edge, sub, info FROM remote_members").toArray() : [];
      this.rows = new Map(rows.map((r) => [r.cid, { edge: r.edge, sub: r.sub, info: r.info }]));
    }
    return this.rows;
  }

  all(): { sub: string; info: string | null }[] {
    return [...this.load().values()];
  }

  byEdge(): Map<string, string[]> {
    const edges = new Map<string, string[]>();
    for (const [cid, r] of this.load()) edges.set(r.edge, [...(edges.get(r.edge) ?? []), cid]);
    return edges;
  }

  hasUser(sub: string, exceptCid: string | null): boolean {
    for (const [cid, r] of this.load()) if (r.sub === sub && cid !== exceptCid) return true;
    return false;
  }

  add(cid: string, edge: string, sub: string, info: string | null): void {
    this.load();
    this.sql.exec(TABLES.remoteMembers);
    this.sql.exec("INSERT OR REPLACE INTO remote_members (cid, edge, sub, info) VALUES (?, ?, ?, ?)", cid, edge, sub, info);
    this.rows!.set(cid, { edge, sub, info });
  }

  remove(cid: string): { sub: string } | null {
    const row = this.load().get(cid);
    if (row === undefined) return null;
    this.sql.exec("DELETE FROM remote_members WHERE cid = ?", cid);
    this.rows!.delete(cid);
    return row;
  }
}

/**
 * Users with a socket of this object's own on a presence channel, as they were announced: kept
 * in SQLite (a row per user, written when the first socket joins and the last one leaves) so
 * that after a restart the object can tell who left with the sockets it lost.
 */
export class LocalMembers {
  private rows: Map<string, string | null> | null = null;

  constructor(private readonly sql: SqlStorage) {}

  private load(): Map<string, string | null> {
    if (this.rows === null) {
      const rows = hasTable(this.sql, "local_members") ? this.sql.exec<{ sub: string; info: string | null }>("SELECT sub, info FROM local_members").toArray() : [];
      this.rows = new Map(rows.map((r) => [r.sub, r.info]));
    }
    return this.rows;
  }

  all(): { sub: string; info: string | null }[] {
    return [...this.load()].map(([sub, info]) => ({ sub, info }));
  }

  get size(): number {
    return this.load().size;
  }

  add(sub: string, info: string | null): void {
    const rows = this.load();
    if (rows.has(sub) && rows.get(sub) === info) return;
    this.sql.exec(TABLES.localMembers);
    this.sql.exec("INSERT OR REPLACE INTO local_members (sub, info) VALUES (?, ?)", sub, info);
    rows.set(sub, info);
  }

  remove(sub: string): void {
    if (!this.load().delete(sub)) return;
    this.sql.exec("DELETE FROM local_members WHERE sub = ?", sub);
  }
}
