// `npm run floor -- [M]`: appends per second with no readers (default M=1500, 4 in flight) for
// the product's `POST /v1/stream/:name` and for the platform's own floor beneath it
// (scripts/floor/durable-write.mjs: the Worker alone; plus a no-op RPC to a Durable Object; plus
// one SQLite row written in that call; the same with group commit; the row over stub.fetch;
// pick with MODES=worker,rpc,…), all on the same workerd, and the Durable Streams reference
// server in memory when it is installed (`@durable-streams/server`, as the shared bench has it).
// Also the server's CPU per append (Linux /proc). The body is the Durable Streams bench's: a
// one-element JSON array of ~200 bytes. Median of REPEAT=3 interleaved runs, each on a fresh
// server. Everything stays on 127.0.0.1.
import http from "node:http";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cpuMs, freePort, serveOnWorkerd } from "./serve-workerd.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const M = Number(process.argv[2] ?? 1500);
const REPEAT = Number(process.env.REPEAT ?? 3);
const IN_FLIGHT = 4;
const KEY = "floor-publish-key";
setTimeout(() => (console.error("floor: hard stop reached"), process.exit(2)), 280_000).unref();

const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
function request(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const payload = (seq) => {
  const s = JSON.stringify({ seq, ts: performance.now(), pad: "" });
  return `[${JSON.stringify({ seq, ts: performance.now(), pad: "x".repeat(Math.max(0, 200 - s.length)) })}]`;
};

/** M appends to `url`, IN_FLIGHT at a time: appends per second, and the server's CPU per append (µs). */
async function appends(url, headers, pid) {
  let next = 0;
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < M) {
      const status = await request("POST", url, headers, payload(next++));
      if (status < 200 || status > 299) throw new Error(`POST ${url} answered ${status}`);
    }
  }));
  const rate = M / ((performance.now() - t0) / 1000);
  const c1 = cpuMs(pid);
  return { rate, cpu: c0 === null || c1 === null ? null : ((c1 - c0) * 1000) / M };
}

const json = { "content-type": "application/json" };
const shapes = {
  async product(run) {
    const server = await serveOnWorkerd({ PUBLISH_KEY: KEY });
    try {
      const url = `${server.url}/v1/stream/floor-${run}`;
      const auth = { ...json, authorization: `Bearer ${KEY}` };
      if ((await request("PUT", url, auth)) !== 201) throw new Error("PUT failed");
      return { product: await appends(url, auth, server.pid) };
    } finally {
      await server.stop();
    }
  },
  async platform(run) {
    const server = await serveOnWorkerd({}, { entry: path.join(root, "scripts/floor/durable-write.mjs") });
    try {
      const out = {};
      for (const mode of (process.env.MODES ?? "worker,rpc,insert,group,fetch").split(",")) out[`floor:${mode}`] = await appends(`${server.url}/${mode}/floor-${run}`, json, server.pid);
      return out;
    } finally {
      await server.stop();
    }
  },
};

// The reference server, from this project's node_modules or the shared bench's.
const reference = [path.join(root, "node_modules/@durable-streams/server"), path.join(root, "../shared/bench/node_modules/@durable-streams/server")].find(existsSync);
if (reference !== undefined) {
  shapes["ds-ref"] = async (run) => {
    const port = await freePort();
    const code = `import(${JSON.stringify(pathToFileURL(path.join(reference, "dist/index.js")).href)}).then(async ({ DurableStreamTestServer }) => { const s = new DurableStreamTestServer({ port: ${port}, host: "127.0.0.1" }); await s.start(); console.log("READY"); });`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve, reject) => {
      child.stdout.on("data", (d) => String(d).includes("READY") && resolve());
      child.once("exit", () => reject(new Error("ds-ref did not start")));
    });
    try {
      const url = `http://127.0.0.1:${port}/v1/stream/floor-${run}`;
      await request("PUT", url, json);
      return { "ds-ref": await appends(url, json, child.pid) };
    } finally {
      child.kill("SIGINT");
    }
  };
}

const runs = {};
for (let run = 0; run < REPEAT; run++) {
  for (const [name, shape] of Object.entries(shapes)) {
    for (const [k, v] of Object.entries(await shape(run))) (runs[k] ??= []).push(v);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ref = runs["ds-ref"] ? median(runs["ds-ref"].map((r) => r.rate)) : null;
console.log(`appends/s with no readers: ${M} appends, ${IN_FLIGHT} in flight, median of ${REPEAT}; server CPU per append in µs`);
console.log("shape            appends/s  x_ds_ref  cpu_us  runs (appends/s)");
for (const [k, rs] of Object.entries(runs)) {
  const m = median(rs.map((r) => r.rate));
  const cpus = rs.map((r) => r.cpu).filter((c) => c !== null);
  const cpu = cpus.length === 0 ? "-" : median(cpus).toFixed(0);
  console.log(`${k.padEnd(16)} ${m.toFixed(0).padStart(9)}  ${ref === null ? "     -" : (m / ref).toFixed(2).padStart(8)}  ${cpu.padStart(6)}  ${rs.map((r) => r.rate.toFixed(0)).join(" ")}`);
}
process.exit(0);
