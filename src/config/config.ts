/**
 * The resolved config the app runs on: keys read, known hosts parsed, durations in ms.
 * Produced once at start by loadConfig; everything downstream takes these types.
 */
import type { HostAddress } from '../domain/plan.js';
import type { Recipe } from '../domain/recipe.js';
import type { RedactRule } from '../domain/redaction.js';
import type { ReviewPolicy } from '../domain/review.js';
import type { Rollout } from '../domain/rollout.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { KnownHostEntry } from '../exec/knownHosts.js';
import type { People } from '../domain/people.js';

export interface Target {
  name: string;
  description: string | null;
  type: ScriptType;
  hosts: HostAddress[];
  privateKey: string;
  knownHosts: KnownHostEntry[];
  channel: string | null;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxSessions: number;
  rollout: Rollout | null;
  runAs: string[] | null;
  /** Secret values by variable name, read at start; held in memory only. */
  secrets: ReadonlyMap<string, string>;
  redact: RedactRule[];
  /**
   * The review policy as configured: a group's `usergroup` members are not in its `users` yet.
   * Rules are checked on the resolved policy (src/service/reviewers.ts, TaskService.resolvedPolicy).
   */
  review: ReviewPolicy | null;
  /** Who may read this target's tasks besides their authors, reviewers, card channel members and admins. */
  viewers: People | null;
}

export interface RunnerSettings {
  maxConcurrentRuns: number;
  leaseMs: number;
  /** How long a runner may be silently cut off from Postgres before its runs are given up. */
  livenessMs: number;
  pollMs: number;
  killGraceMs: number;
  shutdownGraceMs: number;
  maxOutputBytes: number;
}

/** How a hook sets one argument: a literal, or a field of the request's JSON body (dotted path). */
export type HookArgument = { value: string } | { from: string };

/** How a hook's deliveries authenticate: see `signature` in src/config/schema.ts. */
export type HookSignature = 'countersign' | 'github' | 'bearer';

export interface Hook {
  id: string;
  recipe: string;
  /** Held in memory only. */
  secret: string;
  signature: HookSignature;
  channel: string | null;
  message: string | null;
  arguments: ReadonlyMap<string, HookArgument>;
}

export interface Config {
  runner: RunnerSettings;
  /** May read every task and change any saved runbook; absent means nobody. */
  admins?: People;
  /** Task-page links: how long one stays valid (24 h when absent). */
  links?: { ttlMs: number };
  targets: ReadonlyMap<string, Target>;
  /** Recipes from `recipes:` and `recipeFiles` (read-only); absent means none. */
  recipes?: ReadonlyMap<string, Recipe>;
  hooks?: ReadonlyMap<string, Hook>;
}

export const DEFAULT_RUNNER_SETTINGS: RunnerSettings = {
  maxConcurrentRuns: 20,
  leaseMs: 30_000,
  livenessMs: 60_000,
  pollMs: 2_000,
  killGraceMs: 5_000,
  shutdownGraceMs: 30_000,
  maxOutputBytes: 10 * 1024 * 1024,
};
