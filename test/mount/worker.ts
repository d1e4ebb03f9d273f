import { hibercast, DirectoryObject, EdgeObject, RoomObject, type Env } from "hibercast/server";

// The object classes live in the app's Worker, under the bindings its wrangler.toml names.
export { DirectoryObject, EdgeObject, RoomObject };

/** The app's own sessions (a real app keeps them in KV or D1): who is signed in, for how long. */
const SESSIONS: Record<string, { user: string; ttlS: number }> = {
  "s-alice": { user: "alice", ttlS: 3600 },
  "s-bob": { user: "bob", ttlS: 2 },
};

function sessionOf(request: Request) {
  const id = /(?:^|;\s*)session=([^;]+)/.exec(request.headers.get("cookie") ?? "")?.[1];
  return id === undefined ? undefined : SESSIONS[id];
}

const rt = hibercast({
  prefix: "/rt",
  // The grant of the request's session, in the shape of a token's claims; null: no session.
  authorize: (request) => {
    const session = sessionOf(request);
    if (session === undefined) return null;
    return {
      sub: session.user,
      ch: [`private-user-${session.user}`, "presence-lobby"],
      pub: ["chat-*"],
      info: { name: session.user },
      // A grant dies with its session: sockets it opened are closed (4401) when it ends.
      exp: Math.floor(Date.now() / 1000) + session.ttlS,
    };
  },
});

export default {
  fetch(request, env, ctx) {
    if (rt.handles(request)) return rt.fetch(request, env, ctx);
    const url = new URL(request.url);
    if (url.pathname === "/hello") return new Response(`hello, ${sessionOf(request)?.user ?? "stranger"}`);
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<Env>;
