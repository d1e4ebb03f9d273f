// <HibercastProvider>: one `/v1/ws` connection for every hook beneath it.
import { createElement, useEffect, useInsertionEffect, useMemo, useRef, type ReactNode } from "react";
import type { ConnectOptions } from "../client/multiplexed.js";
import { ConnectionContext } from "./context.js";
import { SharedConnection } from "./shared-connection.js";

export type ProviderProps =
  | {
      /** The service's base URL, e.g. `https://rt.example.com`. A new URL is a new connection. */
      url: string;
      /** The connection's token; a new one reconnects, and every channel resumes under it. */
      token?: string;
      /** Fetches a token: before connecting when `token` is absent, after a 4401, ahead of expiry. */
      getToken?: () => Promise<string>;
      /** The rest of `connect()`'s options (backoff, timeouts, a WebSocket class); read once per URL. */
      options?: Omit<ConnectOptions, "url" | "token" | "getToken">;
      children?: ReactNode;
    }
  | {
      /** A connection made outside React (several roots sharing one socket, say). */
      connection: SharedConnection;
      children?: ReactNode;
    };

export function HibercastProvider(props: ProviderProps): ReactNode {
  const given = "connection" in props ? props.connection : null;
  const url = "url" in props ? props.url : null;
  const token = "url" in props ? props.token : undefined;
  const getToken = "url" in props ? props.getToken : undefined;
  const options = "url" in props ? props.options : undefined;
  // The latest getToken, called when the connection needs a token (not when it was made).
  const latestGetToken = useRef(getToken);
  useInsertionEffect(() => {
    latestGetToken.current = getToken;
  });
  const hasGetToken = getToken !== undefined;
  // Made in render, but inert until a hook watches a channel: one React discards costs nothing.
  const shared = useMemo(
    () =>
      given ??
      new SharedConnection({
        ...options,
        url: url!,
        ...(token === undefined ? {} : { token }),
        ...(hasGetToken ? { getToken: () => latestGetToken.current!() } : {}),
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the token reaches it below, options once per URL
    [given, url, hasGetToken],
  );
  useEffect(() => {
    if (given === null) shared.setToken(token);
  }, [given, shared, token]);
  return createElement(ConnectionContext.Provider, { value: shared }, props.children);
}
