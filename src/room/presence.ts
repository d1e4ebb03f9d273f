import type { Member } from "../protocol/index.js";
import type { Sockets } from "./sockets.js";

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

  constructor(private readonly sockets: Sockets) {}

  private members(): Map<string, Member> {
    if (this.cache === null) {
      this.cache = new Map();
      for (const ws of this.sockets.members()) {
        if (ws.readyState !== OPEN) continue;
        const state = ws.deserializeAttachment() as PresenceState | null;
        if (state?.sub != null && !this.cache.has(state.sub)) this.cache.set(state.sub, memberOf(state.sub, state.info));
      }
    }
    return this.cache;
  }

  /** Call after accepting a socket; answers the member when this is its first socket. */
  join(ws: WebSocket, state: PresenceState): Member | null {
    if (state.sub === null) return null;
    const first = this.sockets.ofUser(state.sub).every((o) => o === ws || o.readyState !== OPEN);
    // The newest socket's info wins: a fresh token may carry fresh info.
    const member = memberOf(state.sub, state.info);
    this.members().set(state.sub, member);
    return first ? member : null;
  }

  /** Call when a socket goes; answers the member when it was its last open socket. */
  leave(ws: WebSocket, state: PresenceState): Member | null {
    if (state.sub === null) return null;
    const others = this.sockets.ofUser(state.sub).filter((o) => o !== ws && o.readyState === OPEN);
    if (others.length > 0) return null;
    const members = this.members();
    const member = members.get(state.sub) ?? null;
    members.delete(state.sub);
    return member;
  }

  count(): number {
    return this.members().size;
  }

  list(max: number): { members: Member[]; count: number } {
    const all = this.members();
    const members: Member[] = [];
    for (const m of all.values()) {
      if (members.length >= max) break;
      members.push(m);
    }
    return { members, count: all.size };
  }
}
