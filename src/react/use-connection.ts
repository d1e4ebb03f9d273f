// useConnection: the shared socket's state, for a banner or a reconnect button.
import { useSyncExternalStore } from "react";
import { useSharedConnection } from "./context.js";
import type { ConnectionStatus, SharedConnection } from "./shared-connection.js";

export interface ConnectionResult extends ConnectionStatus {
  /** The provider's connection, shared by every hook beneath it. */
  connection: SharedConnection;
  /** Drops the socket and connects again; every channel resumes from its cursor. */
  reconnect(): void;
}

export function useConnection(): ConnectionResult {
  const shared = useSharedConnection("useConnection");
  const status = useSyncExternalStore(
    (onChange) => shared.subscribe(onChange),
    () => shared.status,
    () => shared.status,
  );
  return { ...status, connection: shared, reconnect: () => shared.reconnect() };
}
