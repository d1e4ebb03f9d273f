// hibercast/react: hooks over one shared `/v1/ws` connection. React is a peer dependency; none
// of this is in the Worker.
export { HibercastProvider, type ProviderProps } from "./provider.js";
export { SharedConnection, type ConnectionStatus } from "./shared-connection.js";
export { useConnection, type ConnectionResult } from "./use-connection.js";
export { useChannel, type ChannelMessage, type ChannelResult, type UseChannelOptions } from "./use-channel.js";
export { usePresence, type PresenceResult } from "./use-presence.js";
export { useMessage, useStreamingText, type StreamingText } from "./use-message.js";
export type { ChannelStatus } from "./channel-store.js";
