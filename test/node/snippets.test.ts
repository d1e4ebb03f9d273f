// Every code block in README.md and docs/ is named and run: this file checks the names, and runs
// each block (taken by name with snippet(), never a copy) against the worker served for the
// Node-side tests. webhooks.test.ts runs the two webhook blocks against its own receiver.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { experimental_readRawConfig } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, channelName, publisher, sleep, token, until } from "./helpers";
import { NODE_PUBLISH_KEY } from "./server";
import { commands, importSnippet, localize, sameShape, sh, type ShellResult } from "./snippet-run";
import { snippet, snippetsOf } from "./snippets";

/** README.md and every markdown file under docs/. */
function docFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".md") ? [path.join(dir, e.name)] : []));
  return ["README.md", ...walk("docs").sort()];
}

/** Every test source under test/. */
function testSources(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : /\.(ts|mts|mjs|js)$/.test(e.name) ? [path.join(dir, e.name)] : []));
  return walk("test").map((f) => readFileSync(f, "utf8"));
}

describe("the docs' code blocks", () => {
  it("each has a name, and no name is used twice", () => {
    const problems: string[] = [];
    const seen = new Map<string, string>();
    let blocks = 0;
    for (const file of docFiles()) {
      const lines = readFileSync(file, "utf8").split("\n");
      let open = false;
      lines.forEach((line, i) => {
        if (!/^\s*```/.test(line)) return;
        if (open) return void (open = false);
        open = true;
        blocks++;
        const name = /^<!-- snippet: ([\w./-]+) -->$/.exec(lines[i - 1] ?? "")?.[1];
        if (line !== line.trimStart()) problems.push(`${file}:${i + 1}: an indented block (start it at the line's beginning)`);
        if (!name) return void problems.push(`${file}:${i + 1}: a block without <!-- snippet: NAME --> on the line before it`);
        if (seen.has(name)) problems.push(`${file}:${i + 1}: the name ${name} is used twice (also in ${seen.get(name)})`);
        seen.set(name, file);
      });
      if (open) problems.push(`${file}: a block that is never closed`);
      // The helper finds the same blocks (a marker right before its fence, the fence closed).
      const found = snippetsOf(file).length;
      const named = [...seen.values()].filter((f) => f === file).length;
      if (found !== named) problems.push(`${file}: snippet() finds ${found} named blocks, ${named} are marked`);
    }
    expect(problems).toEqual([]);
    expect(blocks).toBeGreaterThan(30);
  });

  it("each is taken by a test: snippet(\"FILE\", \"NAME\") appears in a test under test/", () => {
    const sources = testSources().join("\n");
    const untaken = docFiles().flatMap((file) => snippetsOf(file).filter((s) => !sources.includes(`snippet(${JSON.stringify(file)}, ${JSON.stringify(s.name)})`)).map((s) => `${file}: ${s.name}`));
    expect(untaken).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Helpers for running blocks.

/** A channel name made unique for this run, everywhere the block names it (URLs, JSON, strings). */
function channels(code: string, names: Record<string, string>, options: { words?: boolean } = {}): string {
  const before = options.words ? "[\"/'`\\s]" : "[\"/'`]";
  for (const [from, to] of Object.entries(names)) code = code.replace(new RegExp(`(?<=${before})${from.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&")}(?=["/'?\\s\`]|$)`, "gm"), to);
  return code;
}

/** Runs a shell block line by line; each command's output must have the shape its `# …` line shows. */
async function runShell(code: string, options: { env?: Record<string, string>; loose?: string[] } = {}): Promise<ShellResult[]> {
  const results: ShellResult[] = [];
  for (const { line, expected } of commands(code)) {
    const result = await sh(line, { env: options.env });
    expect(result.code, `${line}\n${result.stderr}`).toBe(0);
    if (expected.length > 0) {
      const want = expected.join("\n");
      if (/^[[{]/.test(want)) {
        const wrong = sameShape(JSON.parse(want), JSON.parse(result.stdout), options.loose);
        expect(wrong, `${line}\nprinted ${result.stdout}`).toBeNull();
      } else {
        expect(result.stdout.trim(), line).toBe(want.trim());
      }
    }
    results.push(result);
  }
  return results;
}

/** A console for a block: what it logs is kept, for the test to check. */
const CONSOLE = "const logged = []; const console = { log: (...a) => logged.push(a), debug: () => {}, error: (...a) => logged.push(a) }; export { logged };";

/** wrangler.toml fragment → its vars, read by wrangler's own config reader. */
function varsOf(toml: string): Record<string, unknown> {
  const dir = mkdtempSync(path.join(tmpdir(), "hibercast-snippet-toml-"));
  try {
    const file = path.join(dir, "wrangler.toml");
    writeFileSync(file, `name = "x"\nmain = "src/worker.ts"\ncompatibility_date = "2026-11-01"\n${toml}`);
    return (experimental_readRawConfig({ config: file }).rawConfig.vars ?? {}) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Settings {
  configFor(vars: Record<string, unknown>, channel: string): Record<string, unknown>;
  checkConfig(vars: Record<string, unknown>): void;
}
let settingsModule: Promise<Settings> | undefined;
/** The Worker's own config parser (src/settings), with every setting's reader registered. */
const settings = () =>
  (settingsModule ??= importSnippet<Settings>(
    "settings",
    'export { configFor, checkConfig } from "./src/settings/config.ts"; import "./src/pusher/app.ts"; import "./src/hub/webhooks.ts"; import { setLogSink } from "./src/server/log.ts"; setLogSink(() => {});',
  ));

const SECRETS = { PUBLISH_KEY: "a-publish-key-of-16+", JWT_SECRET: "a-jwt-secret-of-at-least-32-bytes-long" };

// ---------------------------------------------------------------------------------------------

/** A free local port. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Frames a raw socket received, parsed. */
function frames(ws: WebSocket): Record<string, unknown>[] {
  const got: Record<string, unknown>[] = [];
  ws.addEventListener("message", (e) => got.push(JSON.parse(String(e.data)) as Record<string, unknown>));
  return got;
}

type Logged = { logged: unknown[][] };

describe("README.md", () => {
  it("readme/commands: the two commands; `npm run dev` serves, `npm test` is what CI runs", async () => {
    const block = snippet("README.md", "readme/commands");
    expect(commands(block).map((c) => c.line)).toEqual(["npm install && npm run dev", "npm install && npm test"]);
    expect((JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> }).scripts.test).toMatch(/typecheck.*vitest run/);
    expect(readFileSync(".ci/run", "utf8")).toMatch(/^npm test\b/m);
    // `npm run dev` as printed, on a free port (npm install is what CI's npm ci already did). It
    // runs in a folder of links to this checkout, so the .dev.vars and .wrangler/ it makes there
    // never reach the other tests' workers.
    const checkout = mkdtempSync(path.join(tmpdir(), "hibercast-dev-"));
    for (const name of ["package.json", "wrangler.toml", ".dev.vars.example", "tsconfig.json", "src", "scripts", "node_modules"]) symlinkSync(path.resolve(name), path.join(checkout, name));
    const port = await freePort();
    const dev = spawn("npm", ["run", "dev", "--", "--port", String(port), "--inspector-port", String(await freePort())], {
      cwd: checkout,
      detached: true,
      stdio: "ignore",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    });
    try {
      const deadline = Date.now() + 60_000;
      let health: unknown = null;
      while (health === null && Date.now() < deadline) {
        health = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.json() as Promise<unknown>, () => null);
        if (health === null) await sleep(300);
      }
      expect(health).toEqual({ ok: true });
      expect(readFileSync(path.join(checkout, ".dev.vars"), "utf8")).toBe(readFileSync(".dev.vars.example", "utf8"));
    } finally {
      process.kill(-dev.pid!, "SIGINT");
      await new Promise((resolve) => (dev.exitCode === null ? dev.once("exit", resolve) : resolve(null)));
      rmSync(checkout, { recursive: true, force: true });
    }
  }, 90_000);

  it("readme/subscribe, readme/publish, readme/resume: subscribe, publish, drop, resume exactly", async () => {
    const ch = channelName("scores");
    const names = { scores: ch };
    const sub = await importSnippet<Logged & { cursor: { since: number; epoch: string | null }; ws: WebSocket }>(
      "readme-subscribe",
      localize(channels(snippet("README.md", "readme/subscribe"), names)),
      { prelude: CONSOLE, epilogue: "export { cursor, ws };" },
    );
    await until(() => sub.cursor.epoch !== null, 5000, "the welcome");
    await runShell(localize(channels(snippet("README.md", "readme/publish"), names)));
    await until(() => sub.logged.length > 0, 5000, "the message");
    expect(sub.logged).toEqual([[1, "goal", { home: 1, away: 0 }]]);
    expect(sub.cursor.since).toBe(1);

    sub.ws.close();
    await publisher().publish(ch, "goal", { home: 2, away: 0 });
    await publisher().publish(ch, "goal", { home: 3, away: 0 });
    (globalThis as { readmeCursor?: unknown }).readmeCursor = sub.cursor;
    const resumed = await importSnippet<{ sockets: (WebSocket & { got: Record<string, unknown>[] })[] }>(
      "readme-resume",
      localize(channels(snippet("README.md", "readme/resume"), names)),
      {
        prelude:
          "const cursor = globalThis.readmeCursor; const sockets = []; export { sockets };" +
          "class WebSocket extends globalThis.WebSocket { constructor(url) { super(url); this.got = []; this.addEventListener('message', (e) => this.got.push(JSON.parse(e.data))); sockets.push(this); } }",
      },
    );
    const [ws] = resumed.sockets;
    await until(() => ws!.got.filter((f) => f.t === "msg").length === 2, 5000, "the replay");
    expect(ws!.got.map((f) => [f.t, f.seq])).toEqual([["welcome", 3], ["msg", 2], ["msg", 3]]);
    ws!.close();
  });

  it("readme/sdk: the SDK subscriber gets what the publisher sends", async () => {
    const ch = channelName("scores");
    const m = await importSnippet<Logged & { sub: { close(): void } }>("readme-sdk", localize(channels(snippet("README.md", "readme/sdk"), { scores: ch })), { prelude: CONSOLE, epilogue: "export { sub };" });
    await until(() => m.logged.length > 0, 5000, "the message");
    expect(m.logged).toEqual([[1, { home: 2, away: 0 }]]);
    m.sub.close();
  });

  it("readme/deploy: both deploys build and validate (wrangler's --dry-run: no account here)", async () => {
    const out = mkdtempSync(path.join(tmpdir(), "hibercast-deploy-"));
    try {
      const lines = commands(snippet("README.md", "readme/deploy")).map((c) => c.line);
      expect(lines).toEqual(["npm run deploy", "npx wrangler deploy --env staging"]);
      for (const line of lines) {
        const dry = line.startsWith("npm run") ? `${line} -- --dry-run --outdir ${out}` : `${line} --dry-run --outdir ${out}`;
        const result = await sh(dry, { timeoutMs: 60_000, env: { WRANGLER_SEND_METRICS: "false" } });
        expect(result.code, result.stderr + result.stdout).toBe(0);
        expect(result.stdout + result.stderr).toMatch(/--dry-run: exiting now/);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("docs/guides/getting-started.md", () => {
  it("getting-started/sse, /publish, /history: an SSE subscriber, a publish and its retry, history and stats", async () => {
    const ch = channelName("scores");
    const names = { scores: ch };
    const sse = await importSnippet<Logged & { es: { close(): void }; welcomed: () => boolean }>(
      "getting-started-sse",
      localize(channels(snippet("docs/guides/getting-started.md", "getting-started/sse"), names)),
      {
        prelude: `import { EventSource } from "eventsource"; ${CONSOLE}`,
        epilogue: "let welcome = false; es.addEventListener('welcome', () => (welcome = true)); export const welcomed = () => welcome; export { es };",
      },
    );
    await until(() => sse.welcomed(), 5000, "the welcome event");
    await runShell(localize(channels(snippet("docs/guides/getting-started.md", "getting-started/publish"), names)));
    await until(() => sse.logged.length > 0, 5000, "the SSE message");
    const [[lastEventId, frame]] = sse.logged as [[string, Record<string, unknown>]];
    expect(lastEventId).toMatch(/^[0-9a-f]+:1$/);
    expect(frame).toMatchObject({ t: "msg", seq: 1, e: "goal", d: { home: 1, away: 0 } });
    // The SSE subscriber is still there while history and stats are read.
    await runShell(localize(channels(snippet("docs/guides/getting-started.md", "getting-started/history"), names)));
    sse.es.close();
  });
});

describe("docs/sdk.md", () => {
  it("sdk/subscribe: a private channel with getToken; typed handlers; a socket publish", async () => {
    const ch = channelName("private-match");
    (globalThis as { sdkToken?: string }).sdkToken = await token({ sub: "fan-1", ch: [ch], pub: [ch] });
    const m = await importSnippet<{ sub: { close(): void }; seq: number; rendered: unknown[][]; calls: string[] }>(
      "sdk-subscribe",
      localize(channels(snippet("docs/sdk.md", "sdk/subscribe"), { "private-match-7": ch })),
      {
        prelude: [
          "const rendered = []; const calls = [];",
          "const render = (...a) => rendered.push(a);",
          "const refetchEverything = () => calls.push('refetch'); const showBanner = () => calls.push('banner'); const showError = (code) => calls.push(code);",
          // The app's own backend, which mints the token: not hibercast's to run.
          "const fetch = async (url) => (url === '/api/hibercast-token' ? new Response(globalThis.sdkToken) : new Response('', { status: 404 }));",
          "const console = { debug: () => {}, log: () => {} };",
        ].join("\n"),
        epilogue: "export { sub, seq, rendered, calls };",
      },
    );
    expect(m.seq).toBe(1);
    await publisher().publish(ch, "goal", { home: 1, away: 0 });
    await until(() => m.rendered.length > 0, 5000, "render");
    expect(m.rendered).toEqual([[{ home: 1, away: 0 }, 2]]);
    expect(m.calls).toEqual([]);
    m.sub.close();
  });

  it("sdk/state: ready() resolves once subscribed, and a refusal reaches showError", async () => {
    const block = snippet("docs/sdk.md", "sdk/state");
    const prelude = (ch: string) =>
      `import { subscribe } from "hibercast/client"; const errors = []; const showError = (code, message) => errors.push(code); const sub = subscribe({ url: ${JSON.stringify(baseUrl())}, channel: ${JSON.stringify(ch)} }); export { sub, errors };`;
    const good = await importSnippet<{ sub: { subscriptionState: string; close(): void }; errors: string[] }>("sdk-state", block, { prelude: prelude(channelName("state")) });
    expect(good.sub.subscriptionState).toBe("subscribed");
    good.sub.close();
    // A private channel without a token: ready() rejects, and the handler heard why.
    await expect(importSnippet("sdk-state-refused", block, { prelude: prelude(channelName("private-state")) + " globalThis.refusedErrors = errors;" })).rejects.toThrow();
    expect((globalThis as { refusedErrors?: string[] }).refusedErrors).toEqual(["unauthorized"]);
  });

  it("sdk/node: a Node subscriber with the ws package", async () => {
    const ch = channelName("scores");
    const m = await importSnippet<Logged & { sub: { close(): void; ready(): Promise<void> } }>("sdk-node", localize(channels(snippet("docs/sdk.md", "sdk/node"), { scores: ch })), { prelude: CONSOLE, epilogue: "export { sub };" });
    await m.sub.ready();
    await publisher().publish(ch, "goal", { home: 1, away: 0 });
    await until(() => m.logged.length > 0, 5000, "the message");
    expect(m.logged).toEqual([[1, "goal", { home: 1, away: 0 }]]);
    m.sub.close();
  });

  it("sdk/connect: two channels on one socket, one with its own token, and an unsub", async () => {
    const scoresCh = channelName("scores");
    const roomCh = channelName("private-room");
    Object.assign(globalThis, { connectToken: await token({ sub: "u-1" }), roomToken: await token({ sub: "u-1", ch: [roomCh] }) });
    const m = await importSnippet<{ conn: { close(): void }; scores: { ready(): Promise<void> }; chat: { subscriptionState: string }; rendered: unknown[] }>(
      "sdk-connect",
      localize(channels(snippet("docs/sdk.md", "sdk/connect"), { scores: scoresCh, "private-room-7": roomCh })),
      {
        prelude: "type Score = { home: number; away: number }; const rendered = []; const render = (s) => rendered.push(s); const append = () => {}; const getToken = async () => globalThis.connectToken; const roomToken = globalThis.roomToken;",
        epilogue: "export { conn, scores, chat, rendered };",
      },
    );
    await m.scores.ready();
    expect(m.chat.subscriptionState).toBe("unsubscribed");
    await publisher().publish(scoresCh, "goal", { home: 1, away: 0 });
    await until(() => m.rendered.length > 0, 5000, "render");
    expect(m.rendered).toEqual([{ home: 1, away: 0 }]);
    m.conn.close();
  });

  it("sdk/publisher: publish, batch, many channels, history, purge, and an error", async () => {
    const names = { scores: channelName("scores"), news: channelName("news"), alerts: channelName("alerts"), ops: channelName("ops") };
    process.env.HIBERCAST_PUBLISH_KEY = NODE_PUBLISH_KEY;
    const m = await importSnippet<Logged>("sdk-publisher", localize(channels(snippet("docs/sdk.md", "sdk/publisher"), names)), { prelude: CONSOLE });
    expect(m.logged).toEqual([["too_large", 413]]);
    const hc = publisher();
    expect((await hc.history(names.news)).messages.map((f) => [f.e, f.d])).toEqual([["e", 1], ["alert", { level: 2 }]]);
    expect((await hc.history(names.alerts)).messages.map((f) => [f.e, f.d])).toEqual([["e", 2], ["alert", { level: 2 }]]);
    expect((await hc.history(names.ops)).messages.map((f) => f.e)).toEqual(["alert"]);
    const purged = await hc.history(names.scores);
    expect([purged.messages, purged.seq]).toEqual([[], 1]);
  });

  it("sdk/cli: publish, history, token, subscribe", async () => {
    const ch = channelName("scores");
    const [pub, history, minted, ...rest] = commands(localize(channels(snippet("docs/sdk.md", "sdk/cli"), { scores: ch }, { words: true })));
    expect(rest.length).toBe(1);
    const published = await sh(pub!.line);
    expect(JSON.parse(published.stdout)).toMatchObject({ seq: 1, duplicate: false });
    expect(JSON.parse((await sh(history!.line)).stdout).messages).toMatchObject([{ seq: 1, e: "goal", d: { home: 1, away: 0 } }]);
    const jwt = (await sh(minted!.line)).stdout.trim();
    const privateCh = channelName("private-cli");
    expect((await fetch(`${baseUrl()}/v1/channels/${privateCh}/messages?token=${jwt}`)).status).toBe(200);
    const subscribed = await sh(rest[0]!.line, { until: (out) => out.includes('"t":"msg"') });
    const lines = subscribed.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.t, l.seq])).toEqual([["welcome", 1], ["msg", 1]]);
  });
});

describe("docs/guides/channels-and-auth.md", () => {
  it("channels-and-auth/mint, /use: a minted token reads a private channel; none is refused", async () => {
    const minted = await importSnippet<{ token: string }>("channels-and-auth-mint", localize(snippet("docs/guides/channels-and-auth.md", "channels-and-auth/mint")), { epilogue: "export { token };" });
    const ch = channelName("private-scores");
    await runShell(localize(channels(snippet("docs/guides/channels-and-auth.md", "channels-and-auth/use"), { "private-scores": ch }, { words: true })), { env: { TOKEN: minted.token } });
  });

  it("channels-and-auth/vars: valid, and every channel then needs a token", async () => {
    const vars = varsOf(snippet("docs/guides/channels-and-auth.md", "channels-and-auth/vars"));
    const { configFor, checkConfig } = await settings();
    checkConfig({ ...SECRETS, ...vars });
    expect(configFor({ ...SECRETS, ...vars }, "scores").requireAuth).toBe(true);
  });
});

describe("docs/guides/presence.md", () => {
  it("presence/subscribe, presence/members: members, join, leave, and the members route", async () => {
    const ch = channelName("presence-room");
    (globalThis as { presenceToken?: string }).presenceToken = await token({ sub: "user-1", ch: [ch], info: { name: "Ann" } });
    const m = await importSnippet<Logged & { sub: { close(): void } }>("presence-subscribe", localize(channels(snippet("docs/guides/presence.md", "presence/subscribe"), { "presence-room-1": ch })), {
      prelude: `${CONSOLE} const token = globalThis.presenceToken;`,
      epilogue: "export { sub };",
    });
    await until(() => m.logged.length === 1, 5000, "members");
    expect(m.logged).toEqual([["here:", ["user-1"], "of", 1]]);
    await runShell(localize(channels(snippet("docs/guides/presence.md", "presence/members"), { "presence-room-1": ch })));
    const bob = new WebSocket(`${baseUrl().replace("http", "ws")}/v1/channels/${ch}/ws?token=${await token({ sub: "user-2", ch: [ch], info: { name: "Bob" } })}`);
    await until(() => m.logged.length === 2, 5000, "join");
    bob.close();
    await until(() => m.logged.length === 3, 5000, "leave");
    expect(m.logged.slice(1)).toEqual([["joined:", "user-2", { name: "Bob" }], ["left:", "user-2"]]);
    m.sub.close();
  });
});

/** The AI SDK's mock model: streams `words`, one every 5 ms (a model is not hibercast's to run). */
const MOCK_MODEL = (words: string[]) => `
import { MockLanguageModelV3 } from "ai/test";
import { simulateReadableStream } from "ai";
const model = new MockLanguageModelV3({
  doStream: async () => ({
    stream: simulateReadableStream({
      chunkDelayInMs: 5,
      chunks: [
        { type: "text-start", id: "t" },
        ...${JSON.stringify(words)}.map((delta) => ({ type: "text-delta", id: "t", delta })),
        { type: "text-end", id: "t" },
        { type: "finish", finishReason: { unified: "stop", raw: undefined }, logprobs: undefined, usage: { inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined }, outputTokens: { total: 1, text: 1, reasoning: undefined } } },
      ],
    }),
  }),
});`;

describe("docs/guides/streaming-ai.md", () => {
  it("streaming-ai/origin, /browser: the answer grows in the browser, whole and done at the end", async () => {
    const chatId = channelName("c");
    const words = ["Hello", ", ", "world", "."];
    process.env.HIBERCAST_PUBLISH_KEY = NODE_PUBLISH_KEY;
    const browser = await importSnippet<{ sub: { ready(): Promise<void>; close(): void }; rendered: [string, string, boolean][] }>(
      "streaming-ai-browser",
      localize(snippet("docs/guides/streaming-ai.md", "streaming-ai/browser")),
      { prelude: `const chatId = ${JSON.stringify(chatId)}; const rendered = []; const render = (...a) => rendered.push(a);`, epilogue: "export { sub, rendered };" },
    );
    await browser.sub.ready();
    const origin = await importSnippet<{ answer(chatId: string, question: string): Promise<void> }>("streaming-ai-origin", localize(snippet("docs/guides/streaming-ai.md", "streaming-ai/origin")), { prelude: MOCK_MODEL(words) });
    await origin.answer(chatId, "say hello");
    await until(() => browser.rendered.at(-1)?.[2] === true, 5000, "the answer done");
    const texts = browser.rendered.map((r) => r[1]);
    expect(texts.at(-1)).toBe("Hello, world.");
    expect(new Set(browser.rendered.map((r) => r[0])).size).toBe(1);
    texts.forEach((t, i) => expect(texts.at(-1)!.startsWith(t) && (i === 0 || t.length >= texts[i - 1]!.length)).toBe(true));
    browser.sub.close();
  });

  it("streaming-ai/curl: publish, two appends, and history gives the message whole", async () => {
    await runShell(localize(channels(snippet("docs/guides/streaming-ai.md", "streaming-ai/curl"), { "chat-42": channelName("chat") })));
  });
});

describe("docs/guides/durable-streams.md", () => {
  it("durable-streams/curl: create, append, read", async () => {
    await runShell(localize(channels(snippet("docs/guides/durable-streams.md", "durable-streams/curl"), { "build-7": channelName("build") })));
  });

  describe("durable-streams/route, /page: an AI SDK chat on a hibercast stream", () => {
    let app: Server;
    let appUrl = "";
    const words = Array.from({ length: 8 }, (_, i) => `word${i} `);
    beforeAll(async () => {
      process.env.HIBERCAST_PUBLISH_KEY = NODE_PUBLISH_KEY;
      const route = await importSnippet<{ POST(req: Request): Promise<Response> }>("durable-streams-route", localize(snippet("docs/guides/durable-streams.md", "durable-streams/route")), { prelude: MOCK_MODEL(words) });
      // The app's server: POST /api/chat is the route above; GET /api/chat/:id/stream as the guide says.
      app = createServer((req, res) => {
        let body = "";
        req.on("data", (c) => (body += c));
        req.on("end", async () => {
          const url = `http://${req.headers.host}${req.url}`;
          const found = /^\/api\/chat\/([^/]+)\/stream$/.exec(req.url!);
          let answer: Response;
          if (req.method === "POST" && req.url === "/api/chat") answer = await route.POST(new Request(url, { method: "POST", body }));
          else if (found) {
            const streamUrl = `${baseUrl()}/v1/stream/chat-${found[1]}`;
            const head = await fetch(streamUrl, { method: "HEAD" });
            answer = head.status === 200 ? Response.json({ streamUrl }, { headers: { location: streamUrl } }) : new Response(null, { status: 204 });
          } else answer = new Response("not found", { status: 404 });
          const headers: Record<string, string> = {};
          answer.headers.forEach((v, k) => (headers[k] = v));
          res.writeHead(answer.status, headers);
          res.end(Buffer.from(await answer.arrayBuffer()));
        });
      });
      await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
      appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    });
    afterAll(() => void app?.close());

    it("sends a question, reads the answer from hibercast, and reads it again on a resume", async () => {
      type Chunk = { type: string; delta?: string };
      type Transport = {
        sendMessages(o: object): Promise<ReadableStream<Chunk>>;
        reconnectToStream(o: object): Promise<ReadableStream<Chunk> | null>;
      };
      const page = await importSnippet<{ transport: Transport }>("durable-streams-page", snippet("docs/guides/durable-streams.md", "durable-streams/page").replace('"/api/chat"', JSON.stringify(`${appUrl}/api/chat`)), { epilogue: "export { transport };" });
      const text = async (chunks: ReadableStream<Chunk>) => {
        const got: string[] = [];
        for await (const c of chunks as unknown as AsyncIterable<Chunk>) if (c.type === "text-delta") got.push(c.delta!);
        return got.join("");
      };
      const chatId = channelName("c");
      const messages = [{ id: "q1", role: "user", parts: [{ type: "text", text: "eight words" }] }];
      const first = await page.transport.sendMessages({ trigger: "submit-message", chatId, messageId: undefined, messages, abortSignal: undefined });
      expect(await text(first)).toBe(words.join(""));
      const again = await page.transport.reconnectToStream({ chatId });
      expect(await text(again!)).toBe(words.join(""));
    });
  });
});

describe("docs/guides/pusher.md", () => {
  it("pusher/vars: the endpoint's settings are valid with the secret, and an error without it", async () => {
    const vars = varsOf(snippet("docs/guides/pusher.md", "pusher/vars"));
    const { checkConfig } = await settings();
    checkConfig({ ...SECRETS, ...vars, PUSHER_SECRET: "a-pusher-secret" });
    expect(() => checkConfig({ ...SECRETS, ...vars, PUSHER_APP_ID: "4243" })).toThrow(/PUSHER/);
  });

  it("pusher/client, pusher/server: pusher-js gets what the pusher SDK triggers", async () => {
    const ch = channelName("scores");
    const client = await importSnippet<Logged & { pusher: { connection: { state: string }; channel(name: string): { subscribed: boolean }; disconnect(): void } }>(
      "pusher-client",
      localize(channels(snippet("docs/guides/pusher.md", "pusher/client"), { scores: ch })),
      { prelude: CONSOLE, epilogue: "export { pusher };" },
    );
    await until(() => client.pusher.channel(ch)?.subscribed === true, 10_000, "pusher-js subscribed");
    await importSnippet("pusher-server", localize(channels(snippet("docs/guides/pusher.md", "pusher/server"), { scores: ch })));
    await until(() => client.logged.length > 0, 5000, "the event");
    expect(client.logged).toEqual([[{ home: 1, away: 0 }]]);
    client.pusher.disconnect();
  });
});

describe("docs/guides/webhooks.md", () => {
  it("webhooks/vars: valid with the secret, an error without it", async () => {
    const vars = varsOf(snippet("docs/guides/webhooks.md", "webhooks/vars"));
    const { checkConfig } = await settings();
    checkConfig({ ...SECRETS, ...vars, WEBHOOK_SECRET: "a-webhook-secret" });
    expect(() => checkConfig({ ...SECRETS, ...vars })).toThrow(/WEBHOOK/);
  });
});

describe("configuration blocks", () => {
  it("sharding/options: eight shards for match-* channels", async () => {
    const vars = varsOf(snippet("docs/guides/sharding.md", "sharding/options"));
    const { configFor } = await settings();
    expect(configFor({ ...SECRETS, ...vars }, "match-7")).toMatchObject({ shards: 8, rule: "match-*" });
    expect(configFor({ ...SECRETS, ...vars }, "scores")).toMatchObject({ shards: 1, rule: null });
  });

  it("configuration/channel-options: the options in force for each namespace, as the page says", async () => {
    const vars = varsOf(snippet("docs/configuration.md", "configuration/channel-options"));
    const { configFor } = await settings();
    const env = { ...SECRETS, ...vars };
    expect(configFor(env, "chat-1")).toMatchObject({ rule: "chat-*", logMaxMessages: 10000, logMaxAgeS: 86400, clientPubPerS: 5 });
    expect(configFor(env, "price-eur")).toMatchObject({ rule: "price-*", logMaxMessages: 1, latest: true, clientPublish: false });
    expect(configFor(env, "team-red")).toMatchObject({ rule: "team-*", requireAuth: true, maxSockets: 500 });
    expect(configFor(env, "scores")).toMatchObject({ rule: null, logMaxMessages: 1000, latest: false, requireAuth: false });
  });
});

describe("docs/protocol.md", () => {
  it("protocol/cursor: the raw client's cursor follows the frames, and its resume URL replays exactly", async () => {
    const ch = channelName("cursor");
    const url = `${baseUrl().replace("http", "ws")}/v1/channels/${ch}/ws`;
    const m = await importSnippet<{ cursor: { since: number; epoch: string | null }; resumeUrl(base: string): string; ws: WebSocket }>("protocol-cursor", snippet("docs/protocol.md", "protocol/cursor"), {
      prelude: `const ws = new WebSocket(${JSON.stringify(url)});`,
      epilogue: "export { cursor, resumeUrl, ws };",
    });
    await until(() => m.cursor.epoch !== null, 5000, "the welcome");
    const epoch = m.cursor.epoch;
    await publisher().publish(ch, "e", 1);
    await publisher().publish(ch, "e", 2);
    await until(() => m.cursor.since === 2, 5000, "two messages");
    m.ws.close();
    await publisher().publish(ch, "e", 3);
    expect(m.resumeUrl(url)).toBe(`${url}?since=2&epoch=${epoch}`);
    const again = new WebSocket(m.resumeUrl(url));
    const got = frames(again);
    await until(() => got.some((f) => f.t === "msg"), 5000, "the replay");
    expect(got.map((f) => [f.t, f.seq])).toEqual([["welcome", 3], ["msg", 3]]);
    again.close();
  });

  it("protocol/batch: a batch and a publish to many channels", async () => {
    await runShell(localize(channels(snippet("docs/protocol.md", "protocol/batch"), { news: channelName("news"), alerts: channelName("alerts") })));
  });

  it("protocol/history, protocol/purge: newest first before a seq; a purge starts a new epoch", async () => {
    const ch = channelName("scores");
    for (const home of [1, 2, 3]) await publisher().publish(ch, "goal", { home, away: 0 }, { id: `goal-${home}` });
    const before = (await publisher().history(ch)).epoch;
    await runShell(localize(channels(snippet("docs/protocol.md", "protocol/history"), { scores: ch })));
    const [purged] = await runShell(localize(channels(snippet("docs/protocol.md", "protocol/purge"), { scores: ch })));
    expect((JSON.parse(purged!.stdout) as { epoch: string }).epoch).not.toBe(before);
  });
});

describe("docs/operations.md", () => {
  // Analytics Engine's SQL API needs an account: what runs here is the check that the query
  // reads the dataset wrangler.toml names and the blobs and metrics the Worker writes.
  it("operations/analytics: the query's dataset, columns and metric names are the ones written", () => {
    const sql = snippet("docs/operations.md", "operations/analytics");
    expect(readFileSync("wrangler.toml", "utf8")).toMatch(new RegExp(`^# dataset = "${/FROM (\w+)/.exec(sql)![1]}"$`, "m"));
    const metrics = readFileSync("src/server/metrics.ts", "utf8");
    expect(metrics).toMatch(/blobs: \[channel, metric\], doubles: \[value\]/);
    const written = /export type Metric = ([^;]+);/.exec(metrics)![1]!.match(/"(\w+)"/g)!.map((s) => s.slice(1, -1));
    const queried = [...sql.matchAll(/blob2 = '(\w+)'/g)].map((x) => x[1]!);
    expect(queried.length).toBeGreaterThan(0);
    expect(queried.filter((q) => !written.includes(q))).toEqual([]);
  });
});

describe("docs/development.md", () => {
  it("development/layout: every file and folder the layout names exists", () => {
    const missing: string[] = [];
    let dir = "";
    for (const line of snippet("docs/development.md", "development/layout").split("\n")) {
      if (/^ {3,}/.test(line) || line.trim() === "") continue; // a description's next line
      const first = line.trim().split(/ {2,}/)[0]!;
      const nested = line.startsWith("  ");
      const items: string[] = [];
      for (const word of first.split(" ")) {
        items.push(word.replace(/,$/, ""));
        if (!word.endsWith(",")) break;
      }
      for (const item of items) {
        const rooted = /^(src|test|docs|scripts)(\/|$)/.test(item);
        const full = rooted ? item : path.join(nested ? dir : path.dirname(dir), item);
        if (rooted && !nested) dir = item.endsWith("/") ? item : path.dirname(item);
        if (!existsSync(full)) missing.push(full);
      }
    }
    expect(missing).toEqual([]);
  });
});
