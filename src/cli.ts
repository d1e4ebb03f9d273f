#!/usr/bin/env node
// `hibercast`: publish, subscribe, read history and mint dev tokens from a terminal.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { HibercastError, subscribe, type WebSocketConstructor } from "./client/index.js";
import { createPublisher } from "./client/publisher.js";

const USAGE = `hibercast: real-time broadcast on Cloudflare Durable Objects

Usage:
  hibercast publish <channel> <event> [json]        publish (data defaults to null)
  hibercast subscribe <channel> [--since N --epoch E] [--rewind N] [--token JWT]
                                                    print frames as JSON lines; resumes on drops
  hibercast history <channel> [--since N --epoch E | --before N] [--limit N]
  hibercast token --sub ID --ch 'private-*' [--pub 'chan,...'] [--ttl 1h] [--info JSON] [--secret S]
                                                    mint a dev token (secret from .dev.vars JWT_SECRET)

Options:
  --url URL     service URL (env HIBERCAST_URL; default http://127.0.0.1:8787)
  --key KEY     publish key (env HIBERCAST_KEY; default PUBLISH_KEY from .dev.vars)
  -h, --help    this help
`;

class UsageError extends Error {}

/** How every server error is printed: `code (status): message`. */
const describe = (e: HibercastError) => `${e.code}${e.status ? ` (${e.status})` : ""}: ${e.message}`;

/** First entry of a var in .dev.vars (KEY = "value" or KEY=value), if the file has it. */
function devVar(name: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(".dev.vars", "utf8");
  } catch {
    return undefined;
  }
  const m = new RegExp(`^\\s*${name}\\s*=\\s*"?([^"\\n]*)"?\\s*$`, "m").exec(text);
  return m?.[1]?.split(",")[0]?.trim() || undefined;
}

function parseJson(text: string | undefined, what: string): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${what} is not valid JSON: ${text}`);
  }
}

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(value);
}

const list = (value: string | undefined) => (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);

async function webSocketImpl(): Promise<WebSocketConstructor> {
  const global = (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  try {
    const moduleName = "ws";
    return ((await import(moduleName)) as { default: WebSocketConstructor }).default;
  } catch {
    throw new UsageError("subscribe needs Node 22+ (global WebSocket) or the ws package installed");
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      key: { type: "string" },
      token: { type: "string" },
      since: { type: "string" },
      epoch: { type: "string" },
      before: { type: "string" },
      rewind: { type: "string" },
      limit: { type: "string" },
      sub: { type: "string" },
      ch: { type: "string" },
      pub: { type: "string" },
      ttl: { type: "string" },
      info: { type: "string" },
      secret: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const url = values.url ?? process.env.HIBERCAST_URL ?? "http://127.0.0.1:8787";
  const key = () => {
    const k = values.key ?? process.env.HIBERCAST_KEY ?? devVar("PUBLISH_KEY");
    if (!k) throw new UsageError("no publish key: pass --key, set HIBERCAST_KEY, or run where .dev.vars has PUBLISH_KEY");
    return k;
  };
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const channelArg = () => {
    if (!args[0]) throw new UsageError(`${command} needs a channel`);
    return args[0];
  };

  switch (command) {
    case "publish": {
      if (!args[1]) throw new UsageError("publish needs <channel> <event> [json]");
      print(await createPublisher({ url, key: key() }).publish(channelArg(), args[1], parseJson(args[2], "data")));
      return 0;
    }
    case "history": {
      const page = await createPublisher({ url, key: key() }).history(channelArg(), {
        since: intOption(values.since, "since"),
        epoch: values.epoch,
        before: intOption(values.before, "before"),
        limit: intOption(values.limit, "limit"),
      });
      print(page);
      return 0;
    }
    case "subscribe": {
      const since = intOption(values.since, "since");
      const sub = subscribe({
        url,
        channel: channelArg(),
        token: values.token,
        since: since === undefined ? undefined : { seq: since, epoch: values.epoch ?? null },
        rewind: intOption(values.rewind, "rewind"),
        WebSocket: await webSocketImpl(),
      });
      sub.on("*", (_data, msg) => print(msg));
      sub.connection.on("welcome", print);
      sub.connection.on("reset", print);
      sub.connection.on("reconnecting", (r) => process.stderr.write(`reconnecting in ${r.delayMs} ms (close ${r.code} ${r.reason})\n`));
      sub.connection.on("error", (e) => process.stderr.write(`hibercast: ${describe(e)}\n`));
      sub.presence.on("members", (members) => print({ t: "members", members, count: sub.memberCount }));
      sub.presence.on("join", (member) => print({ t: "join", member }));
      sub.presence.on("leave", (member) => print({ t: "leave", member }));
      process.once("SIGINT", () => sub.close());
      process.once("SIGTERM", () => sub.close());
      return new Promise((resolve) => sub.connection.on("close", (c) => resolve(c.error ? 1 : 0)));
    }
    case "token": {
      if (!values.sub && !values.ch && !values.pub) throw new UsageError("token needs at least one of --sub, --ch, --pub");
      const secret = values.secret ?? process.env.JWT_SECRET?.split(",")[0] ?? devVar("JWT_SECRET");
      if (!secret) throw new UsageError("no secret: pass --secret or run where .dev.vars has JWT_SECRET");
      const claims: Record<string, unknown> = {};
      if (values.sub) claims.sub = values.sub;
      if (values.ch) claims.ch = list(values.ch);
      if (values.pub) claims.pub = list(values.pub);
      if (values.info) claims.info = parseJson(values.info, "--info");
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256" })
        .setIssuedAt()
        .setExpirationTime(values.ttl ?? "1h")
        .sign(new TextEncoder().encode(secret));
      process.stdout.write(`${token}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`hibercast: ${(err as Error).message}\nRun 'hibercast --help' for usage.\n`);
      process.exit(2);
    }
    if (err instanceof HibercastError) {
      process.stderr.write(`hibercast: ${describe(err)}\n`);
      process.exit(1);
    }
    process.stderr.write(`hibercast: ${String((err as Error)?.message ?? err)}\n`);
    process.exit(1);
  },
);
