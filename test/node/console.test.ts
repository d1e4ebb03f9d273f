// The console page in real Chromium (Debian's package, driven by playwright-core) against the
// worker served locally. Screenshots go to test-artifacts/.
import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { WebSocket as WsPackage } from "ws";
import { subscribe, type Subscription, type WebSocketConstructor } from "../../src/client/index";
import { baseUrl, channelName, publisher, sleep, token } from "./helpers";
import { NODE_PUBLISH_KEY } from "./server";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (CI does this)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  mkdirSync("test-artifacts", { recursive: true });
});
afterAll(() => browser?.close());

/** Everything the page reports as wrong: uncaught errors, console errors, and CSP violations (also when Chromium does not log them). */
async function watchErrors(page: Page): Promise<string[]> {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.exposeFunction("reportViolation", (v: string) => errors.push(`CSP: ${v}`));
  await page.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (e) => (window as unknown as { reportViolation(v: string): void }).reportViolation(`${e.violatedDirective} ${e.blockedURI}`)),
  );
  return errors;
}

/** A subscriber from Node, beside the page's own. */
function nodeSubscriber(channel: string): Subscription {
  return subscribe({ url: baseUrl(), channel, WebSocket: WsPackage as unknown as WebSocketConstructor });
}

const seqsOn = (page: Page) => page.$$eval("#frames .msg .seq", (els) => els.map((e) => Number(e.textContent!.slice(1))).sort((a, b) => a - b));

it("subscribes, publishes from the page and over HTTP, and resumes after a dropped connection", { timeout: 60_000 }, async () => {
  const ch = channelName("console");
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors = await watchErrors(page);
  await page.goto(`${baseUrl()}/console?channel=${ch}`);
  expect(await page.inputValue("#channel")).toBe(ch);

  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await expect.poll(() => page.textContent("#status")).toMatch(/^connected to /);

  await page.fill("#key", NODE_PUBLISH_KEY);
  await page.fill("#event", "from-page");
  await page.fill("#data", '{"n": 1}');
  await page.getByRole("button", { name: "Publish", exact: true }).click();
  await expect.poll(() => page.textContent("#publish-result")).toMatch(/published #1/);
  await publisher().publish(ch, "from-http", { n: 2 });
  await expect.poll(() => seqsOn(page)).toEqual([1, 2]);
  expect(await page.textContent("#frames")).toContain("from-http");

  await page.getByRole("button", { name: "Drop connection" }).click();
  for (let i = 3; i <= 5; i++) await publisher().publish(ch, "while-away", i);
  await expect.poll(() => page.locator(".frame.resume").count(), { timeout: 10_000 }).toBeGreaterThan(0);
  await expect.poll(() => seqsOn(page)).toEqual([1, 2, 3, 4, 5]);
  expect(await page.textContent(".frame.resume")).toMatch(/resumed after #2/);
  await page.getByRole("button", { name: "Refresh" }).click();
  await expect.poll(() => page.textContent("#stats")).toMatch(/"seq": 5/);

  // The publish key is never shown: it stays in a password field and this tab's sessionStorage.
  expect(await page.content()).not.toContain(NODE_PUBLISH_KEY);
  expect(errors).toEqual([]);
  await page.close();
});

it("shows clear error states: wrong key, forbidden channel, server down", { timeout: 30_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(`${baseUrl()}/console?channel=${channelName("private-console")}`);
  await page.keyboard.press("Tab"); // keyboard reaches the form
  await page.focus("#channel");
  await page.keyboard.press("Enter"); // submits the connect form
  await expect.poll(() => page.textContent("#status")).toMatch(/closed: unauthorized/);

  await page.fill("#channel", channelName());
  await page.fill("#key", "not-the-key");
  await page.getByRole("button", { name: "Publish", exact: true }).click();
  await expect.poll(() => page.textContent("#publish-result")).toMatch(/not published: 403 forbidden: wrong publish key/);

  await page.route("**/v1/channels/**", (route) => route.abort());
  await page.fill("#key", "anything");
  await page.getByRole("button", { name: "Publish", exact: true }).click();
  await expect.poll(() => page.textContent("#publish-result")).toMatch(/server unreachable/);
  await page.close();
});

it("shows nothing of the previous channel after switching, and names a purge as a purge", { timeout: 30_000 }, async () => {
  const page = await browser.newPage();
  const ch = channelName("console-switch");
  await page.goto(`${baseUrl()}/console?channel=${ch}`);
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await expect.poll(() => page.textContent("#status")).toMatch(/^connected to .* epoch [0-9a-f]{12}$/);
  const welcomed = (await page.textContent("#status"))!.split("epoch ")[1];

  await page.fill("#key", NODE_PUBLISH_KEY);
  await page.getByRole("button", { name: "Publish", exact: true }).click();
  await expect.poll(() => seqsOn(page)).toEqual([1]);
  await page.request.delete(`${baseUrl()}/v1/channels/${ch}/messages`, { headers: { authorization: `Bearer ${NODE_PUBLISH_KEY}` } });
  await expect.poll(() => page.textContent(".frame.reset")).toMatch(/the channel was purged/);
  const status = (await page.textContent("#status"))!;
  expect(status).toMatch(/epoch [0-9a-f]{12}$/);
  expect(status).not.toContain(welcomed);

  await page.getByRole("button", { name: "Refresh" }).click();
  await expect.poll(() => page.textContent("#stats")).toMatch(/"seq": 1/);
  await page.fill("#channel", channelName("private-console"));
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await expect.poll(() => page.textContent("#status")).toMatch(/closed: unauthorized/);
  // The stats box may already show the new channel (the live chart samples it every second, with
  // the publish key typed above); never the one before.
  expect(await page.textContent("#stats")).not.toContain(ch);
  expect(await page.textContent("#publish-result")).toBe("");
  await page.close();
});

it("watches several channels at once over one socket, and resumes them all after a drop", { timeout: 40_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors = await watchErrors(page);
  const [a, b] = [channelName("console-a"), channelName("console-b")];
  await page.goto(`${baseUrl()}/console?channel=${a},${b}`);
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await expect.poll(() => page.textContent("#status")).toMatch(/watching 2 channels over one socket \(2 subscribed\)/);
  const rows = () => page.$$eval("#frames .msg", (els) => els.map((e) => `${e.querySelector(".ch")?.textContent}${e.querySelector(".seq")?.textContent}`).sort());
  await publisher().publish(a, "m", 1);
  await publisher().publish(b, "m", 1);
  await expect.poll(rows).toEqual([`${a}#1`, `${b}#1`]);
  // The page's SDK uses one socket for both: the server counts one subscriber on each channel.
  for (const ch of [a, b]) expect(((await (await fetch(`${baseUrl()}/v1/channels/${ch}`)).json()) as { subscribers: number }).subscribers).toBe(1);

  await page.getByRole("button", { name: "Drop connection" }).click();
  await publisher().publish(a, "m", 2);
  await publisher().publish(b, "m", 2);
  await expect.poll(rows, { timeout: 10_000 }).toEqual([`${a}#1`, `${a}#2`, `${b}#1`, `${b}#2`]);
  await page.screenshot({ path: "test-artifacts/console-many-channels.png", fullPage: true });
  expect(errors).toEqual([]);
  await page.close();
});

it("shows a growing message as one row whose text grows with each append", { timeout: 30_000 }, async () => {
  const ch = channelName("console-grow");
  const page = await browser.newPage();
  await page.goto(`${baseUrl()}/console?channel=${ch}`);
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await expect.poll(() => page.textContent("#status")).toMatch(/^connected to /);
  const pub = publisher();
  await pub.publish(ch, "answer", "Thinking", { id: "ans" });
  await expect.poll(() => page.locator("#frames .msg").count()).toBe(1);
  expect(await page.locator("#frames .msg .grow").count()).toBe(0); // not known to grow until an append comes
  await pub.append(ch, "ans", " about it");
  await expect.poll(() => page.textContent("#frames .msg .grow")).toBe("growing…");
  expect(await page.getAttribute("#frames .msg", "class")).toContain("growing");
  await pub.append(ch, "ans", ": yes.", { done: true });
  await expect.poll(() => page.textContent("#frames .msg .data")).toBe('"Thinking about it: yes."');
  expect(await page.locator("#frames .msg").count()).toBe(1);
  expect(await page.textContent("#frames .msg .seq")).toBe("#1 (grown to #3)");
  expect(await page.textContent("#frames .msg .grow")).toBe("done");
  expect(await page.getAttribute("#frames .msg", "class")).not.toContain("growing");
  await page.close();
});

/** A figure out of a chart's accessible label ("… now 12/s (6.0 messages/s)", "… now 2"). */
async function figure(page: Page, chart: string, pattern: RegExp): Promise<number> {
  const label = (await page.getAttribute(`#${chart}`, "aria-label")) ?? "";
  const found = pattern.exec(label);
  return found ? Number(found[1]) : Number.NaN;
}

it("charts delivered messages per second and subscribers as real publishes come, lists occupied channels, and is readable at 1280 and 390 px", { timeout: 90_000 }, async () => {
  const ch = channelName("console-live");
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = await watchErrors(page);
  await page.goto(`${baseUrl()}/console?channel=${ch}`);
  await page.fill("#key", NODE_PUBLISH_KEY);
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await expect.poll(() => page.textContent("#status")).toMatch(/^connected to /);
  const other = nodeSubscriber(ch);
  await other.ready();
  await expect.poll(() => figure(page, "subs-chart", / now (\d+)$/), { timeout: 10_000 }).toBe(2);

  // Publishes keep coming while the chart is watched: its latest rate is every message times both subscribers.
  const pub = publisher();
  let publishing = true;
  const publishes = (async () => {
    for (let i = 0; publishing; i++) {
      await pub.publish(ch, "tick", i);
      await sleep(50);
    }
  })();
  await expect.poll(() => figure(page, "rate-chart", / now ([\d.]+)\/s/), { timeout: 15_000 }).toBeGreaterThan(2);
  const delivered = await figure(page, "rate-chart", / now ([\d.]+)\/s/);
  const messages = await figure(page, "rate-chart", /\(([\d.]+) messages\/s\)/);
  expect(Math.abs(delivered - 2 * messages)).toBeLessThanOrEqual(1);
  expect(await page.textContent("#rate-now")).toMatch(/^[\d.]+\/s$/);
  // A rate needs two samples, so the line may have one point when the first rate shows: wait for a second.
  const points = async () => (await page.getAttribute("#rate-chart polyline", "points"))?.split(" ") ?? [];
  await expect.poll(async () => (await points()).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
  const heights = (await points()).map((xy) => Number(xy.split(",")[1]));
  expect(Math.min(...heights)).toBeLessThan(80); // a point above the baseline: the drawn line rose

  // The list of occupied channels names this one (the directory hears of it from the hub's alarm), marked as watched.
  const listed = page.locator("#occupied button", { hasText: ch });
  await expect.poll(() => listed.count(), { timeout: 15_000 }).toBe(1);
  expect(await listed.getAttribute("aria-current")).toBe("true");

  // A few seconds of line, and a growing message mid-growth, for the screenshots.
  await expect.poll(async () => (await points()).length, { timeout: 15_000 }).toBeGreaterThanOrEqual(6);
  await pub.publish(ch, "answer", "Thinking", { id: "grows" });
  await pub.append(ch, "grows", " it over");
  await expect.poll(() => page.textContent("#frames .msg.growing .grow")).toBe("growing…");
  await page.screenshot({ path: "test-artifacts/console-1280.png", fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390); // nothing wider than the phone
  expect((await page.locator("#rate-chart").boundingBox())!.width).toBeGreaterThan(300);
  await page.screenshot({ path: "test-artifacts/console-390.png", fullPage: true });

  // When the publishes stop, the rate falls back to zero; the subscribers stay.
  publishing = false;
  await publishes;
  await expect.poll(() => figure(page, "rate-chart", / now ([\d.]+)\/s/), { timeout: 10_000 }).toBe(0);
  expect(await figure(page, "subs-chart", / now (\d+)$/)).toBe(2);
  other.close();
  await expect.poll(() => figure(page, "subs-chart", / now (\d+)$/), { timeout: 10_000 }).toBe(1);
  expect(errors).toEqual([]);
  await page.close();
});

it("watches an occupied channel picked from the list", { timeout: 40_000 }, async () => {
  const [here, there] = [channelName("console-here"), channelName("console-there")];
  const elsewhere = nodeSubscriber(there);
  await elsewhere.ready();
  const page = await browser.newPage();
  const errors = await watchErrors(page);
  await page.goto(`${baseUrl()}/console?channel=${here}`);
  expect(await page.textContent("#occupied-note")).toMatch(/publish key/); // the list needs the key
  await page.fill("#key", NODE_PUBLISH_KEY);
  await page.getByRole("button", { name: "List channels" }).click();
  const pick = page.getByRole("button", { name: there, exact: true });
  await expect.poll(() => pick.count(), { timeout: 15_000 }).toBe(1);
  await pick.click();
  await expect.poll(() => page.textContent("#status")).toMatch(new RegExp(`^connected to ${there} · seq 0 `));
  expect(await page.inputValue("#channel")).toBe(there);
  expect(page.url()).toContain(`channel=${there}`);
  await expect.poll(() => figure(page, "subs-chart", / now (\d+)$/), { timeout: 10_000 }).toBe(2);
  elsewhere.close();
  expect(errors).toEqual([]);
  await page.close();
});

it("lists occupied channels over HTTP for the publish key only (the list names private channels too)", async () => {
  const ch = channelName("private-listed");
  const list = (authorization?: string, query = "") => fetch(`${baseUrl()}/v1/channels${query}`, { headers: authorization ? { authorization } : {} });
  const sub = subscribe({ url: baseUrl(), channel: ch, token: await token({ ch: [ch] }), WebSocket: WsPackage as unknown as WebSocketConstructor });
  await sub.ready();
  const names = async (query = "") => ((await (await list(`Bearer ${NODE_PUBLISH_KEY}`, query)).json()) as { channels: string[] }).channels;
  await expect.poll(() => names(), { timeout: 15_000 }).toContain(ch);
  expect(await names(`?prefix=${ch}`)).toEqual([ch]);
  expect(await names("?prefix=no-such-prefix-")).toEqual([]);
  expect((await list()).status).toBe(401);
  expect((await list("Bearer not-the-key")).status).toBe(403);
  expect((await list(`Bearer ${await token({ ch: [ch] })}`)).status).toBe(403); // a token sees its own channels' stats, never the list
  expect((await list(`Bearer ${NODE_PUBLISH_KEY}`, "?prefix=bad/name")).status).toBe(400);
  sub.close();
});

it("keeps a strict CSP: scripts and styles by hash only, no remote origin", async () => {
  const csp = (await fetch(`${baseUrl()}/console`)).headers.get("content-security-policy")!;
  const directives = Object.fromEntries(csp.split(";").map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
  expect(directives["default-src"]).toEqual(["'none'"]);
  expect(directives["script-src"]).toEqual([expect.stringMatching(/^'sha256-[A-Za-z0-9+/]+=*'$/)]);
  expect(directives["style-src"]).toEqual([expect.stringMatching(/^'sha256-[A-Za-z0-9+/]+=*'$/)]);
  expect(directives["connect-src"]).toEqual(["'self'"]);
  expect(directives["frame-ancestors"]).toEqual(["'none'"]);
  expect(csp).not.toMatch(/unsafe-|https?:|wss?:|\*/);
});
