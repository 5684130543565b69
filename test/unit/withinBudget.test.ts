/**
 * withinBudget: a command's answer goes in the ack when it is ready within the budget, and the
 * budget's timer goes with it, so nothing keeps the answer (a task row) reachable afterwards.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { withinBudget } from '../../src/slack/answerWithin.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('withinBudget', () => {
  it('answers the outcome of work that settles in time, and leaves no timer behind', async () => {
    vi.useFakeTimers();
    const answer = withinBudget(Promise.resolve({ id: 7 }), 2000);
    await expect(answer).resolves.toEqual({ ok: true, value: { id: 7 } });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('answers a failure as settled, not thrown', async () => {
    vi.useFakeTimers();
    const error = new Error('database down');
    await expect(withinBudget(Promise.reject(error), 2000)).resolves.toEqual({ ok: false, error });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('answers late when the work outlasts the budget', async () => {
    vi.useFakeTimers();
    let finish: (value: string) => void = () => {};
    const work = new Promise<string>((resolve) => {
      finish = resolve;
    });
    const answer = withinBudget(work, 2000);
    await vi.advanceTimersByTimeAsync(2000);
    await expect(answer).resolves.toBe('late');
    finish('done');
  });
});
