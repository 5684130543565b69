/** The run engine's pure half: what a run does next, its lifecycle, and its combined review policy. */
import { describe, expect, it } from 'vitest';
import { assertRunTransition, assertStepTransition, canTransitionRun, type RunStep } from '../../src/domain/run.js';
import { decideRun } from '../../src/domain/runDecision.js';
import { runReviewPolicy } from '../../src/domain/runReview.js';
import { isApproved } from '../../src/domain/review.js';

type Step = Pick<RunStep, 'id' | 'groupIndex' | 'position' | 'stepId' | 'kind' | 'phase' | 'continueOnFailure' | 'timeoutAt' | 'failureMessage'>;
const NOW = new Date('2030-01-01T12:00:00Z');
let next = 1;
const step = (groupIndex: number, phase: Step['phase'], extra: Partial<Step> = {}): Step => ({
  id: next++,
  groupIndex,
  position: 0,
  stepId: `rb.s${next}`,
  kind: 'script',
  phase,
  continueOnFailure: false,
  timeoutAt: null,
  failureMessage: null,
  ...extra,
});
const running = { status: 'running' as const, desiredPhase: null, runAfter: null };

describe('decideRun', () => {
  it('starts a ready run once its grace has passed, and its first group at once', () => {
    const steps = [step(0, 'pending'), step(0, 'pending', { position: 1 }), step(1, 'pending')];
    expect(decideRun({ status: 'ready', desiredPhase: null, runAfter: new Date(NOW.getTime() + 1000) }, steps, NOW)).toEqual([]);
    expect(decideRun({ status: 'ready', desiredPhase: null, runAfter: new Date(NOW.getTime() - 1) }, steps, NOW)).toEqual([
      { kind: 'start-run' },
      { kind: 'start-step', step: steps[0]!.id },
      { kind: 'start-step', step: steps[1]!.id },
    ]);
  });

  it('waits for every step of a group before the next group', () => {
    const steps = [step(0, 'succeeded'), step(0, 'running', { position: 1 }), step(1, 'pending')];
    expect(decideRun(running, steps, NOW)).toEqual([]);
    steps[1]!.phase = 'succeeded';
    expect(decideRun(running, steps, NOW)).toEqual([{ kind: 'start-step', step: steps[2]!.id }]);
  });

  it('a failed step halts the run: later steps are skipped and the run fails naming it', () => {
    const steps = [step(0, 'failed', { stepId: 'rb.a', failureMessage: 'the script exited with code 1' }), step(1, 'pending'), step(2, 'pending')];
    expect(decideRun(running, steps, NOW)).toEqual([
      { kind: 'skip-step', step: steps[1]!.id, reason: 'not started: rb.a failed' },
      { kind: 'skip-step', step: steps[2]!.id, reason: 'not started: rb.a failed' },
      { kind: 'finish-run', status: 'failure', reason: 'rb.a: the script exited with code 1' },
    ]);
  });

  it('continueOnFailure lets the run go on, and it can still succeed', () => {
    const steps = [step(0, 'failed', { continueOnFailure: true }), step(1, 'pending')];
    expect(decideRun(running, steps, NOW)).toEqual([{ kind: 'start-step', step: steps[1]!.id }]);
    steps[1]!.phase = 'succeeded';
    expect(decideRun(running, steps, NOW)).toEqual([{ kind: 'finish-run', status: 'success', reason: null }]);
  });

  it('a paused step past its deadline fails, and the run with it', () => {
    const steps = [step(0, 'paused', { kind: 'approval', timeoutAt: new Date(NOW.getTime() - 1), stepId: 'rb.go' }), step(1, 'pending')];
    const actions = decideRun(running, steps, NOW);
    expect(actions[0]).toEqual({ kind: 'end-step', step: steps[0]!.id, phase: 'failed', reason: 'timed out waiting for approval' });
    expect(actions.at(-1)).toEqual({ kind: 'finish-run', status: 'failure', reason: 'rb.go: timed out waiting for approval' });
    steps[0]!.timeoutAt = new Date(NOW.getTime() + 1);
    expect(decideRun(running, steps, NOW)).toEqual([]);
  });

  it('a stop request stops what runs, ends what waits, skips what is pending, and ends killed only when nothing runs', () => {
    const steps = [step(0, 'running'), step(0, 'paused', { kind: 'input', position: 1 }), step(1, 'pending')];
    const stopping = { ...running, desiredPhase: 'stopped' as const };
    expect(decideRun(stopping, steps, NOW)).toEqual([
      { kind: 'stop-step', step: steps[0]!.id },
      { kind: 'end-step', step: steps[1]!.id, phase: 'killed', reason: 'the run was stopped while it waited for input' },
      { kind: 'skip-step', step: steps[2]!.id, reason: 'not started: the run was stopped' },
    ]);
    steps[0]!.phase = 'killed';
    steps[1]!.phase = 'killed';
    steps[2]!.phase = 'skipped';
    expect(decideRun(stopping, steps, NOW)).toEqual([{ kind: 'finish-run', status: 'killed', reason: null }]);
  });

  it('does nothing for runs that are not ready or running', () => {
    for (const status of ['pending-review', 'success', 'cancelled'] as const)
      expect(decideRun({ status, desiredPhase: null, runAfter: null }, [step(0, 'pending')], NOW)).toEqual([]);
  });
});

describe('run lifecycle', () => {
  it('allows what the design says and nothing else', () => {
    expect(canTransitionRun('pending-review', 'approved')).toBe(true);
    expect(canTransitionRun('ready', 'cancelled')).toBe(true);
    expect(canTransitionRun('running', 'cancelled')).toBe(false);
    expect(() => assertRunTransition('success', 'running')).toThrow(/illegal run transition/);
    expect(() => assertStepTransition('succeeded', 'running')).toThrow(/illegal run step transition/);
    assertStepTransition('paused', 'succeeded');
  });
});

describe('runReviewPolicy', () => {
  const policies = {
    'web-prod': { channel: 'CWEB', autoRun: false, groups: [{ name: 'sre', users: ['UA', 'UB'], approvals: 1 }] },
    db: { channel: 'CDB', autoRun: false, groups: [{ name: 'dba', users: ['UC'], approvals: 1 }], expiresAfter: { ms: 60_000, text: '1m' } },
  };
  const policyOf = (t: string) => policies[t as keyof typeof policies] ?? null;

  it('is null when no target is reviewed', () => {
    expect(runReviewPolicy(['sandbox'], policyOf)).toBeNull();
  });

  it("needs every group of every reviewed target, named by target, in the first target's channel", () => {
    const policy = runReviewPolicy(['web-prod', 'sandbox', 'db'], policyOf)!;
    expect(policy.channel).toBe('CDB');
    expect(policy.groups.map((g) => g.name)).toEqual(['db/dba', 'web-prod/sre']);
    expect(policy.expiresAfter).toEqual({ ms: 60_000, text: '1m' });
    const at = new Date();
    expect(isApproved(policy, 'UX', [{ userId: 'UA', verdict: 'approve', reason: null, at }])).toBe(false);
    expect(
      isApproved(policy, 'UX', [
        { userId: 'UA', verdict: 'approve', reason: null, at },
        { userId: 'UC', verdict: 'approve', reason: null, at },
      ]),
    ).toBe(true);
    // The creator's own approval never counts.
    expect(
      isApproved(policy, 'UC', [
        { userId: 'UA', verdict: 'approve', reason: null, at },
        { userId: 'UC', verdict: 'approve', reason: null, at },
      ]),
    ).toBe(false);
  });
});
