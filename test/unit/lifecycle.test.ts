import { describe, expect, it } from 'vitest';
import { assertTransition, canTransition, isTerminal, TASK_STATUSES, type TaskStatus } from '../../src/domain/lifecycle.js';

describe('task lifecycle', () => {
  const allowed: Array<[TaskStatus, TaskStatus]> = [
    ['created', 'pending-review'],
    ['created', 'ready'],
    ['pending-review', 'approved'],
    ['pending-review', 'rejected'],
    ['approved', 'ready'],
    ['ready', 'running'],
    ['ready', 'killed'],
    ['running', 'success'],
    ['running', 'failure'],
    ['running', 'killed'],
    ['pending-review', 'cancelled'],
    ['approved', 'cancelled'],
    ['ready', 'cancelled'],
    // At Run, approvals that no longer satisfy the target's current review send it back.
    ['approved', 'pending-review'],
  ];

  it('allows exactly the documented transitions', () => {
    for (const from of TASK_STATUSES) {
      for (const to of TASK_STATUSES) {
        const expected = allowed.some(([a, b]) => a === from && b === to);
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(expected);
      }
    }
  });

  it('never lets a rejected task run, or a reviewed task skip approval', () => {
    expect(canTransition('rejected', 'ready')).toBe(false);
    expect(canTransition('rejected', 'running')).toBe(false);
    expect(canTransition('pending-review', 'ready')).toBe(false);
    expect(canTransition('pending-review', 'running')).toBe(false);
    expect(canTransition('approved', 'running')).toBe(false);
  });

  it('throws on an illegal transition', () => {
    expect(() => assertTransition('success', 'running')).toThrow(/illegal task transition success -> running/);
    expect(() => assertTransition('ready', 'running')).not.toThrow();
  });

  it('knows the final states', () => {
    expect(TASK_STATUSES.filter(isTerminal)).toEqual(['rejected', 'success', 'failure', 'killed', 'cancelled']);
  });
});
