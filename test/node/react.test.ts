// hibercast/react in a real React app (test/node/react-app: the guide's components, built with
// esbuild) in headless Chromium, against the worker served locally; the browser reaches it
// through a TCP proxy the test can cut. What the server saw (stats, presence) and what the
// socket carried (the frames Chromium sent) are checked besides the page.
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subscribe } from "../../src/client/index";
import { importSnippet, serveApp, type ServedApp } from "./react-app/build";
import type {} from "./react-app/controls"; // window.app
import { typecheckApp } from "./react-app/typecheck";
import { baseUrl, channelName, publisher, sleep, TcpProxy, token } from "./helpers";
import { NODE_PUBLISH_KEY } from "./server";
import { snippet } from "./snippets";
import { WebSocket as WsPackage } from "ws";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const GUIDE = {
  "react/provider": snippet("docs/guides/react.md", "react/provider"),
  "react/chat": snippet("docs/guides/react.md", "react/chat"),
  "react/callback": snippet("docs/guides/react.md", "react/callback"),
  "react/origin": snippet("docs/guides/react.md", "react/origin"),
  "react/answer": snippet("docs/guides/react.md", "react/answer"),
  "react/presence": snippet("docs/guides/react.md", "react/presence"),
  "react/status": snippet("docs/guides/react.md", "react/status"),
};

let browser: Browser;
let app: ServedApp;
let proxy: TcpProxy;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (CI does this)`);
  [browser, app, proxy] = await Promise.all([
    chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }),
    serveApp(GUIDE),
    TcpProxy.start(baseUrl()),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
  await proxy?.close();
});

/** What the page's sockets carried: each socket's URL and the frames the page sent on it. */
interface Sockets {
  opened: string[];
  sent: Record<string, unknown>[];
  closed: number;
}

/** Opens the app showing `view` of `channel`, through the proxy; fails the test on any page error. */
async function open(view: string, channel: string, extra: Record<string, string> = {}): Promise<{ page: Page; sockets: Sockets; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  // Counted in the page too: a socket closed before its handshake never reaches the network events.
  await page.addInitScript(() => {
    const counted = window as unknown as { socketsMade: number; WebSocket: typeof WebSocket };
    counted.socketsMade = 0;
    counted.WebSocket = class extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        counted.socketsMade++;
      }
    };
  });
  const sockets: Sockets = { opened: [], sent: [], closed: 0 };
  page.on("websocket", (ws) => {
    sockets.opened.push(ws.url());
    ws.on("framesent", ({ payload }) => typeof payload === "string" && payload.startsWith("{") && sockets.sent.push(JSON.parse(payload) as Record<string, unknown>));
    ws.on("close", () => sockets.closed++);
  });
  await page.goto(`${app.url}?${new URLSearchParams({ view, channel, url: proxy.url, ...extra })}`);
  return { page, sockets, errors };
}

/** The channel's stats as the server counts them (the publish key reads any channel's). */
const stats = async (channel: string) =>
  (await (await fetch(`${baseUrl()}/v1/channels/${channel}`, { headers: { authorization: `Bearer ${NODE_PUBLISH_KEY}` } })).json()) as { subscribers: number; presence: number | null };
const texts = (page: Page, selector: string) => page.$$eval(selector, (els) => els.map((e) => e.textContent));
const socketsMade = (page: Page) => page.evaluate(() => (window as unknown as { socketsMade: number }).socketsMade);
const subsOf = (sockets: Sockets, t: string, channel: string) => sockets.sent.filter((f) => f.t === t && f.ch === channel).length;

it("compiles: the guide's components type-check against the package's types, in the app that uses them", { timeout: 60_000 }, () => {
  expect(typecheckApp(GUIDE)).toEqual([]);
});

describe("hibercast/react in Chromium", () => {
  it("renders a channel's messages in order, with a rewind first, and publishes from the page", async () => {
    const ch = channelName("react-chat");
    const pub = publisher();
    for (let i = 1; i <= 3; i++) await pub.publish(ch, "chat", { text: `before ${i}` });
    const { page, errors } = await open("chat", ch, { token: await token({ sub: "ann", ch: [ch], pub: [ch] }) });
    await expect.poll(() => page.textContent(".state")).toBe("subscribed");
    for (let i = 1; i <= 20; i++) await pub.publish(ch, "chat", { text: `live ${i}` });
    const expected = [...[1, 2, 3].map((i) => `before ${i}`), ...Array.from({ length: 20 }, (_, i) => `live ${i + 1}`)];
    await expect.poll(() => texts(page, "li")).toEqual(expected);

    await page.getByLabel("message").fill("from the page");
    await page.getByRole("button", { name: "Send" }).click();
    await expect.poll(() => texts(page, "li")).toEqual([...expected, "from the page"]);
    const { messages } = await pub.history(ch);
    expect(messages.at(-1)).toMatchObject({ e: "chat", d: { text: "from the page" }, u: "ann" });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("leaves one socket and one subscription after StrictMode's double mount, shared by three components; unmounting lets both go", async () => {
    const ch = channelName("react-strict");
    const { page, sockets, errors } = await open("shared", ch);
    await expect.poll(() => texts(page, ".state")).toEqual(["subscribed", "subscribed"]);
    const pub = publisher();
    await pub.publish(ch, "goal", { team: "home" });
    await pub.publish(ch, "comment", "what a goal");
    await pub.publish(ch, "goal", { team: "away" });
    // The callback form: once per message, though StrictMode ran its effects twice.
    await expect.poll(() => page.textContent(".goals")).toBe("2 goals");
    await sleep(200);
    expect(await page.textContent(".goals")).toBe("2 goals");
    expect(await socketsMade(page)).toBe(1);
    expect(sockets.opened.filter((u) => u.includes("/v1/ws"))).toHaveLength(1);
    expect(subsOf(sockets, "sub", ch)).toBe(1);
    expect(subsOf(sockets, "unsub", ch)).toBe(0);
    expect((await stats(ch)).subscribers).toBe(1);

    await page.evaluate(() => window.app.setMounted(false));
    await expect.poll(() => sockets.closed).toBe(1);
    await expect.poll(async () => (await stats(ch)).subscribers).toBe(0);
    expect(subsOf(sockets, "unsub", ch)).toBe(1);
    // Mounted again: a new socket and one new subscription, picking up from nothing missed on screen.
    await page.evaluate(() => window.app.setMounted(true));
    await expect.poll(() => texts(page, ".state")).toEqual(["subscribed", "subscribed"]);
    expect(await socketsMade(page)).toBe(2);
    expect(sockets.opened).toHaveLength(2);
    expect(subsOf(sockets, "sub", ch)).toBe(2);
    expect((await stats(ch)).subscribers).toBe(1);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shares one socket between two React roots given the same SharedConnection", async () => {
    const ch = channelName("react-islands");
    const { page, sockets, errors } = await open("islands", ch);
    await expect.poll(() => texts(page, ".state")).toEqual(["subscribed", "subscribed"]);
    await publisher().publish(ch, "chat", { text: "to both" });
    await expect.poll(() => texts(page, "li")).toEqual(["to both", "to both"]);
    expect(await socketsMade(page)).toBe(1);
    expect(subsOf(sockets, "sub", ch)).toBe(1);
    expect((await stats(ch)).subscribers).toBe(1);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("renders a streamed answer as its exact whole text while the browser's connection is cut three times", async () => {
    const ch = channelName("react-answer");
    const id = "answer-1";
    const { page, sockets, errors } = await open("answer", ch, { id });
    await expect.poll(() => subsOf(sockets, "sub", ch)).toBe(1);
    await expect.poll(async () => (await stats(ch)).subscribers).toBe(1);
    const tokens = Array.from({ length: 100 }, (_, i) => (i % 9 === 4 ? ` é${i}` : ` w${i}`));
    const full = tokens.join("");
    // The origin, as the guide writes it: publish, then append token by token, with cuts between.
    async function* model() {
      for (const [i, t] of tokens.entries()) {
        if (i > 0 && i % 25 === 0) proxy.cut();
        if (i % 5 === 0) await sleep(15);
        yield t;
      }
    }
    const { streamAnswer } = await importSnippet<{ streamAnswer: (url: string, key: string, channel: string, id: string, tokens: AsyncIterable<string>) => Promise<void> }>("react/origin", GUIDE);
    await streamAnswer(baseUrl(), NODE_PUBLISH_KEY, ch, id, model());
    await expect.poll(() => page.textContent(".answer.done"), { timeout: 10_000 }).toBe(full);

    // Every text it showed was the answer so far, growing: no fragment doubled, none skipped.
    const shown = await page.evaluate(() => window.app.answers);
    expect(shown.at(-1)).toBe(full);
    for (const [i, text] of shown.entries()) {
      expect(full.startsWith(text)).toBe(true);
      if (i > 0) expect(text.length).toBeGreaterThan(shown[i - 1]!.length);
    }
    expect(sockets.opened.length).toBeGreaterThanOrEqual(4); // the first and one after each cut
    expect(await page.evaluate(() => window.app.banners)).toContain("reconnecting…");
    expect(await page.$(".banner")).toBeNull(); // open again
    expect(errors).toEqual([]);
    await page.close();
  });

  it("lists presence members as they join and leave", async () => {
    const ch = channelName("presence-react");
    const { page, errors } = await open("presence", ch, { token: await token({ sub: "ann", info: { name: "Ann" }, ch: [ch] }) });
    await expect.poll(() => texts(page, ".members li")).toEqual(["Ann"]);
    const bob = subscribe({ url: baseUrl(), channel: ch, WebSocket: WsPackage as never, token: await token({ sub: "bob", info: { name: "Bob" }, ch: [ch] }) });
    await bob.ready();
    await expect.poll(() => texts(page, ".members li")).toEqual(["Ann", "Bob"]);
    expect(await page.textContent(".count")).toBe("2 here");
    expect((await stats(ch)).presence).toBe(2);
    bob.close();
    await expect.poll(() => texts(page, ".members li")).toEqual(["Ann"]);
    expect(await page.textContent(".count")).toBe("1 here");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("takes a new token: a private channel refused without one subscribes under it", async () => {
    const ch = channelName("private-react");
    const { page, sockets, errors } = await open("chat", ch);
    await expect.poll(() => page.textContent(".state")).toBe("unsubscribed");
    const granted = await token({ sub: "ann", ch: [ch] });
    await page.evaluate((t) => window.app.setToken(t), granted);
    await expect.poll(() => page.textContent(".state")).toBe("subscribed");
    await publisher().publish(ch, "chat", { text: "for ann" });
    await expect.poll(() => texts(page, "li")).toEqual(["for ann"]);
    expect(sockets.opened.at(-1)).toContain(`token=${granted}`);
    expect(errors).toEqual([]);
    await page.close();
  });
});
