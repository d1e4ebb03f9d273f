// Every object's storage in one place: each table and each key, and the schema version. Tables
// are made when first written (reads never create storage); `migrate` runs once per wake and
// brings an object made by an older version up to this one, so a new column has a home.
//
//   RoomObject (a channel's hub), SQLite:
//     meta             (k, channel, epoch, last_seq, cut) the log's head and its last trim; one row, never trimmed
//     log              (seq, id, event, data, ts, sender, scope, skip, ref, of, done) the replay log (hub/replay-log.ts)
//     grown            (ref, text, v, n, bytes, done)    the running text of each message that was appended to
//     dedupe           (scope, id, seq, ts, ref)         ids of trimmed messages, for the dedupe window
//     edges            (name)                            edges holding the channel's sockets (hub/edge-links.ts)
//     remote_members   (cid, edge, sub, info)            presence members on edges (hub/presence.ts)
//     webhook_outbox   (id, event)                       webhook events not yet delivered (hub/webhooks.ts)
//   RoomObject, KV: occupancy, edges-behind, webhook-inflight, directory-due, schema-version,
//                   watchers, watch-told (a Pusher user channel's hub: who watches its user, and what they were told)
//   RoomObject and EdgeObject, KV: late-expiry (sockets granted by an `auth` frame after accept)
//   EdgeObject, KV: position:<channel> (edge/channel-edge.ts), pusher-pool (dialects/pusher.ts)
//   DirectoryObject, SQLite: occupied (channel)

/**
 * The version this code writes. 1: 0.3.0's layout. 2 (0.4.0): idempotency ids are scoped by
 * publisher (`scope`: "" for the publish key, `u:<sub>` for a token's user, …), so no client can
 * make an origin's publish a duplicate; the log keeps the connection a message skips, so gap
 * repair skips it too. 3: appends (DESIGN v1.3 "Appends"): an append is a log row with `ref`
 * (the message it grows), `of` (that message's id) and `done`; `grown` keeps each grown message's
 * whole text, so it outlives its appends' rows; `meta.cut` is the last seq trimmed (a grown
 * message may be kept below it).
 */
export const SCHEMA_VERSION = 3;
const VERSION_KEY = "schema-version";

export const OCCUPANCY_KEY = "occupancy";
export const EDGES_BEHIND_KEY = "edges-behind";
export const WEBHOOK_INFLIGHT_KEY = "webhook-inflight";
/** Webhook events ever dropped from a full outbox (stats). */
export const WEBHOOK_DROPPED_KEY = "webhook-dropped";
export const DIRECTORY_DUE_KEY = "directory-due";
export const positionKey = (channel: string) => `position:${channel}`;
export const PUSHER_POOL_KEY = "pusher-pool";
export const LATE_EXPIRY_KEY = "late-expiry";
/** A Pusher user channel's hub (`#server-to-user-<id>`): the users watching this one (their watchlists). */
export const WATCHERS_KEY = "watchers";
/** The same hub: whether its watchers were last told the user is online. */
export const WATCH_TOLD_KEY = "watch-told";

const GROWN = "CREATE TABLE IF NOT EXISTS grown (ref INTEGER PRIMARY KEY, text TEXT NOT NULL, v INTEGER NOT NULL, n INTEGER NOT NULL, bytes INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0);";

export const TABLES = {
  log: `
CREATE TABLE IF NOT EXISTS meta (
  k INTEGER PRIMARY KEY CHECK (k = 0),
  channel TEXT NOT NULL,
  epoch TEXT NOT NULL,
  last_seq INTEGER NOT NULL,
  cut INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS log (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  event TEXT NOT NULL,
  data TEXT NOT NULL,
  ts INTEGER NOT NULL,
  sender TEXT,
  scope TEXT NOT NULL DEFAULT '',
  skip TEXT,
  ref INTEGER,
  of TEXT,
  done INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS log_scope_id ON log (scope, id);
${GROWN}
CREATE TABLE IF NOT EXISTS dedupe (
  scope TEXT NOT NULL DEFAULT '',
  id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  ref INTEGER,
  PRIMARY KEY (scope, id)
) WITHOUT ROWID;`,
  edges: "CREATE TABLE IF NOT EXISTS edges (name TEXT PRIMARY KEY) WITHOUT ROWID",
  remoteMembers: "CREATE TABLE IF NOT EXISTS remote_members (cid TEXT PRIMARY KEY, edge TEXT NOT NULL, sub TEXT NOT NULL, info TEXT) WITHOUT ROWID",
  localMembers: "CREATE TABLE IF NOT EXISTS local_members (sub TEXT PRIMARY KEY, info TEXT) WITHOUT ROWID",
  webhookOutbox: "CREATE TABLE IF NOT EXISTS webhook_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL)",
  occupied: "CREATE TABLE IF NOT EXISTS occupied (channel TEXT PRIMARY KEY) WITHOUT ROWID",
} as const;

/** Whether a table exists (the one probe every lazily made table uses). */
export function hasTable(sql: SqlStorage, name: string): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray().length > 0;
}

/**
 * The steps from each version to the next: `steps[v]` takes storage at version v to v + 1. Each
 * runs once, in the constructor's synchronous turn (before any request), then the version is
 * stored. An object with no storage yet has nothing to migrate and writes nothing.
 */
const steps: Record<number, (storage: DurableObjectStorage) => void> = {
  // 1 → 2: a scope on every id (what was published before counts as the publish key's), and
  // the connection a message skips (none, before).
  1: ({ sql }) => {
    if (!hasTable(sql, "log")) return;
    sql.exec(`ALTER TABLE log ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE log ADD COLUMN skip TEXT;
DROP INDEX IF EXISTS log_id;
CREATE UNIQUE INDEX IF NOT EXISTS log_scope_id ON log (scope, id);
CREATE TABLE dedupe_v2 (scope TEXT NOT NULL DEFAULT '', id TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (scope, id)) WITHOUT ROWID;
INSERT INTO dedupe_v2 (scope, id, seq, ts) SELECT '', id, seq, ts FROM dedupe;
DROP TABLE dedupe;
ALTER TABLE dedupe_v2 RENAME TO dedupe;`);
  },
  // 2 → 3: appends. Nothing was appended before, so every row is a message and nothing was kept below a trim.
  2: ({ sql }) => {
    if (!hasTable(sql, "log")) return;
    sql.exec(`ALTER TABLE log ADD COLUMN ref INTEGER;
ALTER TABLE log ADD COLUMN of TEXT;
ALTER TABLE log ADD COLUMN done INTEGER;
ALTER TABLE meta ADD COLUMN cut INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dedupe ADD COLUMN ref INTEGER;
${GROWN}`);
  },
};

/** The version of storage that never recorded one: 0.3.0 wrote none, nor does a wake with no log yet; the log's columns say. */
function unstampedVersion(sql: SqlStorage): number {
  const log = sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'log'").toArray()[0];
  if (log === undefined) return SCHEMA_VERSION;
  // A log made after its object's first wake was never stamped: its columns tell its version.
  if (!log.sql.includes("scope")) return 1;
  return log.sql.includes("ref INTEGER") ? SCHEMA_VERSION : 2;
}

export function migrate(storage: DurableObjectStorage): void {
  let version = storage.kv.get<number>(VERSION_KEY);
  if (version === SCHEMA_VERSION) return;
  if (version === undefined) {
    // Never stamped: nothing to do for an object with no log yet; else its log tells its shape.
    if (!hasTable(storage.sql, "log")) return;
    version = unstampedVersion(storage.sql);
  }
  for (; version < SCHEMA_VERSION; version++) steps[version]!(storage);
  storage.kv.put(VERSION_KEY, SCHEMA_VERSION);
}

/** An object whose storage was dropped (nothing left to keep) forgets its version too. */
export function forgetSchemaVersion(storage: DurableObjectStorage): void {
  storage.kv.delete(VERSION_KEY);
}
