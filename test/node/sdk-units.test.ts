import { describe, expect, it } from "vitest";
import { backoffDelay, DEFAULT_BACKOFF, Emitter } from "../../src/client/index";
import { socketUrl } from "../../src/client/url";

describe("backoff", () => {
  it("is full jitter: between 0 and min(max, initial * 2^attempt)", () => {
    expect(backoffDelay(0, DEFAULT_BACKOFF, () => 0.999)).toBe(249);
    expect(backoffDelay(3, DEFAULT_BACKOFF, () => 0.5)).toBe(1000);
    expect(backoffDelay(30, DEFAULT_BACKOFF, () => 0.999)).toBe(9990);
    expect(backoffDelay(5, DEFAULT_BACKOFF, () => 0)).toBe(0);
  });

  it("spreads clients out", () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4)));
    expect(delays.size).toBeGreaterThan(40);
    for (const d of delays) expect(d).toBeLessThan(4000);
  });
});

describe("typed emitter", () => {
  it("calls each handler, survives a throwing one, and removes handlers", () => {
    const e = new Emitter<{ a: number; b: string }>();
    const seen: string[] = [];
    const off = e.on("a", (n) => seen.push(`a${n}`));
    e.on("a", () => {
      throw new Error("boom");
    });
    e.on("b", (s) => seen.push(`b${s}`));
    const quiet = console.error;
    console.error = () => {};
    try {
      e.emit("a", 1);
      e.emit("b", "x");
      off();
      e.emit("a", 2);
    } finally {
      console.error = quiet;
    }
    expect(seen).toEqual(["a1", "bx"]);
  });
});

describe("socketUrl", () => {
  it("turns http(s) into ws(s), leaves ws(s) as it is, and keeps a base path with or without its slash", () => {
    expect(socketUrl("http://localhost:8787", "v1/ws").href).toBe("ws://localhost:8787/v1/ws");
    expect(socketUrl("https://rt.example", "v1/ws").href).toBe("wss://rt.example/v1/ws");
    expect(socketUrl("wss://rt.example/", "v1/ws").href).toBe("wss://rt.example/v1/ws");
    expect(socketUrl("ws://rt.example", "v1/ws").href).toBe("ws://rt.example/v1/ws");
    expect(socketUrl("https://example.com/rt", "v1/ws").href).toBe("wss://example.com/rt/v1/ws");
    expect(socketUrl("https://example.com/rt/", "v1/ws").href).toBe("wss://example.com/rt/v1/ws");
  });
});
