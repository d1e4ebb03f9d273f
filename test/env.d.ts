declare namespace Cloudflare {
  interface Env {
    ROOMS: DurableObjectNamespace<import("../src/room-object").RoomObject>;
    JWT_SECRET: string;
    PUBLISH_KEY: string;
  }
  interface Exports {
    default: Fetcher;
  }
}
