// useMessage and useStreamingText: one message by id, re-rendered each time it grows.
import { useCallback } from "react";
import type { Message } from "../client/subscription.js";
import type { ChannelStore } from "./channel-store.js";
import type { UseChannelOptions } from "./use-channel.js";
import { useChannelView } from "./watch.js";

/**
 * The latest version of message `id` on `channel` (undefined until it comes): after each
 * append it is the message again with its whole text so far, exact across reconnects. Pass
 * `rewind` to find a message sent before the component mounted.
 */
export function useMessage<D = unknown>(channel: string, id: string | undefined, options: Omit<UseChannelOptions, "limit"> = {}): Message<string, D> | undefined {
  const read = useCallback((store: ChannelStore) => (id === undefined ? undefined : store.message(id)), [id]);
  return useChannelView("useMessage", channel, { ...options, keep: 0 }, read, undefined) as Message<string, D> | undefined;
}

export interface StreamingText {
  /** The whole text so far ("" until the message comes). */
  text: string;
  /** The message grows no more. */
  done: boolean;
  /** It began before this subscription's cursor: `text` is only what came since (rewind to have it whole). */
  partial: boolean;
}

/** The text of a growing message (an AI answer, a transcript): its whole text so far, and whether it is done. */
export function useStreamingText(channel: string, id: string | undefined, options: Omit<UseChannelOptions, "limit"> = {}): StreamingText {
  const message = useMessage<string>(channel, id, options);
  return { text: typeof message?.d === "string" ? message.d : "", done: message?.done === true, partial: message?.partial === true };
}
