// The shared connection a provider hands to the hooks beneath it.
import { createContext, useContext } from "react";
import type { SharedConnection } from "./shared-connection.js";

export const ConnectionContext = createContext<SharedConnection | null>(null);

/** The provider's connection; a hook used outside one is a bug worth a clear message. */
export function useSharedConnection(hook: string): SharedConnection {
  const shared = useContext(ConnectionContext);
  if (shared === null) throw new Error(`hibercast: ${hook} needs a <HibercastProvider> above it`);
  return shared;
}
