// Review of issue 10, L4: when Slack lookups fail, the last known members of a user group or a
// channel counted for ever, so someone removed during a long outage kept reviewing and reading.
// The last known answer now has a maximum age (15 minutes by default), after which nothing is
// known and nobody counts (fail closed) until Slack answers again. Through a real WebClient
// against the fake Slack, with a clock the test moves.
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReviewPolicy } from '../../src/domain/review.js';
import { ChannelMembers, webApiChannelMembers } from '../../src/service/channelMembers.js';
import { DEFAULT_MAX_STALE_MS, LookupCache, lookupCacheOptions } from '../../src/service/lookupCache.js';
import { Reviewers, webApiUsergroups } from '../../src/service/reviewers.js';
import { startFakeSlack, type FakeSlack } from '../support/fakeSlack.js';

const MINUTE = 60_000;

describe('last known Slack answers expire (fail closed)', () => {
  let fake: FakeSlack;
  let client: WebClient;
  beforeAll(async () => {
    fake = await startFakeSlack({ token: 'xoxb-test' });
    client = new WebClient('xoxb-test', { slackApiUrl: fake.url, retryConfig: { retries: 0 } });
  });
  afterAll(async () => {
    await fake.close();
  });

  it("counts a user group's last known members while Slack fails for less than 15 minutes, then only its listed users", async () => {
    expect(DEFAULT_MAX_STALE_MS).toBe(15 * MINUTE);
    let now = 1_000_000;
    const warnings: string[] = [];
    fake.setUsergroup('S0SRE', ['UBOB']);
    const reviewers = new Reviewers(webApiUsergroups(client), {
      ttlMs: MINUTE,
      retryMs: 5_000,
      now: () => now,
      log: { warn: (_, message) => void warnings.push(message) },
    });
    const policy: ReviewPolicy = { channel: 'CREVIEW', autoRun: false, groups: [{ name: 'sre', users: ['UALICE'], usergroup: 'S0SRE', approvals: 1 }] };
    expect((await reviewers.resolve(policy)).policy.groups[0]?.users).toEqual(['UALICE', 'UBOB']);

    // Slack fails from here on; UBOB was removed from the group meanwhile.
    fake.failNext('usergroups.users.list', { error: 'internal_error' }, 1000);
    now += 10 * MINUTE;
    expect((await reviewers.resolve(policy)).policy.groups[0]?.users).toEqual(['UALICE', 'UBOB']);
    expect(warnings.at(-1)).toMatch(/using the 1 members known before/);
    now += 6 * MINUTE; // 16 minutes after Slack last answered
    const stale = await reviewers.resolve(policy);
    expect(stale).toMatchObject({ unknown: ['S0SRE'] });
    expect(stale.policy.groups[0]?.users).toEqual(['UALICE']);
    expect(warnings.at(-1)).toMatch(/count only their listed users until Slack answers/);
    // Between retries too, not only when a lookup fails again.
    expect((await reviewers.resolve(policy)).policy.groups[0]?.users).toEqual(['UALICE']);
  });

  it("stops counting a channel's last known members once they are older than 15 minutes", async () => {
    let now = 5_000_000;
    fake.setChannelMembers('CTEAM', ['UMEMBER']);
    const members = new ChannelMembers(webApiChannelMembers(client), { ttlMs: MINUTE, retryMs: 5_000, now: () => now });
    expect(await members.isMember('CTEAM', 'UMEMBER')).toBe(true);
    fake.failNext('conversations.members', { error: 'internal_error' }, 1000);
    now += 14 * MINUTE;
    expect(await members.isMember('CTEAM', 'UMEMBER')).toBe(true);
    now += 2 * MINUTE;
    expect(await members.isMember('CTEAM', 'UMEMBER')).toBe(false);
  });

  it('takes the maximum age from its options, never below the TTL, and trusts a fresh answer again at once', async () => {
    let now = 0;
    let failing = false;
    let value = 'first';
    const cache = new LookupCache(
      async () => {
        if (failing) throw new Error('down');
        return value;
      },
      lookupCacheOptions({ ttlMs: 1000, retryMs: 100, maxStaleMs: 3000, now: () => now }, 1000),
    );
    expect(await cache.get('k')).toBe('first');
    failing = true;
    now = 2500;
    expect(await cache.get('k')).toBe('first');
    now = 3001;
    expect(await cache.get('k')).toBeNull();
    failing = false;
    value = 'second';
    now = 3200;
    expect(await cache.get('k')).toBe('second');
    expect(lookupCacheOptions({ ttlMs: 60 * MINUTE, maxStaleMs: MINUTE }, 1000).maxStaleMs).toBe(60 * MINUTE);
  });
});
