/**
 * Who may see a task: the pure rule, the order in which Access gathers its facts (an author
 * costs no Slack call), and channel members read from Slack's conversations.members through a
 * real WebClient against the fake Slack (pagination, cache, failures).
 */
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config, Target } from '../../src/config/config.js';
import { maySee, maySeeEvent, noFacts, seeReason, type AccessFacts, type AccessSubject } from '../../src/domain/access.js';
import type { ReviewPolicy } from '../../src/domain/review.js';
import { Access, MAX_CHANNEL_LOOKUPS_PER_VIEWER } from '../../src/service/access.js';
import { ChannelMembers, webApiChannelMembers } from '../../src/service/channelMembers.js';
import { Reviewers } from '../../src/service/reviewers.js';
import { startFakeSlack, type FakeSlack } from '../support/fakeSlack.js';

const subject: AccessSubject = { author: 'UAUTHOR', targets: ['web'], channelId: 'CTEAM' };
const facts = (extra: Partial<AccessFacts> = {}): AccessFacts => ({ ...noFacts('UME'), ...extra });

describe('maySee (pure)', () => {
  it('lets in the author, admins, reviewers and viewers of a target touched, and card channel members; nobody else', () => {
    expect(seeReason(subject, facts({ userId: 'UAUTHOR' }))).toBe('author');
    expect(seeReason(subject, facts({ admin: true }))).toBe('admin');
    expect(seeReason(subject, facts({ targets: new Map([['web', { reviewer: true, viewer: false }]]) }))).toBe('reviewer');
    expect(seeReason(subject, facts({ targets: new Map([['web', { reviewer: false, viewer: true }]]) }))).toBe('viewer');
    expect(seeReason(subject, facts({ channelMember: true }))).toBe('channel');
    expect(maySee(subject, facts())).toBe(false);
  });

  it('counts a role on any target a run touches, and only on those', () => {
    const run: AccessSubject = { author: 'UAUTHOR', targets: ['db', 'web'], channelId: null };
    expect(maySee(run, facts({ targets: new Map([['web', { reviewer: true, viewer: false }]]) }))).toBe(true);
    expect(maySee(run, facts({ targets: new Map([['other', { reviewer: true, viewer: true }]]) }))).toBe(false);
  });

  it('never lets channel membership count for a task without a card channel', () => {
    expect(maySee({ ...subject, channelId: null }, facts({ channelMember: true }))).toBe(false);
  });

  it('shows events about no task to admins only', () => {
    expect(maySeeEvent(null, facts())).toBe(false);
    expect(maySeeEvent(null, facts({ targets: new Map([['web', { reviewer: true, viewer: true }]]), channelMember: true }))).toBe(false);
    expect(maySeeEvent(null, facts({ admin: true }))).toBe(true);
    expect(maySeeEvent(subject, facts({ userId: 'UAUTHOR' }))).toBe(true);
  });
});

describe('Access (facts from config, user groups and channels)', () => {
  const policy: ReviewPolicy = { channel: 'CREVIEW', autoRun: false, groups: [{ name: 'sre', users: ['UREV'], approvals: 1, usergroup: 'SSRE' }] };
  const target = (name: string, extra: Partial<Target>): Target => ({ name, review: null, viewers: null, ...extra }) as Target;
  const config = {
    admins: { users: ['UADMIN'], usergroup: 'SADMINS' },
    targets: new Map([
      ['web', target('web', { review: policy, viewers: { users: [], usergroup: 'SVIEW' } })],
      ['db', target('db', {})],
    ]),
  } as unknown as Config;

  function recording(groups: Record<string, string[]>, channels: Record<string, string[]>) {
    const calls: string[] = [];
    const reviewers = new Reviewers({
      async members(id) {
        calls.push(`usergroup ${id}`);
        return groups[id] ?? [];
      },
    });
    const channelMembers = new ChannelMembers({
      async members(id) {
        calls.push(`channel ${id}`);
        if (!channels[id]) throw new Error('channel_not_found');
        return { users: channels[id]!, complete: true };
      },
    });
    return { calls, access: new Access(config, reviewers, channelMembers) };
  }

  it('asks nothing of Slack for the author, and no channel for a reviewer', async () => {
    const { calls, access } = recording({ SSRE: ['UGROUPREV'] }, { CTEAM: ['UMEMBER'] });
    expect(await access.maySee('UAUTHOR', subject)).toBe(true);
    expect(calls).toEqual([]);
    expect(await access.maySee('UGROUPREV', subject)).toBe(true);
    expect(calls.some((call) => call.startsWith('channel'))).toBe(false);
  });

  it('resolves viewers, admins and review groups through their user groups, and channels through their members', async () => {
    const { access } = recording({ SSRE: ['UGROUPREV'], SVIEW: ['UGROUPVIEW'], SADMINS: ['UGROUPADMIN'] }, { CTEAM: ['UMEMBER'] });
    for (const user of ['UREV', 'UGROUPREV', 'UGROUPVIEW', 'UADMIN', 'UGROUPADMIN', 'UMEMBER']) expect(await access.maySee(user, subject), user).toBe(true);
    expect(await access.maySee('UMALLORY', subject)).toBe(false);
    // A target's roles count only for its own tasks.
    expect(await access.maySee('UGROUPVIEW', { author: 'UAUTHOR', targets: ['db'], channelId: null })).toBe(false);
    expect(await access.maySee('UGROUPADMIN', { author: 'UAUTHOR', targets: ['db'], channelId: null })).toBe(true);
    // Slack cannot say who is in the channel: nobody counts as a member.
    expect(await access.maySee('UMEMBER', { ...subject, channelId: 'CGONE' })).toBe(false);
  });

  it('asks Slack about at most MAX_CHANNEL_LOOKUPS_PER_VIEWER channels in one request, then grants nothing through new ones', async () => {
    const channels = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`C${i}`, ['UMEMBER']]));
    const { calls, access } = recording({}, channels);
    const viewer = access.viewer('UMEMBER');
    let seen = 0;
    for (let i = 0; i < 1500; i++) if (await viewer.maySee({ author: `U${i}`, targets: ['db'], channelId: `C${i}` })) seen++;
    expect(calls.filter((call) => call.startsWith('channel'))).toHaveLength(MAX_CHANNEL_LOOKUPS_PER_VIEWER);
    expect(seen).toBe(MAX_CHANNEL_LOOKUPS_PER_VIEWER);
  });

  it('keeps one user’s facts for a request: a thousand tasks, one lookup per channel', async () => {
    const { calls, access } = recording({}, { CTEAM: ['UMEMBER'], COTHER: [] });
    const viewer = access.viewer('UMEMBER');
    for (let i = 0; i < 1000; i++) await viewer.maySee({ author: `U${i}`, targets: ['db'], channelId: i % 2 ? 'CTEAM' : 'COTHER' });
    expect(calls.filter((call) => call.startsWith('channel')).sort()).toEqual(['channel COTHER', 'channel CTEAM']);
  });
});

describe('ChannelMembers through conversations.members', () => {
  let fake: FakeSlack;
  let client: WebClient;
  beforeAll(async () => {
    fake = await startFakeSlack({ token: 'xoxb-test' });
    client = new WebClient('xoxb-test', { slackApiUrl: fake.url, retryConfig: { retries: 0 } });
  });
  afterAll(async () => {
    await fake.close();
  });

  it('reads every page, keeps the answer for its TTL, and falls back to what it knew when Slack fails', async () => {
    const many = Array.from({ length: 450 }, (_, i) => `U${String(i).padStart(4, '0')}`);
    fake.setChannelMembers('CBIG', many);
    let now = 1_000_000;
    const members = new ChannelMembers(webApiChannelMembers(client), { ttlMs: 60_000, retryMs: 5_000, now: () => now });
    expect(await members.isMember('CBIG', 'U0449')).toBe(true);
    expect(await members.isMember('CBIG', 'U0000')).toBe(true);
    expect(await members.isMember('CBIG', 'UNOBODY')).toBe(false);
    // 450 members at 200 a page: three calls, then the cache.
    expect(fake.callsTo('conversations.members')).toHaveLength(3);
    expect(fake.callsTo('conversations.members')[1]?.args.cursor).toBeTruthy();

    now += 61_000;
    fake.failNext('conversations.members', { error: 'internal_error' });
    expect(await members.isMember('CBIG', 'U0449')).toBe(true); // the last known members
    fake.setChannelMembers('CBIG', ['UNEW']);
    now += 6_000; // past the retry delay
    expect(await members.isMember('CBIG', 'UNEW')).toBe(true);
    expect(await members.isMember('CBIG', 'U0449')).toBe(false);
  });

  it('says nobody is a member of a channel Slack does not know, or with no Slack at all, and cuts huge channels', async () => {
    expect(await new ChannelMembers(webApiChannelMembers(client)).isMember('CNONE', 'U1')).toBe(false);
    expect(await new ChannelMembers(null).isMember('CBIG', 'UNEW')).toBe(false);
    fake.setChannelMembers(
      'CHUGE',
      Array.from({ length: 700 }, (_, i) => `U${i}`),
    );
    const cut = await webApiChannelMembers(client, 2).members('CHUGE');
    expect(cut).toMatchObject({ complete: false });
    expect(cut.users).toHaveLength(400);
  });
});
