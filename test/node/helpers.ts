import net from "node:net";
import { SignJWT } from "jose";
import { inject } from "vitest";
import { createPublisher } from "../../src/client/publisher";
import { NODE_JWT_SECRET, NODE_PUBLISH_KEY } from "./global-setup";

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

/**
 * A TCP proxy in front of the local server, to break connections the way networks do: `cut()`
 * resets every connection (no close frame, no FIN); `freeze()` silently drops all bytes, like
 * a dead link that the OS has not noticed.
 */
export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private frozen = false;
  cuts = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: string): Promise<TcpProxy> {
    const { hostname, port } = new URL(target);
    let proxy: TcpProxy;
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(port), hostname);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        proxy.sockets.add(from);
        from.on("data", (chunk) => {
          if (!proxy.frozen) to.write(chunk);
        });
        from.on("error", () => to.destroy());
        from.on("close", () => {
          proxy.sockets.delete(from);
          to.destroy();
        });
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Resets every open connection (TCP RST). */
  cut(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
    this.cuts++;
    return n;
  }

  freeze(on: boolean): void {
    this.frozen = on;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
