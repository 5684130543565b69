/**
 * A run's review: one request for every target its plan touches that has a review policy. The
 * run's policy is those policies' groups side by side, each named `<target>/<group>`, so the
 * rules of src/domain/review.ts apply unchanged: a run is approved when every group of every
 * reviewed target has its approvals (a user's approval counts for each group they are in), and
 * nobody approves their own run. The request goes to the first reviewed target's review channel
 * (targets sorted); reviews expire after the shortest `expiresAfter` among them.
 */
import type { ReviewPolicy } from './review.js';

export function runReviewPolicy(targets: readonly string[], policyOf: (target: string) => ReviewPolicy | null | undefined): ReviewPolicy | null {
  const reviewed = [...new Set(targets)]
    .sort()
    .map((target) => ({ target, policy: policyOf(target) ?? null }))
    .filter((entry): entry is { target: string; policy: ReviewPolicy } => entry.policy !== null);
  if (reviewed.length === 0) return null;
  const expiries = reviewed.flatMap(({ policy }) => (policy.expiresAfter ? [policy.expiresAfter] : []));
  const shortest = expiries.sort((a, b) => a.ms - b.ms)[0];
  return {
    channel: reviewed[0]!.policy.channel,
    autoRun: false,
    groups: reviewed.flatMap(({ target, policy }) => policy.groups.map((group) => ({ ...group, name: `${target}/${group.name}` }))),
    ...(shortest ? { expiresAfter: shortest } : {}),
  };
}
