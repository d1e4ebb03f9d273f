// Every kind of configuration mistake, each named with its var, rule and field; and the forms
// CHANNEL_OPTIONS may take. (End to end: the "options" and "bad-config" test projects.)
import { describe, expect, it } from "vitest";
import { env } from "cloudflare:workers";
import { configFor } from "../src/settings/config";
import { secretsOf } from "../src/settings/secrets";

/** The error configFor throws for these vars (each call is a fresh env object: parsed anew). */
function mistake(vars: Record<string, unknown>): string {
  try {
    configFor({ ...vars }, "chat-1");
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected a configuration error");
}

describe("CHANNEL_OPTIONS", () => {
  const rules = [{ match: "chat-*", logMaxMessages: 10 }, { match: "chat", latest: true }];

  it("is taken as a JSON array (wrangler.toml) or a JSON string (.dev.vars, secrets)", () => {
    for (const CHANNEL_OPTIONS of [rules, JSON.stringify(rules)]) {
      expect(configFor({ CHANNEL_OPTIONS }, "chat-1")).toMatchObject({ logMaxMessages: 10, rule: "chat-*", latest: false });
      expect(configFor({ CHANNEL_OPTIONS }, "chat")).toMatchObject({ logMaxMessages: 1000, rule: "chat", latest: true });
      expect(configFor({ CHANNEL_OPTIONS }, "other")).toMatchObject({ logMaxMessages: 1000, rule: null });
    }
  });

  it("lets the first matching rule win, over the global vars", () => {
    const env = { LOG_MAX_MESSAGES: "50", CHANNEL_OPTIONS: [{ match: "a-b", logMaxMessages: 2 }, { match: "a-*", logMaxMessages: 3 }] };
    expect(configFor(env, "a-b").logMaxMessages).toBe(2);
    expect(configFor(env, "a-c").logMaxMessages).toBe(3);
    expect(configFor(env, "b").logMaxMessages).toBe(50);
  });

  const cases: [string, unknown, RegExp][] = [
    ["invalid JSON", '[{"match": "chat-*",]', /CHANNEL_OPTIONS is not valid JSON/],
    ["not an array", { match: "chat-*" }, /must be a JSON array/],
    ["a rule that is not an object", ["chat-*"], /rule 1 must be an object/],
    ["a rule without match", [{ logMaxMessages: 1 }], /rule 1: "match" must be a string/],
    ["an unknown option", [{ match: "chat-*", logMaxMesages: 1 }], /rule 1 \("chat-\*"\): unknown option "logMaxMesages"/],
    ["a wrong type", [{ match: "chat-*", latest: "yes" }], /rule 1 \("chat-\*"\): latest must be true or false \(got "yes"\)/],
    ["a number out of range", [{ match: "chat-*", clientPubPerS: 0 }], /clientPubPerS must be a whole number ≥ 1 \(got 0\)/],
    ["a fraction", [{ match: "chat-*", logMaxAgeS: 1.5 }], /logMaxAgeS must be a whole number/],
    ["shards over 64", [{ match: "wide-*", shards: 65 }], /shards must be at most 64 \(got 65\)/],
    ["maxSockets over the platform's 32,768 sockets per object", [{ match: "chat-*", maxSockets: 32_769 }], /rule 1 \("chat-\*"\): maxSockets must be at most 32768 \(got 32769\): the platform's limit of hibernatable sockets per object/],
    ["shards on presence channels", [{ match: "presence-*", shards: 4 }], /presence channels cannot be sharded/],
    ["shards on a rule that covers presence channels", [{ match: "*", shards: 2 }], /presence channels cannot be sharded/],
    ["a match with characters no channel has", [{ match: "chat/*", latest: true }], /"match" can never match a channel/],
    ["a star inside the match", [{ match: "ch*at", latest: true }], /"match" can never match a channel/],
    ["a match shadowed by an earlier prefix", [{ match: "chat-*" }, { match: "chat-vip", latest: true }], /rule 2 \("chat-vip"\): "match" can never match: rule 1 \("chat-\*"\) comes first/],
    ["a repeated exact match", [{ match: "lobby" }, { match: "lobby", latest: true }], /rule 2 \("lobby"\): "match" repeats an earlier rule/],
  ];
  for (const [what, value, message] of cases) {
    it(`refuses ${what}, naming it`, () => {
      expect(mistake({ CHANNEL_OPTIONS: value })).toMatch(message);
    });
  }

  it("makes the whole config an error, never a fallback to defaults", () => {
    const env = { CHANNEL_OPTIONS: [{ match: "chat-*", latest: "yes" }] };
    expect(() => configFor(env, "other")).toThrow(/configuration error/);
    expect(() => configFor(env, "other")).toThrow(/configuration error/); // every time, from the cache
  });
});

describe("numeric and boolean vars", () => {
  it("parse from strings and from JSON values", () => {
    expect(configFor({ MAX_SOCKETS: "12", REQUIRE_AUTH: "TRUE" }, "x")).toMatchObject({ maxSockets: 12, requireAuth: true });
    expect(configFor({ MAX_SOCKETS: 12, REQUIRE_AUTH: false } as never, "x")).toMatchObject({ maxSockets: 12, requireAuth: false });
    expect(configFor({}, "x")).toMatchObject({ maxSockets: 30000, requireAuth: false, logMaxMessages: 1000, sseMaxBacklogBytes: 1048576 });
  });

  const typos: [Record<string, string>, RegExp][] = [
    [{ MAX_SOCKETS: "30k" }, /MAX_SOCKETS must be a whole number ≥ 1 \(got "30k"\)/],
    [{ LOG_MAX_MESSAGES: "0" }, /LOG_MAX_MESSAGES must be a whole number ≥ 1 \(got 0\)/],
    [{ DEDUPE_WINDOW_S: "-1" }, /DEDUPE_WINDOW_S must be a whole number ≥ 0/],
    [{ REQUIRE_AUTH: "yes" }, /REQUIRE_AUTH must be true or false \(got "yes"\)/],
    [{ MAX_MESSAGE_BYTES: "64KiB" }, /MAX_MESSAGE_BYTES must be a whole number/],
    [{ SSE_MAX_BACKLOG_BYTES: "100" }, /SSE_MAX_BACKLOG_BYTES must be a whole number ≥ 1024/],
    // Past what the platform stores or holds: refused here, not as a 500 on some later publish or socket.
    [{ MAX_MESSAGE_BYTES: "1048577" }, /MAX_MESSAGE_BYTES must be at most 1048576 \(got 1048577\): a stored message .* 2 MB/],
    [{ MAX_SOCKETS: "32769" }, /MAX_SOCKETS must be at most 32768 \(got 32769\): the platform's limit of hibernatable sockets per object/],
    [{ MAX_SUBSCRIPTIONS: "101" }, /MAX_SUBSCRIPTIONS must be at most 100 \(got 101\): .*16 KiB socket attachment/],
  ];
  it("take each platform bound itself", () => {
    const vars = { MAX_MESSAGE_BYTES: "1048576", MAX_SOCKETS: "32768", MAX_SUBSCRIPTIONS: "100", CHANNEL_OPTIONS: [{ match: "chat-*", maxSockets: 32_768 }] };
    expect(configFor(vars, "x")).toMatchObject({ maxMessageBytes: 1_048_576, maxSockets: 32_768, maxSubscriptions: 100 });
    expect(configFor(vars, "chat-1").maxSockets).toBe(32_768);
  });

  for (const [vars, message] of typos) {
    it(`refuses ${JSON.stringify(vars)} loudly`, () => {
      expect(mistake(vars)).toMatch(message);
    });
  }
});

describe("secrets", () => {
  // An HS256 key under 32 bytes (RFC 7518 §3.2), or a short publish key, can be brute-forced
  // offline from one token or guessed: such a deployment answers 500 naming the var, not run.
  it("refuses a JWT_SECRET under 32 bytes and a PUBLISH_KEY under 16, naming the entry", () => {
    expect(() => secretsOf({ JWT_SECRET: "secret" })).toThrow(/configuration error: JWT_SECRET entry 1 is shorter than 32 bytes/);
    expect(() => secretsOf({ JWT_SECRET: `${"k".repeat(32)},short` })).toThrow(/JWT_SECRET entry 2 is shorter than 32 bytes/);
    expect(() => secretsOf({ PUBLISH_KEY: "key" })).toThrow(/PUBLISH_KEY entry 1 is shorter than 16 bytes/);
    expect(secretsOf({ JWT_SECRET: ` ${"k".repeat(32)} , ${"j".repeat(40)}`, PUBLISH_KEY: "p".repeat(16) })).toEqual({ jwt: ["k".repeat(32), "j".repeat(40)], publish: ["p".repeat(16)] });
    expect(secretsOf({})).toEqual({ jwt: [], publish: [] });
  });

  it("a short secret makes every request a 500 that says why", async () => {
    const worker = (await import("../src/worker")).default;
    const res = await worker.fetch(new Request("http://hibercast.test/v1/channels/x"), { ...env, JWT_SECRET: "short" } as never, { waitUntil() {}, passThroughOnException() {} } as never);
    expect(res.status).toBe(500);
    expect(await res.text()).toMatch(/JWT_SECRET entry 1 is shorter than 32 bytes/);
  });
});

describe("PUSHER_CLIENT_EVENTS", () => {
  const app = { PUSHER_APP_ID: "1", PUSHER_KEY: "k", PUSHER_SECRET: "s" };
  it("is off unless true, and a typo is a named configuration error", async () => {
    const { pusherApp } = await import("../src/pusher/app");
    expect(pusherApp({ ...app })!.clientEvents).toBe(false);
    expect(pusherApp({ ...app, PUSHER_CLIENT_EVENTS: "true" })!.clientEvents).toBe(true);
    expect(pusherApp({ ...app, PUSHER_CLIENT_EVENTS: " FALSE " })!.clientEvents).toBe(false);
    expect(() => pusherApp({ ...app, PUSHER_CLIENT_EVENTS: "yes" })).toThrow(/PUSHER_CLIENT_EVENTS must be true or false/);
  });
});
