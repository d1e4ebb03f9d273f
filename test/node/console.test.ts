// The console page in real Chromium (Debian's package, driven by playwright-core) against the
// worker served locally. Screenshots go to test-artifacts/.
import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { baseUrl, channelName, publisher } from "./helpers";
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

const seqsOn = (page: Page) => page.$$eval("#frames .msg .seq", (els) => els.map((e) => Number(e.textContent!.slice(1))).sort((a, b) => a - b));

it("subscribes, publishes from the page and over HTTP, and resumes after a dropped connection", { timeout: 60_000 }, async () => {
  const ch = channelName("console");
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
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

  await page.screenshot({ path: "test-artifacts/console-desktop.png", fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: "test-artifacts/console-phone.png", fullPage: true });
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
  expect(await page.textContent("#stats")).not.toMatch(/"seq"/);
  expect(await page.textContent("#publish-result")).toBe("");
  await page.close();
});

it("watches several channels at once over one socket, and resumes them all after a drop", { timeout: 40_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
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
  await pub.append(ch, "ans", " about it");
  await pub.append(ch, "ans", ": yes.", { done: true });
  await expect.poll(() => page.textContent("#frames .msg .data")).toBe('"Thinking about it: yes."');
  expect(await page.locator("#frames .msg").count()).toBe(1);
  expect(await page.textContent("#frames .msg .seq")).toBe("#1 (grown to #3, done)");
  await page.close();
});
