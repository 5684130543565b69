import { describe, expect, it } from 'vitest';
import type { HostAddress } from '../../src/domain/plan.js';
import { buildRolloutPlan, parseBatch, type Rollout } from '../../src/domain/rollout.js';

function hosts(count: number): HostAddress[] {
  return Array.from({ length: count }, (_, i) => ({ host: `web-${i + 1}`, port: 22, user: 'deploy' }));
}

function rollout(batch: number | string): Rollout {
  const parsed = parseBatch(batch);
  if (parsed === null) throw new Error(`expected ${JSON.stringify(batch)} to be a valid batch`);
  return { batch: parsed, stopOnFailure: true };
}

function sizes(batch: number | string, hostCount: number): number[] {
  return buildRolloutPlan(hosts(hostCount), rollout(batch)).map((group) => group.length);
}

describe('parseBatch', () => {
  it('reads host counts and percentages', () => {
    expect(parseBatch(5)).toBe(5);
    expect(parseBatch(1)).toBe(1);
    expect(parseBatch('5')).toBe(5);
    expect(parseBatch('25%')).toEqual({ percent: 25 });
    expect(parseBatch(' 100% ')).toEqual({ percent: 100 });
    expect(parseBatch('12.5%')).toEqual({ percent: 12.5 });
  });

  it.each([0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY, '0', '-1', '0%', '150%', '100.1%', 'abc', '', '%', '2.5', '25%%', '-5%'])(
    'rejects %j',
    (value) => {
      expect(parseBatch(value)).toBeNull();
    },
  );
});

describe('buildRolloutPlan', () => {
  it('splits 40 hosts into 8 groups of 5', () => {
    expect(sizes(5, 40)).toEqual([5, 5, 5, 5, 5, 5, 5, 5]);
  });

  it('splits 40 hosts at 25% into 4 groups of 10', () => {
    expect(sizes('25%', 40)).toEqual([10, 10, 10, 10]);
  });

  it('rounds a percentage up: 30% of 10 is groups of 3, 3, 3, 1', () => {
    expect(sizes('30%', 10)).toEqual([3, 3, 3, 1]);
  });

  it('does not let floating point push an exact share up a host', () => {
    // 0.3 * 10, 0.7 * 10 and 0.1 * 30 are all a hair above the integer in binary.
    expect(sizes('70%', 10)).toEqual([7, 3]);
    expect(sizes('10%', 30)).toEqual(Array(10).fill(3));
    expect(sizes('12.5%', 8)).toEqual(Array(8).fill(1));
  });

  it('puts every host in one group at 100%', () => {
    expect(sizes('100%', 7)).toEqual([7]);
  });

  it('runs at least one host per group when the share rounds to nothing', () => {
    expect(sizes('1%', 5)).toEqual([1, 1, 1, 1, 1]);
  });

  it('uses one group when the batch is larger than the host count', () => {
    expect(sizes(50, 3)).toEqual([3]);
  });

  it('keeps config order across groups', () => {
    const list = hosts(7);
    const plan = buildRolloutPlan(list, rollout(3));
    expect(plan.map((group) => group.map((h) => h.host))).toEqual([['web-1', 'web-2', 'web-3'], ['web-4', 'web-5', 'web-6'], ['web-7']]);
    expect(plan.flat()).toEqual(list);
  });

  it('puts every host in one group without a rollout', () => {
    const list = hosts(4);
    expect(buildRolloutPlan(list, null)).toEqual([list]);
  });

  it('returns no groups for no hosts', () => {
    expect(buildRolloutPlan([], null)).toEqual([]);
    expect(buildRolloutPlan([], rollout('25%'))).toEqual([]);
    expect(buildRolloutPlan([], rollout(5))).toEqual([]);
  });

  it('does not share arrays with the caller', () => {
    const list = hosts(2);
    const plan = buildRolloutPlan(list, null);
    plan[0]?.pop();
    expect(list).toHaveLength(2);
  });
});
