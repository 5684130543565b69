/**
 * Fire times on node-cron: our wrapper must agree with node-cron's public API (what its own
 * timers fire), including the TimeMatcher we reach through a task, which is not public: this file
 * fails first if a node-cron upgrade moves it.
 */
import { createTask } from 'node-cron';
import { describe, expect, it } from 'vitest';
import { cronProblems, dueFireTimes, firesAt, fireTimesBetween, nextFireTimes } from '../../src/domain/cron.js';
import { checkCron } from '../../src/domain/schedule.js';

describe('fire times from node-cron', () => {
  it('agrees with node-cron’s own getNextRuns and match for every kind of expression', () => {
    const crons: Array<[string, string]> = [
      ['*/7 * * * * *', 'UTC'],
      ['0 9 * * 1-5', 'Europe/Paris'],
      ['30 2 * * *', 'America/New_York'],
      ['0 0 L * *', 'Asia/Kolkata'],
      ['@hourly', 'UTC'],
      ['15 10 * * 5L', 'Australia/Lord_Howe'],
    ];
    for (const [cron, tz] of crons) {
      const task = createTask(cron, () => undefined, { timezone: tz });
      try {
        const now = new Date();
        const ours = nextFireTimes(cron, tz, now, 5);
        const theirs = task.getNextRuns(5);
        // getNextRuns counts from its own `new Date()`, a moment later: equal unless a fire time fell in between.
        expect(ours.slice(ours[0]!.getTime() < theirs[0]!.getTime() ? 1 : 0, 4)).toEqual(theirs.slice(0, ours[0]!.getTime() < theirs[0]!.getTime() ? 3 : 4));
        for (const time of ours) {
          expect(task.match(time)).toBe(true);
          expect(firesAt(cron, tz, time)).toBe(true);
          expect(firesAt(cron, tz, new Date(time.getTime() + 1000))).toBe(task.match(new Date(time.getTime() + 1000)));
        }
      } finally {
        void task.destroy();
      }
    }
  });

  it('leaves nothing in node-cron’s task registry', async () => {
    const { getTasks } = await import('node-cron');
    const before = getTasks().size;
    nextFireTimes('1 2 3 4 *', 'Europe/Berlin', new Date(), 1);
    dueFireTimes('2 3 4 5 *', 'Europe/Berlin', new Date(0), new Date());
    expect(getTasks().size).toBe(before);
  });

  it('follows daylight saving: 09:00 in Paris is 08:00 UTC in winter and 07:00 in summer; 02:30 that does not exist is skipped', () => {
    expect(nextFireTimes('0 9 * * *', 'Europe/Paris', new Date('2026-03-27T12:00:00Z'), 3).map((d) => d.toISOString())).toEqual([
      '2026-03-28T08:00:00.000Z',
      '2026-03-29T07:00:00.000Z',
      '2026-03-30T07:00:00.000Z',
    ]);
    // 2026-03-29 has no 02:30 in Paris.
    expect(nextFireTimes('30 2 * * *', 'Europe/Paris', new Date('2026-03-28T12:00:00Z'), 2).map((d) => d.toISOString())).toEqual([
      '2026-03-30T00:30:00.000Z',
      '2026-03-31T00:30:00.000Z',
    ]);
  });

  it('finds the latest due fire time, counts the ones before it, and stays quick after a long downtime', () => {
    expect(dueFireTimes('*/10 * * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:35Z'))).toEqual({
      latest: new Date('2026-01-01T00:00:30Z'),
      earlier: 2,
      moreEarlier: false,
    });
    expect(fireTimesBetween('*/10 * * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:30Z'))).toEqual({ count: 2, more: false });
    expect(fireTimesBetween('* * * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-01-02T00:00:00Z'), 100)).toEqual({ count: 100, more: true });
    const started = Date.now();
    expect(dueFireTimes('* * * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-02-01T00:00:00.500Z')).latest).toEqual(
      new Date('2026-02-01T00:00:00Z'),
    );
    expect(dueFireTimes('0 0 29 2 *', 'UTC', new Date('2025-01-01T00:00:00Z'), new Date('2029-03-01T00:00:00Z')).latest).toEqual(
      new Date('2028-02-29T00:00:00Z'),
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('names the field of each error (node-cron’s validateDetailed), and refuses steps larger than their field', () => {
    expect(cronProblems('61 * * * *')).toEqual(['the minute field has `61` (0-59)']);
    expect(cronProblems('* 24 * * 8')).toEqual(['the hour field has `24` (0-23)', 'the weekday field has `8` (0-7 or sun-sat (also 5L, 1#2))']);
    expect(cronProblems('*/70 * * * *')).toEqual(['the minute field steps by 70, more than its range (0-59): cron cannot say "every 70"']);
    expect(cronProblems('0 0 30 2 *')).toEqual(['the day of month `30` never comes in the months given']);
    expect(cronProblems('0 9 * * mon-fri')).toEqual([]);
    const refused = checkCron('0 25 * * *', 'UTC');
    expect(refused).toMatchObject({
      ok: false,
      error: expect.stringMatching(/`0 25 \* \* \*` is not a valid cron: the hour field has `25` \(0-23\)\. Try e\.g\./),
    });
  });
});

describe('day of month or weekday, as classic cron has it', () => {
  it('runs an expression restricting both day fields as two node-cron variants', async () => {
    const { cronVariants } = await import('../../src/domain/cron.js');
    expect(cronVariants('0 9 1 * mon')).toEqual(['0 9 1 * *', '0 9 * * mon']);
    expect(cronVariants('*/5 0 9 1,15 * 1-5')).toEqual(['*/5 0 9 1,15 * *', '*/5 0 9 * * 1-5']);
    expect(cronVariants('0 9 * * mon')).toEqual(['0 9 * * mon']);
    expect(cronVariants('0 9 1 * *')).toEqual(['0 9 1 * *']);
    expect(cronVariants('@daily')).toEqual(['@daily']);
  });

  it('fires on the 1st and on every Monday, once on a 1st that is a Monday', () => {
    // Wednesday 25 November 2026: next come Monday the 30th, Tuesday 1 December, Monday the 7th…
    const times = nextFireTimes('0 9 1 * mon', 'UTC', new Date('2026-11-25T12:00:00Z'), 4).map((t) => t.toISOString());
    expect(times).toEqual(['2026-11-30T09:00:00.000Z', '2026-12-01T09:00:00.000Z', '2026-12-07T09:00:00.000Z', '2026-12-14T09:00:00.000Z']);
    // 1 June 2026 is a Monday: one fire time, not two.
    const june = nextFireTimes('0 9 1 * mon', 'UTC', new Date('2026-05-31T12:00:00Z'), 2).map((t) => t.toISOString());
    expect(june).toEqual(['2026-06-01T09:00:00.000Z', '2026-06-08T09:00:00.000Z']);
    expect(firesAt('0 9 1 * mon', 'UTC', new Date('2026-12-01T09:00:00Z'))).toBe(true);
    expect(firesAt('0 9 1 * mon', 'UTC', new Date('2026-12-02T09:00:00Z'))).toBe(false);
    expect(dueFireTimes('0 9 1 * mon', 'UTC', new Date('2026-11-29T00:00:00Z'), new Date('2026-12-01T10:00:00Z')).latest?.toISOString()).toBe(
      '2026-12-01T09:00:00.000Z',
    );
    expect(fireTimesBetween('0 9 1 * mon', 'UTC', new Date('2026-11-29T00:00:00Z'), new Date('2026-12-08T00:00:00Z')).count).toBe(3);
  });
});
