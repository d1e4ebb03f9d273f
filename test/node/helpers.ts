import net from "node:net";
import { SignJWT } from "jose";
import { inject } from "vitest";
import { createPublisher } from "../../src/client/publisher";
import { NODE_JWT_SECRET, NODE_PUBLISH_KEY } from "./server";

export const baseUrl = () => inject("baseUrl");
export const publisher = () => createPublisher({ url: baseUrl(), key: NODE_PUBLISH_KEY, backoff: { initialMs: 20, maxMs: 200 } });

let unique = 0;
export const channelName = (prefix = "node") => `${prefix}-${Date.now().toString(36)}-${unique++}`;

export function token(claims: Record<string, unknown>, expiresIn: string | number = "1h", secret = NODE_JWT_SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` is true (or throws after `ms`). */
export async function until(check: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves when a Laravel Echo channel's subscription succeeded (its `subscribed` callback). */
export const ready = (channel: { subscribed(callback: () => void): unknown }) => new Promise<void>((resolve) => void channel.subscribed(() => resolve()));

/**
 * A TCP proxy in front of the local server, to break connections the way networks do: `cut()`
 * resets connections (no close frame, no FIN); `freeze()` silently drops all bytes, like a dead
 * link the OS has not noticed; `block()` refuses new connections (an outage); `retarget()`
 * points it at a restarted server.
 */
export class TcpProxy {
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private frozen = false;
  private blocked = false;
  cuts = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private target: URL,
  ) {}

  static async start(target: string): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => proxy!.accept(client));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, new URL(target));
    return proxy;
  }

  private accept(client: net.Socket): void {
    if (this.blocked) return void client.resetAndDestroy();
    const upstream = net.connect(Number(this.target.port), this.target.hostname);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    for (const [from, to] of [pair, [upstream, client]] as const) {
      from.on("data", (chunk) => {
        if (!this.frozen) to.write(chunk);
      });
      from.on("error", () => to.destroy());
      from.on("close", () => {
        this.pairs.delete(pair);
        to.destroy();
      });
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** Resets a random `fraction` of the open connections (all by default); answers how many. */
  cut(fraction = 1): number {
    let n = 0;
    for (const pair of [...this.pairs]) {
      if (fraction < 1 && Math.random() >= fraction) continue;
      for (const s of pair) s.resetAndDestroy();
      this.pairs.delete(pair);
      n++;
    }
    this.cuts++;
    return n;
  }

  freeze(on: boolean): void {
    this.frozen = on;
  }

  /** While blocked, every connection is cut and new ones are reset at once. */
  block(on: boolean): void {
    this.blocked = on;
    if (on) this.cut();
  }

  retarget(target: string): void {
    this.target = new URL(target);
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Publishes 1..M to a channel from four publishers at a steady rate (each with its own id)
 * while `proxy` resets 2% of its connections every 150 ms, until every subscriber in `seen` has
 * M messages. Answers how many connections were cut.
 */
export async function publishThroughCuts(
  pub: { publish(channel: string, event: string, data: unknown, options: { id: string }): Promise<unknown> },
  channel: string,
  M: number,
  proxy: TcpProxy,
  seen: number[][],
  catchUpMs: number,
): Promise<number> {
  let next = 1;
  const publishing = Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = next++; i <= M; i = next++) {
        await pub.publish(channel, "tick", i, { id: `${channel}-${i}` });
        if (i % 20 === 0) await sleep(10);
      }
    }),
  );
  let cut = 0;
  const cutting = (async () => {
    while (seen.some((s) => s.length < M)) {
      await sleep(150);
      cut += proxy.cut(0.02);
    }
  })();
  await publishing;
  await until(() => seen.every((s) => s.length >= M), catchUpMs, "every subscriber to catch up");
  await cutting;
  return cut;
}
