/** The name directory's rules, with a scripted name source and clock: cache, bounded waits, failures, pacing. */
import { describe, expect, it } from 'vitest';
import { cleanName, PeopleDirectory, webApiUserNames, type UserNameSource } from '../../src/service/people.js';

function source(names: Record<string, string | null>, options: { delayMs?: number; failing?: Set<string> } = {}) {
  const calls: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const lookup: UserNameSource = {
    async displayName(id) {
      calls.push(id);
      running++;
      maxRunning = Math.max(maxRunning, running);
      try {
        if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
        if (options.failing?.has(id)) throw new Error('slack is down');
        return names[id] ?? null;
      } finally {
        running--;
      }
    },
  };
  return { lookup, calls, maxRunning: () => maxRunning };
}

describe('PeopleDirectory', () => {
  it('answers names it learns within the wait, ids for the rest, and asks once while cached', async () => {
    let now = 0;
    const s = source({ UALICE: 'Alice', UBOB: 'Bob' });
    const people = new PeopleDirectory(s.lookup, { now: () => now, ttlMs: 1000, retryMs: 100 });
    const names = await people.names(['UALICE', 'UBOB', 'UNOBODY', 'not-an-id', 'UALICE']);
    expect([...names]).toEqual([
      ['UALICE', 'Alice'],
      ['UBOB', 'Bob'],
      ['UNOBODY', 'UNOBODY'],
    ]);
    await people.names(['UALICE', 'UBOB']);
    expect(s.calls).toEqual(['UALICE', 'UBOB', 'UNOBODY']);
    // Asked again once the answer is older than ttlMs (a user Slack did not know, too).
    now = 150;
    await people.names(['UALICE', 'UNOBODY']);
    expect(s.calls).toHaveLength(3);
    now = 1200;
    await people.names(['UALICE', 'UNOBODY']);
    expect(s.calls.filter((id) => id === 'UALICE')).toHaveLength(2);
    expect(s.calls.filter((id) => id === 'UNOBODY')).toHaveLength(2);
  });

  it('never waits longer than lookupTimeoutMs, and shows a stale name at once while it looks again', async () => {
    let now = 0;
    // Slack takes 1.5 s; the caller waits 20 ms (asserted loosely: the machine may be busy).
    const s = source({ UALICE: 'Alice' }, { delayMs: 1500 });
    const people = new PeopleDirectory(s.lookup, { now: () => now, lookupTimeoutMs: 20, ttlMs: 1000 });
    const started = Date.now();
    expect((await people.names(['UALICE'])).get('UALICE')).toBe('UALICE');
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((resolve) => setTimeout(resolve, 1700));
    expect((await people.names(['UALICE'])).get('UALICE')).toBe('Alice');
    now = 5000; // stale: shown at once, refreshed behind
    const again = Date.now();
    expect((await people.names(['UALICE'])).get('UALICE')).toBe('Alice');
    expect(Date.now() - again).toBeLessThan(1000);
    expect(s.calls).toHaveLength(2);
  });

  it('keeps the last name known when Slack fails, and the id when it never knew one', async () => {
    let now = 0;
    const failing = new Set<string>();
    const s = source({ UALICE: 'Alice', UBOB: 'Bob' }, { failing });
    const people = new PeopleDirectory(s.lookup, { now: () => now, ttlMs: 1000, retryMs: 100 });
    await people.names(['UALICE']);
    failing.add('UALICE').add('UBOB');
    now = 2000;
    await people.names(['UALICE', 'UBOB']);
    const names = await people.names(['UALICE', 'UBOB']);
    expect(names.get('UALICE')).toBe('Alice');
    expect(names.get('UBOB')).toBe('UBOB');
    // Not asked again until retryMs has passed.
    const calls = s.calls.length;
    now = 2050;
    await people.names(['UALICE', 'UBOB']);
    expect(s.calls.length).toBe(calls);
    failing.clear();
    now = 2200;
    expect((await people.names(['UBOB'])).get('UBOB')).toBe('Bob');
  });

  it('runs at most `concurrency` lookups at once', async () => {
    const names = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`U${i}X`, `user ${i}`]));
    const s = source(names, { delayMs: 10 });
    const people = new PeopleDirectory(s.lookup, { concurrency: 3, lookupTimeoutMs: 5000 });
    const all = await people.names(Object.keys(names));
    expect(all.get('U29X')).toBe('user 29');
    expect(s.calls).toHaveLength(30);
    expect(s.maxRunning()).toBe(3);
  });

  it('without Slack, shows ids and asks nothing', async () => {
    const people = new PeopleDirectory(null);
    expect((await people.names(['UALICE'])).get('UALICE')).toBe('UALICE');
  });
});

describe('webApiUserNames', () => {
  const client = (answer: unknown) => ({ users: { info: async () => answer as never } });
  it('picks the display name, else the full name, else the handle; null for a user Slack does not know', async () => {
    expect(
      await webApiUserNames(
        client({ ok: true, user: { name: 'ada', real_name: 'Ada L', profile: { display_name: 'ada.l', real_name: 'Ada L' } } }),
      ).displayName('U1'),
    ).toBe('ada.l');
    expect(
      await webApiUserNames(client({ ok: true, user: { name: 'ada', real_name: 'Ada L', profile: { display_name: '', real_name: 'Ada L' } } })).displayName(
        'U1',
      ),
    ).toBe('Ada L');
    expect(await webApiUserNames(client({ ok: true, user: { name: 'ada', profile: { display_name: ' ' } } })).displayName('U1')).toBe('ada');
    expect(await webApiUserNames(client({ ok: false, error: 'user_not_found' })).displayName('U1')).toBeNull();
    await expect(webApiUserNames(client({ ok: false, error: 'ratelimited' })).displayName('U1')).rejects.toThrow(/ratelimited/);
  });
  it('cleans names for showing: one line, no control characters, bounded', () => {
    expect(cleanName('Ada\n\u0007Lovelace\u2028')).toBe('Ada Lovelace');
    expect(cleanName('x'.repeat(200))).toHaveLength(80);
  });
});
