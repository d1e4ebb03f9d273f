import { errors as joseErrors, jwtVerify } from "jose";
import { configFor } from "../settings/config.js";
import { secretsOf } from "../settings/secrets.js";
import type { Env } from "../env.js";
import { isPresenceChannel, isPrivateChannel, LIMITS } from "../protocol/index.js";
import { ServiceError } from "./service-error.js";
import { queryOf } from "./request-url.js";

/** Who is on the other end, as the room needs to know it. Reaches the room only from the Worker. */
export interface Identity {
  /** The token's `sub`, or null (publish key, anonymous). */
  sub: string | null;
  /** May publish to this channel (a publish key, or a token whose `pub` grants it). */
  canPublish: boolean;
  /** Token expiry (seconds since epoch), or null when no token is involved. */
  exp: number | null;
  /** Presence info from the token, serialized JSON, or null. */
  info: string | null;
}

export interface Claims {
  sub?: string;
  ch: string[];
  pub: string[];
  info?: unknown;
  exp: number;
}

const encoder = new TextEncoder();

/** True when a channel is covered by a grant list; an entry ending in `*` is a prefix. */
export function grants(patterns: readonly string[], channel: string): boolean {
  return patterns.some((p) => (p.endsWith("*") ? channel.startsWith(p.slice(0, -1)) : p === channel));
}

export function needsToken(env: Env, channel: string): boolean {
  return isPrivateChannel(channel) || configFor(env, channel).requireAuth;
}

/**
 * What a request presents: its bearer credential (a token or the publish key), a grant the host
 * app gave from its own session (the `authorize` hook of hibercast/server, src/mount.ts), or nothing.
 */
export type Credential = string | SessionGrant | null;

/** A grant from the host app's session: claims as a token's, checked by the same code (claimsFrom). */
export interface SessionGrant {
  readonly session: Claims;
}

/** Who vouches for a grant: a token (a bad claim is the client's 401) or the host app (its own bug: 500). */
type GrantSource = { what: "token"; code: "unauthorized" } | { what: "session grant"; code: "internal" };
const TOKEN: GrantSource = { what: "token", code: "unauthorized" };

function stringList(source: GrantSource, claim: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new ServiceError(source.code, `${source.what} claim "${claim}" must be an array of strings`);
  }
  return value;
}

/** The checks of every grant, a token's or a session's, on claims whose `exp` is already checked. */
function claimsFrom(source: GrantSource, payload: Record<string, unknown>, exp: number): Claims {
  if (payload.sub !== undefined && (typeof payload.sub !== "string" || payload.sub === "")) {
    throw new ServiceError(source.code, `${source.what} claim "sub" must be a non-empty string`);
  }
  if (payload.info !== undefined && JSON.stringify(payload.info).length > LIMITS.presenceInfoBytes) {
    throw new ServiceError(source.code, `${source.what} claim "info" is over ${LIMITS.presenceInfoBytes} bytes`);
  }
  return { sub: payload.sub as string | undefined, ch: stringList(source, "ch", payload.ch), pub: stringList(source, "pub", payload.pub), info: payload.info, exp };
}

/** The longest a session grant may run: its sockets stay open until exp, whatever the session does. */
export const SESSION_GRANT_MAX_MS = 7 * 86_400_000;

/**
 * What the host's `authorize` hook answered, as a grant: the shape of a token's claims, `exp`
 * (seconds since epoch) required, as for a token. A malformed one is the host's bug (500, never
 * a grant); one already expired is refused as an expired token is (401).
 */
export function sessionGrant(value: unknown): SessionGrant {
  const source: GrantSource = { what: "session grant", code: "internal" };
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ServiceError("internal", "the authorize hook must answer a grant {sub?, ch?, pub?, info?, exp} or null");
  }
  const payload = value as Record<string, unknown>;
  if (typeof payload.exp !== "number" || !Number.isFinite(payload.exp)) {
    throw new ServiceError("internal", 'session grant claim "exp" is required: seconds since epoch, when the grant ends');
  }
  if (payload.exp * 1000 <= Date.now()) throw new ServiceError("unauthorized", "session grant expired");
  // Sockets are checked against a grant when they connect and closed at its exp, so a grant far
  // ahead outlives the session it came from; far ahead is also what exp in ms looks like.
  if (payload.exp * 1000 > Date.now() + SESSION_GRANT_MAX_MS) {
    throw new ServiceError("internal", `session grant claim "exp" is more than ${SESSION_GRANT_MAX_MS / 86_400_000} days ahead: seconds since epoch (not ms), when the session ends`);
  }
  return { session: claimsFrom(source, payload, payload.exp) };
}

/** Verifies an HS256 token against every configured secret (rotation) and checks its claims. */
export async function verifyToken(env: Env, token: string): Promise<Claims> {
  const secrets = secretsOf(env).jwt;
  if (secrets.length === 0) throw new ServiceError("unauthorized", "tokens are not enabled: JWT_SECRET is not set");
  let lastError: unknown;
  for (const secret of secrets) {
    try {
      const { payload } = await jwtVerify(token, encoder.encode(secret), {
        algorithms: ["HS256"],
        requiredClaims: ["exp"],
      });
      return claimsFrom(TOKEN, payload, payload.exp as number);
    } catch (err) {
      if (err instanceof ServiceError) throw err;
      lastError = err;
      // Only a bad signature may be a token signed with another entry of the list.
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) break;
    }
  }
  throw new ServiceError("unauthorized", describeJoseError(lastError));
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "token expired";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "token signature is invalid";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return "token algorithm must be HS256";
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `token claim "${err.claim}" is invalid or missing`;
  return "token is malformed";
}

const looksLikeJwt = (s: string) => s.split(".").length === 3;

async function digest(s: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(s));
}

/** Digests of the configured publish keys, computed once per env (per isolate), not per request. */
const keyDigests = new WeakMap<object, Promise<ArrayBuffer[]>>();

/** Constant-time check of a presented publish key against every configured key. */
export async function isPublishKey(env: Env, presented: string): Promise<boolean> {
  let digests = keyDigests.get(env);
  if (!digests) keyDigests.set(env, (digests = Promise.all(secretsOf(env).publish.map(digest))));
  const keys = await digests;
  if (keys.length === 0) return false;
  // Hash first so lengths are equal and timingSafeEqual applies; check every key, no early exit.
  const mine = await digest(presented);
  let ok = false;
  for (const key of keys) ok = crypto.subtle.timingSafeEqual(mine, key) || ok;
  return ok;
}

/** The bearer credential of a request: `Authorization: Bearer X`, else `?token=X` when allowed. */
export function bearer(request: Request, allowQuery: boolean): string | null {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new ServiceError("unauthorized", "Authorization header must be 'Bearer <credential>'");
    return m[1]!;
  }
  if (allowQuery) {
    const q = queryOf(request).get("token");
    if (q) return q;
  }
  return null;
}

/** A token's `pub` grant publishes to a channel only where its options allow client publishing. */
export function mayPublish(env: Env, claims: Pick<Claims, "pub">, channel: string): boolean {
  return grants(claims.pub, channel) && configFor(env, channel).clientPublish;
}

function identityOf(env: Env, claims: Claims | null, channel: string): Identity {
  return {
    sub: claims?.sub ?? null,
    canPublish: claims !== null && mayPublish(env, claims, channel),
    exp: claims?.exp ?? null,
    info: claims?.info === undefined ? null : JSON.stringify(claims.info),
  };
}

/** A token may subscribe to a channel that needs one only when its `ch` grants it. */
export function checkChannelGrant(env: Env, channel: string, claims: Claims): void {
  if (needsToken(env, channel) && !grants(claims.ch, channel)) {
    throw new ServiceError("forbidden", `token does not grant channel ${channel}`);
  }
}

/** The claims of a credential: a token's once verified, or a session's as the hook's answer was checked. */
export async function claimsOf(env: Env, credential: string | SessionGrant): Promise<Claims> {
  return typeof credential === "string" ? verifyToken(env, credential) : credential.session;
}

/** Subscribing (socket, SSE) and reading (history, presence, stats without the key). */
export async function authorizeSubscribe(env: Env, channel: string, credential: Credential): Promise<Identity> {
  if (credential === null) {
    if (needsToken(env, channel)) throw new ServiceError("unauthorized", `channel ${channel} needs a subscribe token`);
    return identityOf(env, null, channel);
  }
  const claims = await claimsOf(env, credential);
  checkChannelGrant(env, channel, claims);
  if (isPresenceChannel(channel) && claims.sub === undefined) {
    throw new ServiceError("forbidden", "presence channels need a token with sub");
  }
  return identityOf(env, claims, channel);
}

/** Who may publish where: the publish key may publish anywhere, a token where `pub` grants. */
export interface Publisher {
  sub: string | null;
  /** Its id space for idempotency ids (see PublishOptions.scope): "" for the publish key. */
  scope: string;
  may(channel: string): boolean;
}

/**
 * A token's id space: its user's, or for a token with no `sub` the token's own (a digest of it;
 * of a session grant with no `sub`, a digest of the grant, as identical claims make one token).
 */
async function tokenScope(sub: string | undefined, token: string): Promise<string> {
  if (sub !== undefined) return `u:${sub}`;
  const bytes = new Uint8Array(await digest(token)).slice(0, 12);
  return `t:${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const KEY_HOLDER: Identity = { sub: null, canPublish: true, exp: null, info: null };

/** Authenticates an HTTP publisher: the publish key, or a valid token (checked per channel). */
export async function authenticatePublisher(env: Env, credential: Credential): Promise<Publisher> {
  if (credential === null) throw new ServiceError("unauthorized", "publishing needs 'Authorization: Bearer <publish key or token>'");
  if (typeof credential === "string") {
    if (await isPublishKey(env, credential)) return { sub: null, scope: "", may: () => true };
    if (!looksLikeJwt(credential)) throw new ServiceError("forbidden", "wrong publish key");
  }
  const claims = await claimsOf(env, credential);
  // A session grant with no sub: its id space is the grant less its exp, which moves with every
  // grant the host makes (a retry a second later must still be the same publisher).
  const scope = await tokenScope(claims.sub, typeof credential === "string" ? credential : JSON.stringify({ ...claims, exp: undefined }));
  return { sub: claims.sub ?? null, scope, may: (channel) => mayPublish(env, claims, channel) };
}

/** Publishing one channel over HTTP. */
export async function authorizePublish(env: Env, channel: string, credential: Credential): Promise<Publisher> {
  const publisher = await authenticatePublisher(env, credential);
  if (!publisher.may(channel)) {
    const why = configFor(env, channel).clientPublish ? `token does not grant publishing to ${channel}` : `clients may not publish to ${channel} (channel option clientPublish: false); use the publish key`;
    throw new ServiceError("forbidden", why);
  }
  return publisher;
}

/** Operations only the origin may do (purge): the publish key and nothing else. */
export async function requirePublishKey(env: Env, credential: string | null): Promise<void> {
  if (credential === null) throw new ServiceError("unauthorized", "this needs 'Authorization: Bearer <publish key>'");
  if (await isPublishKey(env, credential)) return;
  if (looksLikeJwt(credential)) throw new ServiceError("forbidden", "this needs the publish key; a token cannot do it");
  throw new ServiceError("forbidden", "wrong publish key");
}

/** Reads that also accept the publish key (stats, history). */
export async function authorizeRead(env: Env, channel: string, credential: Credential): Promise<Identity> {
  if (typeof credential === "string") {
    if (await isPublishKey(env, credential)) return KEY_HOLDER;
    if (!looksLikeJwt(credential)) throw new ServiceError("forbidden", "wrong publish key");
  }
  return authorizeSubscribe(env, channel, credential);
}
