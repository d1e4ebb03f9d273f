/**
 * A position in a channel: everything up to `seq` of `epoch` has been seen, so a resume starts at
 * `seq + 1`. `epoch` null: not known yet (then no epoch check is made). The one cursor type of
 * the socket, SSE, history and the SDK.
 */
export interface Cursor {
  seq: number;
  epoch: string | null;
}
