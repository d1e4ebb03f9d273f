// The Worker's env: the object bindings (typed by their RPC interfaces, src/rpc.ts), the optional
// Analytics Engine dataset, and the vars and secrets (src/settings/vars.ts). Imports no class.
import type { Bindings } from "./rpc.js";
import type { Vars } from "./settings/vars.js";

export interface Env extends Bindings, Vars {
  /** Optional Workers Analytics Engine dataset for per-channel counters. */
  ANALYTICS?: AnalyticsEngineDataset;
}
