// The wire contract's shared pieces, as every side uses them: one error becomes an HTTP answer,
// an err frame and a refusal close; one table says what a client does after each close code.
import { describe, expect, it } from "vitest";
import { CLOSE, ERROR_STATUS, errorOfClose, retryAfter } from "../src/protocol";
import { ServiceError } from "../src/server/service-error";

describe("one error model", () => {
  it("becomes the HTTP answer, the err frame and the refusal close of its code", async () => {
    const err = new ServiceError("forbidden", "token does not grant channel x");
    const res = err.toResponse();
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: { code: "forbidden", message: "token does not grant channel x" } });
    expect(err.toFrame()).toEqual({ t: "err", code: "forbidden", message: "token does not grant channel x" });
    expect(err.toFrame(4403)).toEqual({ t: "err", code: "forbidden", message: "token does not grant channel x", close: 4403 });
    expect(err.refusalClose).toBe(4403);
  });

  it("keeps the id of the pub it answers, also as a bad_frame", () => {
    const err = new ServiceError("bad_request", "event must be a string", "pub-7");
    expect(err.toFrame()).toMatchObject({ id: "pub-7" });
    expect(err.asBadFrame().toFrame()).toEqual({ t: "err", code: "bad_frame", message: "event must be a string", id: "pub-7" });
    expect(err.asBadFrame().status).toBe(400);
  });

  it("has a status for every code of the contract", () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(new ServiceError(code as keyof typeof ERROR_STATUS, "x").status).toBe(status);
    }
  });
});

describe("close codes", () => {
  it("tell a client to stop, fetch a fresh token once, or back off and resume", () => {
    expect([4400, 4403, 1009].map(retryAfter)).toEqual(["stop", "stop", "stop"]);
    expect(retryAfter(4401)).toBe("fresh-token");
    expect([4408, 4429, 4503, 1001, 1006, 4999].map(retryAfter)).toEqual(Array(6).fill("backoff"));
  });

  it("name the error a close stands for, matching the refusal of each HTTP status", () => {
    for (const close of Object.values(CLOSE)) expect(errorOfClose(close.code)).toBe(close.error);
    for (const code of ["bad_request", "unauthorized", "forbidden"] as const) {
      expect(errorOfClose(new ServiceError(code, "x").refusalClose)).toBe(code);
    }
  });
});
