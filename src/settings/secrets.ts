// The service's own secrets, checked once per isolate like every setting: an HS256 key shorter
// than its hash (RFC 7518 §3.2: at least 256 bits) or a short publish key can be guessed or
// brute-forced offline from one token, so a deployment with one refuses to run (a named
// configuration error) instead of running guessable. Comma-separated lists allow rotation.
import { ConfigError, perEnv, secretList } from "./per-env.js";
import type { Vars } from "./vars.js";

/** Characters a JWT_SECRET needs at least (32 bytes for HS256), and a PUBLISH_KEY. */
export const MIN_SECRET = { JWT_SECRET: 32, PUBLISH_KEY: 16 } as const;

function read(env: Partial<Vars>): { jwt: string[]; publish: string[] } {
  const check = (name: keyof typeof MIN_SECRET) => {
    const list = secretList(env[name]);
    const short = list.findIndex((s) => new TextEncoder().encode(s).length < MIN_SECRET[name]);
    if (short >= 0) throw new ConfigError(`${name} entry ${short + 1} is shorter than ${MIN_SECRET[name]} bytes: use a random secret (e.g. openssl rand -hex 32)`);
    return list;
  };
  return { jwt: check("JWT_SECRET"), publish: check("PUBLISH_KEY") };
}

/** JWT_SECRET and PUBLISH_KEY as lists, each entry long enough (else a ConfigError). */
export const secretsOf = perEnv(read);
