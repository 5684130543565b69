// A user's DM channel with the app never changes, and conversations.open is Tier 3 (about 50 a
// minute): webApiLookups asks for each once, however many redraws ask at once, and asks again
// only after a failed ask. Through a real WebClient against the fake Slack.
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackRateLimited } from '../../src/slack/gateway.js';
import { webApiLookups } from '../../src/slack/messageSync.js';
import { startFakeSlack, type FakeSlack } from '../support/fakeSlack.js';

describe('DM channels asked for once', () => {
  let fake: FakeSlack;
  let client: WebClient;
  beforeAll(async () => {
    fake = await startFakeSlack({ token: 'xoxb-test' });
    client = new WebClient('xoxb-test', { slackApiUrl: fake.url, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
  });
  afterAll(async () => {
    await fake.close();
  });
  const opens = (user: string) => fake.callsTo('conversations.open').filter((call) => call.args.users === user).length;

  it('answers concurrent and later asks for one user from one conversations.open', async () => {
    const lookups = webApiLookups(client);
    expect(lookups.knownDm('UONE')).toBeUndefined();
    const channels = await Promise.all([lookups.openDm('UONE'), lookups.openDm('UONE'), lookups.openDm('UTWO')]);
    // Known without asking once answered.
    expect(lookups.knownDm('UONE')).toBe('DONE');
    expect(channels).toEqual(['DONE', 'DONE', 'DTWO']);
    expect(await lookups.openDm('UONE')).toBe('DONE');
    expect(opens('UONE')).toBe(1);
    expect(opens('UTWO')).toBe(1);
  });

  it('asks again after a failed ask, and passes the failure on', async () => {
    const lookups = webApiLookups(client);
    fake.failNext('conversations.open', { status: 429, retryAfter: 1 });
    await expect(lookups.openDm('UTHREE')).rejects.toBeInstanceOf(SlackRateLimited);
    expect(await lookups.openDm('UTHREE')).toBe('DTHREE');
    expect(await lookups.openDm('UTHREE')).toBe('DTHREE');
    expect(opens('UTHREE')).toBe(2);
  });
});
