import { describe, expect, it } from 'vitest';
import {
  dmRecipients,
  expiryMessage,
  isApproved,
  isReviewer,
  mayOperate,
  mayReview,
  progress,
  reviewExpiresAt,
  unreachableGroups,
  usergroupsOf,
  withMembers,
  type ReviewDecision,
  type ReviewPolicy,
} from '../../src/domain/review.js';
import { Reviewers } from '../../src/service/reviewers.js';

const policy: ReviewPolicy = {
  channel: 'CREVIEW',
  autoRun: false,
  groups: [
    { name: 'sre', users: ['UALICE', 'UBOB', 'UAUTHOR'], approvals: 1 },
    { name: 'dba', users: ['UCAROL', 'UDAVE', 'UBOB'], approvals: 2 },
  ],
};
const approve = (userId: string): ReviewDecision => ({ userId, verdict: 'approve', reason: null, at: new Date() });

describe('review policy', () => {
  it('refuses self-review and non-members', () => {
    expect(mayReview(policy, 'UAUTHOR', 'UAUTHOR', '#1')).toMatchObject({ ok: false, code: 'self_review' });
    expect(mayReview(policy, 'UAUTHOR', 'UMALLORY', '#1')).toMatchObject({ ok: false, code: 'not_reviewer' });
    expect(mayReview(policy, 'UAUTHOR', 'UALICE', '#1')).toEqual({ ok: true });
  });

  it('needs every group satisfied', () => {
    expect(isApproved(policy, 'UAUTHOR', [approve('UALICE')])).toBe(false);
    expect(isApproved(policy, 'UAUTHOR', [approve('UALICE'), approve('UCAROL')])).toBe(false);
    expect(isApproved(policy, 'UAUTHOR', [approve('UALICE'), approve('UCAROL'), approve('UDAVE')])).toBe(true);
  });

  it('counts one approval for every group the reviewer is in', () => {
    expect(progress(policy, 'UAUTHOR', [approve('UBOB'), approve('UCAROL')]).map((g) => g.satisfied)).toEqual([true, true]);
  });

  it('never counts the author or outsiders', () => {
    const decisions = [approve('UAUTHOR'), approve('UMALLORY'), approve('UCAROL')];
    expect(progress(policy, 'UAUTHOR', decisions)).toEqual([
      { name: 'sre', required: 1, approvedBy: [], satisfied: false },
      { name: 'dba', required: 2, approvedBy: ['UCAROL'], satisfied: false },
    ]);
  });

  it('lets the author and reviewers run or kill, nobody else', () => {
    expect(mayOperate(policy, 'UAUTHOR', 'UAUTHOR', 'run', '#1').ok).toBe(true);
    expect(mayOperate(policy, 'UAUTHOR', 'UDAVE', 'kill', '#1').ok).toBe(true);
    expect(mayOperate(policy, 'UAUTHOR', 'UMALLORY', 'kill', '#1')).toMatchObject({ ok: false, code: 'not_allowed' });
    expect(mayOperate(null, 'UAUTHOR', 'UMALLORY', 'kill', '#1').ok).toBe(false);
  });
});

describe('review groups with a Slack user group', () => {
  const withUsergroup: ReviewPolicy = {
    channel: 'CREVIEW',
    autoRun: false,
    expiresAfter: { ms: 24 * 3600_000, text: '24h' },
    groups: [
      { name: 'sre', users: ['UALICE'], usergroup: 'S0SRE', approvals: 2, dm: true },
      { name: 'dba', users: ['UCAROL'], approvals: 1 },
    ],
  };

  it('merges the members into users, keeps the listed users apart, and resolves again from the listed ones', () => {
    const resolved = withMembers(withUsergroup, new Map([['S0SRE', ['UBOB', 'UALICE', 'UERIN']]]));
    expect(resolved.groups[0]).toMatchObject({ users: ['UALICE', 'UBOB', 'UERIN'], listed: ['UALICE'], usergroup: 'S0SRE' });
    expect(resolved.groups[1]).toBe(withUsergroup.groups[1]);
    // Someone left the user group: resolving the resolved policy does not keep them.
    const again = withMembers(resolved, new Map([['S0SRE', ['UBOB']]]));
    expect(again.groups[0]?.users).toEqual(['UALICE', 'UBOB']);
    // Unknown members: only the listed users count.
    expect(withMembers(withUsergroup, new Map()).groups[0]?.users).toEqual(['UALICE']);
  });

  it('lets members review and counts them, and nobody else', () => {
    const resolved = withMembers(withUsergroup, new Map([['S0SRE', ['UBOB', 'UERIN']]]));
    expect(mayReview(resolved, 'UAUTHOR', 'UERIN', '#1')).toEqual({ ok: true });
    expect(mayReview(withUsergroup, 'UAUTHOR', 'UERIN', '#1')).toMatchObject({ ok: false, code: 'not_reviewer' });
    expect(isReviewer(resolved, 'UMALLORY')).toBe(false);
    expect(isApproved(resolved, 'UAUTHOR', [approve('UBOB'), approve('UCAROL')])).toBe(false);
    expect(isApproved(resolved, 'UAUTHOR', [approve('UBOB'), approve('UERIN'), approve('UCAROL')])).toBe(true);
  });

  it('finds a group unreachable only with its members known', () => {
    expect(unreachableGroups(withUsergroup, 'UAUTHOR').map((g) => g.name)).toEqual(['sre']);
    const resolved = withMembers(withUsergroup, new Map([['S0SRE', ['UBOB', 'UAUTHOR']]]));
    // The author is a member but never counts: ALICE and BOB make two.
    expect(unreachableGroups(resolved, 'UAUTHOR')).toEqual([]);
    const small = withMembers(withUsergroup, new Map([['S0SRE', ['UBOB']]]));
    expect(unreachableGroups(small, 'UDAVE')).toEqual([]);
    expect(unreachableGroups(small, 'UALICE').map((g) => g.name)).toEqual(['sre']);
  });

  it('lists user groups once, and DMs the members of dm groups but never the author', () => {
    const twice: ReviewPolicy = {
      ...withUsergroup,
      groups: [...withUsergroup.groups, { name: 'oncall', users: [], usergroup: 'S0SRE', approvals: 1, dm: true }],
    };
    expect(usergroupsOf(twice)).toEqual(['S0SRE']);
    const resolved = withMembers(twice, new Map([['S0SRE', ['UBOB', 'UAUTHOR']]]));
    expect(dmRecipients(resolved, 'UAUTHOR')).toEqual(['UALICE', 'UBOB']);
    expect(dmRecipients(policy, 'UAUTHOR')).toEqual([]);
  });

  it('says when a review expires, and why it did', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    expect(reviewExpiresAt(withUsergroup, at)?.toISOString()).toBe('2026-01-02T00:00:00.000Z');
    expect(reviewExpiresAt(policy, at)).toBeNull();
    expect(expiryMessage(withUsergroup)).toBe('review expired after 24h without enough approvals');
  });
});

describe('Reviewers: user group members from Slack, cached', () => {
  function directory(groups: Record<string, string[]>) {
    const calls: string[] = [];
    let failing: Error | null = null;
    return {
      calls,
      groups,
      fail(error: Error | null) {
        failing = error;
      },
      members: async (id: string) => {
        calls.push(id);
        if (failing) throw failing;
        const users = groups[id];
        if (!users) throw new Error('no_such_subteam');
        return [...users];
      },
    };
  }
  const policyWith = (usergroup: string): ReviewPolicy => ({
    channel: 'CREVIEW',
    autoRun: false,
    groups: [{ name: 'sre', users: ['UALICE'], usergroup, approvals: 1 }],
  });
  const warnings: string[] = [];
  const log = { warn: (_: Record<string, unknown>, message: string) => void warnings.push(message) };

  it('asks Slack once per TTL, and sees a change after it', async () => {
    let now = 1_000_000;
    const slack = directory({ S0SRE: ['UBOB'] });
    const reviewers = new Reviewers(slack, { ttlMs: 60_000, now: () => now });
    expect((await reviewers.resolve(policyWith('S0SRE'))).policy.groups[0]?.users).toEqual(['UALICE', 'UBOB']);
    slack.groups.S0SRE = ['UERIN'];
    now += 59_000;
    expect((await reviewers.resolve(policyWith('S0SRE'))).policy.groups[0]?.users).toEqual(['UALICE', 'UBOB']);
    expect(slack.calls).toHaveLength(1);
    now += 2_000;
    expect((await reviewers.resolve(policyWith('S0SRE'))).policy.groups[0]?.users).toEqual(['UALICE', 'UERIN']);
    expect(slack.calls).toHaveLength(2);
  });

  it('shares one lookup between concurrent checks', async () => {
    const slack = directory({ S0SRE: ['UBOB'] });
    const reviewers = new Reviewers(slack);
    await Promise.all([reviewers.members('S0SRE'), reviewers.members('S0SRE'), reviewers.members('S0SRE')]);
    expect(slack.calls).toHaveLength(1);
  });

  it('falls back to the last known members when Slack fails, and to the listed users when none are known', async () => {
    let now = 0;
    const slack = directory({ S0SRE: ['UBOB'] });
    const reviewers = new Reviewers(slack, { ttlMs: 1000, retryMs: 500, now: () => now, log });
    await reviewers.resolve(policyWith('S0SRE'));
    slack.fail(new Error('fatal_error'));
    now += 2000;
    const stale = await reviewers.resolve(policyWith('S0SRE'));
    expect(stale).toMatchObject({ unknown: [] });
    expect(stale.policy.groups[0]?.users).toEqual(['UALICE', 'UBOB']);
    expect(warnings.at(-1)).toMatch(/using the 1 members known before/);
    // Not asked again at once while it fails...
    await reviewers.resolve(policyWith('S0SRE'));
    expect(slack.calls).toHaveLength(2);
    // ...but after retryMs.
    now += 600;
    slack.fail(null);
    slack.groups.S0SRE = ['UERIN'];
    expect((await reviewers.resolve(policyWith('S0SRE'))).policy.groups[0]?.users).toEqual(['UALICE', 'UERIN']);

    const never = await reviewers.resolve(policyWith('S0NOPE'));
    expect(never.unknown).toEqual(['S0NOPE']);
    expect(never.policy.groups[0]?.users).toEqual(['UALICE']);
    expect(warnings.at(-1)).toMatch(/count only their listed users/);
  });

  it('does not wait long for a slow Slack', async () => {
    const reviewers = new Reviewers({ members: () => new Promise<string[]>((resolve) => setTimeout(() => resolve(['UBOB']), 300)) }, { lookupTimeoutMs: 20 });
    expect(await reviewers.members('S0SLOW')).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await reviewers.members('S0SLOW')).toEqual(['UBOB']);
  });

  it('gives user groups no members without Slack, and leaves policies without user groups alone', async () => {
    const reviewers = new Reviewers(null);
    expect(await reviewers.resolve(policyWith('S0SRE'))).toMatchObject({ unknown: [], policy: { groups: [{ users: ['UALICE'] }] } });
    const resolved = await reviewers.resolve(policy);
    expect(resolved.policy).toBe(policy);
  });
});
