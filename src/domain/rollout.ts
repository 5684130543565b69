/**
 * Rollouts: run a script on a few hosts at a time instead of everywhere at once, so a bad
 * script hurts one batch, not the fleet. The batch is a host count (5) or a share ("25%").
 */
import type { HostAddress, Plan } from './plan.js';

export interface Rollout {
  batch: number | { percent: number };
  /** Checked by the runner between groups; the plan itself does not depend on it. */
  stopOnFailure: boolean;
}

const PERCENT = /^(\d+(?:\.\d+)?)\s*%$/;
const WHOLE_NUMBER = /^\d+$/;

/** Parses config values: a positive integer (5) or a percentage string ("25%"); returns null if invalid. */
export function parseBatch(value: number | string): Rollout['batch'] | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : null;
  const text = value.trim();
  // A quoted count ("5") is still a count: YAML users quote numbers more often than not.
  if (WHOLE_NUMBER.test(text)) return parseBatch(Number(text));
  const match = PERCENT.exec(text);
  if (!match) return null;
  const percent = Number(match[1]);
  return percent > 0 && percent <= 100 ? { percent } : null;
}

/** Groups of hosts in config order: each group `batch` hosts (percent of the host count, rounded up, at least 1); no rollout -> one group with every host. */
export function buildRolloutPlan(hosts: readonly HostAddress[], rollout: Rollout | null): Plan {
  if (hosts.length === 0) return [];
  const size = rollout === null ? hosts.length : groupSize(hosts.length, rollout.batch);
  const plan: Plan = [];
  for (let start = 0; start < hosts.length; start += size) plan.push(hosts.slice(start, start + size));
  return plan;
}

function groupSize(hostCount: number, batch: Rollout['batch']): number {
  if (typeof batch === 'number') return Math.max(1, Math.floor(batch));
  // Multiply before dividing: 0.3 * 10 is 3.0000000000000004, which would round up to 4.
  // The small epsilon covers decimal percentages that are not exact in binary either.
  return Math.max(1, Math.ceil((batch.percent * hostCount) / 100 - 1e-9));
}
