declare namespace Cloudflare {
  interface Env {
    ROOMS: DurableObjectNamespace<import("../src/room-object").RoomObject>;
    EDGES: DurableObjectNamespace<import("../src/edge-object").EdgeObject>;
    DIRECTORY: DurableObjectNamespace<import("../src/directory-object").DirectoryObject>;
    JWT_SECRET: string;
    PUBLISH_KEY: string;
  }
  interface Exports {
    default: Fetcher;
  }
}
