import { describe, expect, it } from 'vitest';
import { isApproved, mayOperate, mayReview, progress, type ReviewDecision, type ReviewPolicy } from '../../src/domain/review.js';

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
