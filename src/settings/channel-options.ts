// CHANNEL_OPTIONS (DESIGN.md "Channel options"): ordered rules `{"match": "prefix-*" | "exact",
// ...options}`; the first rule that matches a channel applies its options over the global vars.
// Every mistake is reported with the rule and the field, never skipped.
import { isValidChannel } from "../protocol/channels.js";
import { isObject } from "../protocol/json.js";
import { LIMITS } from "../protocol/limits.js";

/** The options a rule may set, and what each accepts. */
export interface ChannelOptions {
  logMaxMessages: number;
  logMaxAgeS: number;
  dedupeWindowS: number;
  requireAuth: boolean;
  /** false: no token's `pub` grant can publish here (the publish key still can). */
  clientPublish: boolean;
  clientPubPerS: number;
  presenceMaxMembers: number;
  maxSockets: number;
  /** true: a new subscriber first gets the channel's last message, unless it resumes. */
  latest: boolean;
  /** Edges a channel's sockets are spread over (1 = the room alone). */
  shards: number;
  /** false: no webhooks for these channels. */
  webhooks: boolean;
}

/** `why`: what a `max` keeps under (a platform limit), said with the error. */
type Spec = { kind: "int"; min: number; max?: number; why?: string } | { kind: "bool" };

/** The platform's limit of hibernatable WebSockets per Durable Object (docs/operations.md "Limits"). */
export const SOCKETS_PER_OBJECT = 32_768;

export const OPTION_SPECS: Record<keyof ChannelOptions, Spec> = {
  logMaxMessages: { kind: "int", min: 1 },
  logMaxAgeS: { kind: "int", min: 1 },
  dedupeWindowS: { kind: "int", min: 0 },
  requireAuth: { kind: "bool" },
  clientPublish: { kind: "bool" },
  clientPubPerS: { kind: "int", min: 1 },
  presenceMaxMembers: { kind: "int", min: 0 },
  maxSockets: { kind: "int", min: 1, max: SOCKETS_PER_OBJECT, why: "the platform's limit of hibernatable sockets per object" },
  latest: { kind: "bool" },
  shards: { kind: "int", min: 1, max: 64 },
  webhooks: { kind: "bool" },
};

export interface Rule {
  match: string;
  /** The prefix of a `prefix-*` rule, or null for an exact name. */
  prefix: string | null;
  options: Partial<ChannelOptions>;
}

/** A configuration mistake, worded for whoever deploys: which var, rule and field. */
export class ConfigError extends Error {}

/**
 * Checks one option value against its spec; answers the value, or throws with `where`, naming
 * the bound it breaks (and, past a `max`, the limit that bound keeps under).
 */
export function checkOption(where: string, spec: Spec, value: unknown): number | boolean {
  const got = `(got ${JSON.stringify(value)})`;
  if (spec.kind === "bool") {
    if (typeof value !== "boolean") throw new ConfigError(`${where} must be true or false ${got}`);
    return value;
  }
  if (typeof value !== "number" || !Number.isInteger(value) || value < spec.min) throw new ConfigError(`${where} must be a whole number ≥ ${spec.min} ${got}`);
  if (spec.max !== undefined && value > spec.max) throw new ConfigError(`${where} must be at most ${spec.max} ${got}${spec.why === undefined ? "" : `: ${spec.why}`}`);
  return value;
}


/** Whether a rule's match can cover some channel whose name starts with `start`. */
function covers(rule: Rule, start: string): boolean {
  return rule.prefix === null ? rule.match.startsWith(start) : rule.prefix.startsWith(start) || start.startsWith(rule.prefix);
}

/** Parses CHANNEL_OPTIONS: a JSON array (wrangler.toml [vars]) or a JSON string of one. */
export function parseRules(value: unknown): Rule[] {
  if (value === undefined || value === null || value === "") return [];
  let list = value;
  if (typeof value === "string") {
    try {
      list = JSON.parse(value);
    } catch (err) {
      throw new ConfigError(`CHANNEL_OPTIONS is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!Array.isArray(list)) throw new ConfigError('CHANNEL_OPTIONS must be a JSON array of rules {"match": "prefix-*" | "exact-name", ...options}');
  const rules: Rule[] = [];
  list.forEach((raw, i) => {
    const where = `CHANNEL_OPTIONS rule ${i + 1}`;
    if (!isObject(raw)) throw new ConfigError(`${where} must be an object with "match"`);
    const match = raw.match;
    if (typeof match !== "string") throw new ConfigError(`${where}: "match" must be a string ("prefix-*" or an exact channel name)`);
    const named = `${where} ("${match}")`;
    const prefix = match.endsWith("*") ? match.slice(0, -1) : null;
    const name = prefix ?? match;
    const possible = prefix === null ? isValidChannel(match) : name === "" || (isValidChannel(name) && name.length < LIMITS.channelName);
    if (!possible) throw new ConfigError(`${named}: "match" can never match a channel: a channel name is 1-128 of A-Z a-z 0-9 _ - . : = @ , ; and "*" may only end a prefix`);
    const rule: Rule = { match, prefix, options: {} };
    const earlier = rules.find((r) => r.prefix !== null && name.startsWith(r.prefix));
    if (earlier) throw new ConfigError(`${named}: "match" can never match: rule ${rules.indexOf(earlier) + 1} ("${earlier.match}") comes first and takes every channel it would`);
    if (prefix === null && rules.some((r) => r.match === match)) throw new ConfigError(`${named}: "match" repeats an earlier rule, which takes every channel it would`);
    for (const [key, v] of Object.entries(raw)) {
      if (key === "match") continue;
      const spec = OPTION_SPECS[key as keyof ChannelOptions];
      if (spec === undefined) throw new ConfigError(`${named}: unknown option "${key}" (known: ${Object.keys(OPTION_SPECS).join(", ")})`);
      (rule.options as Record<string, unknown>)[key] = checkOption(`${named}: ${key}`, spec, v);
    }
    if (rule.options.shards !== undefined && rule.options.shards > 1 && covers(rule, "presence-")) {
      throw new ConfigError(`${named}: shards: presence channels cannot be sharded, and this rule covers presence- channels`);
    }
    rules.push(rule);
  });
  return rules;
}

/** The first rule that matches a channel, or null. */
export function ruleFor(rules: readonly Rule[], channel: string): Rule | null {
  for (const rule of rules) {
    if (rule.prefix === null ? rule.match === channel : channel.startsWith(rule.prefix)) return rule;
  }
  return null;
}
