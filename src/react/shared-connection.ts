// One `/v1/ws` socket for every component of an app, and one subscription per channel however
// many components read it. Nothing opens until a channel is watched, and the socket closes when
// the last one is let go, so a connection React creates and throws away (StrictMode renders
// twice) costs nothing. A channel is let go a turn after its last watcher leaves: a remount in
// the same commit (StrictMode, a moved component) keeps its subscription instead of making a new one.
import type { HibercastError } from "../client/errors.js";
import type { State } from "../client/connection.js";
import { MultiplexedConnection, type ChannelOptions, type ConnectOptions } from "../client/multiplexed.js";
import { ChannelStore, type Watcher } from "./channel-store.js";

/** The shared socket as components see it: `idle` while no channel is watched (no socket). */
export interface ConnectionStatus {
  state: State | "idle";
  /** This connection's id, for `?exclude=` on HTTP publishes (null until welcomed). */
  cid: string | null;
  /** The last connection-wide error (a closed connection's reason, a failed `getToken`). */
  error: HibercastError | null;
}

const IDLE: ConnectionStatus = Object.freeze({ state: "idle", cid: null, error: null });

export class SharedConnection {
  private conn: MultiplexedConnection | null = null;
  private readonly stores = new Map<string, { store: ChannelStore; options: ChannelOptions }>();
  private readonly listeners = new Set<() => void>();
  private readonly options: ConnectOptions;
  private current: ConnectionStatus = IDLE;

  /** `options` as `connect()` takes them; the socket opens when the first channel is watched. */
  constructor(options: ConnectOptions) {
    this.options = { ...options };
  }

  get status(): ConnectionStatus {
    return this.current;
  }

  /** The channel's store while some component watches it (or just let it go). */
  peek(channel: string): ChannelStore | undefined {
    return this.stores.get(channel)?.store;
  }

  /**
   * Watches a channel: subscribes it on the first watcher (with that watcher's options; later
   * ones share the subscription as it is). Answers the function that stops watching.
   */
  watch(channel: string, options: ChannelOptions, watcher: Watcher): () => void {
    let store = this.stores.get(channel)?.store;
    if (store === undefined) {
      store = new ChannelStore(this.connection().subscribe(channel, options));
      this.stores.set(channel, { store, options });
    }
    const unwatch = store.watch(watcher);
    const watched = store;
    return () => {
      unwatch();
      if (!watched.watched) setTimeout(() => this.letGo(channel, watched), 0);
    };
  }

  /**
   * A new connection token: the socket reconnects with it and every channel resumes from its
   * cursor; channels that had ended (refused without it, say) subscribe again from where they were.
   */
  setToken(token: string | undefined): void {
    if (token === this.options.token) return;
    this.options.token = token;
    const open = this.conn !== null && this.conn.state !== "closed";
    if (open) this.conn!.setToken(token);
    for (const [channel, { store, options }] of this.stores) {
      const sub = store.subscription;
      if (sub.subscriptionState !== "unsubscribed") continue;
      // From where it was, if it ever got anywhere; else as it first asked.
      store.replace(this.connection().subscribe(channel, sub.cursor === null ? options : { ...options, since: sub.cursor }));
    }
  }

  /** Drops the socket and connects again; every channel resumes from its cursor. */
  reconnect(): void {
    this.conn?.reconnect();
  }

  /** Listens for changes of `status`; answers the function that stops. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The open connection, or a new one (the first watch, or after the last one closed for good). */
  private connection(): MultiplexedConnection {
    if (this.conn !== null && this.conn.state !== "closed") return this.conn;
    const conn = new MultiplexedConnection({ ...this.options });
    this.conn = conn;
    const update = (error?: HibercastError) => conn === this.conn && this.setStatus({ state: conn.state, cid: conn.cid, error: error ?? this.current.error });
    conn.events.on("welcome", () => update());
    conn.events.on("reconnecting", () => update());
    conn.events.on("error", (error) => update(error));
    conn.events.on("close", ({ error }) => update(error));
    this.setStatus({ state: conn.state, cid: null, error: null });
    return conn;
  }

  private letGo(channel: string, store: ChannelStore): void {
    if (store.watched || this.stores.get(channel)?.store !== store) return;
    this.stores.delete(channel);
    store.close();
    if (this.stores.size > 0 || this.conn === null) return;
    this.conn.close();
    this.conn = null;
    this.setStatus(IDLE);
  }

  private setStatus(status: ConnectionStatus): void {
    const now = this.current;
    if (status.state === now.state && status.cid === now.cid && status.error === now.error) return;
    this.current = status;
    for (const listener of [...this.listeners]) listener();
  }
}
