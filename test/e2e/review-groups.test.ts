/**
 * Review groups beyond plain user lists (issue 5), end to end on real Postgres, the fake Slack
 * and a real sshd: Slack user groups resolved with usergroups.users.list (cached, with a
 * fallback when Slack fails), DMs to a group's members, expiring reviews, permalinks between
 * the card and the review request, several groups' progress, and resubmitting after a reject.
 */
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { ReviewExpiry } from '../../src/service/reviewExpiry.js';
import { Reviewers, webApiUsergroups } from '../../src/service/reviewers.js';
import { TaskService } from '../../src/service/taskService.js';
import { ACTION } from '../../src/slack/render/blocks.js';
import { claimDms, releaseDm } from '../../src/slack/taskMessages.js';
import { eventsForTask } from '../../src/store/events.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, BOB, BOT_TOKEN, blocksText, buttonIds, Harness, MALLORY, sleep, TASKS_CHANNEL } from '../support/harness.js';

const CAROL = 'UCAROL';
const ERIN = 'UERIN';
const FRANK = 'UFRANK';
const SRE_GROUP = 'S0SRE';
const UG_REVIEW = 'CUGREVIEW';
const EXPIRE_REVIEW = 'CEXPIRE';
const SOLO_REVIEW = 'CUGSOLO';

describe('review groups: Slack user groups, DMs, expiry, permalinks', () => {
  let h: Harness;
  /** The fake's conversations.open answers D + the user id without its first letter, as Slack gives one DM channel per user. */
  const dmChannel = (userId: string) => `D${userId.slice(1)}`;

  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) => {
        const host = `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`;
        const sshBlock = `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`;
        return [
          '  ug-prod:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${UG_REVIEW}`,
          '      groups:',
          `        - { name: sre, users: [${ALICE}], usergroup: ${SRE_GROUP}, approvals: 1, dm: true }`,
          `        - { name: dba, users: [${CAROL}], approvals: 1 }`,
          // Only a user group, which Slack does not know.
          '  ug-solo:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${SOLO_REVIEW}`,
          '      groups:',
          '        - { name: ghosts, usergroup: S0GHOST, approvals: 1 }',
          '  expiring:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${EXPIRE_REVIEW}`,
          '      expiresAfter: 1s',
          `      groups: [{ name: sre, users: [${ALICE}, ${BOB}], approvals: 1 }]`,
        ].join('\n');
      },
    });
    h.fake.setUsergroup(SRE_GROUP, [BOB, ERIN, AUTHOR]);
  });
  afterAll(async () => {
    await h.stop();
  });

  /** The review request of task `id` in `channel`, once it shows `contains`. */
  const requestIn = (channel: string, id: number, contains?: string | RegExp): Promise<FakeMessage> =>
    h.fake.waitFor(
      () => {
        const m = h.fake.messages(channel).find((msg) => !msg.thread_ts && blocksText(msg).includes(`*#${id}*`));
        if (!m) return undefined;
        const text = blocksText(m);
        const shows = contains === undefined || (typeof contains === 'string' ? text.includes(contains) : contains.test(text));
        return shows ? structuredClone(m) : undefined;
      },
      10_000,
      `review request of #${id} in ${channel}${contains ? ` showing ${String(contains)}` : ''}`,
    );

  const until = async (check: () => Promise<boolean>, label: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
      await sleep(25);
    }
  };

  const refusalsAfter = async (seen: number, count: number) => {
    await h.fake.waitFor(() => h.fake.responses.length >= seen + count || undefined, 5000, `${count} ephemeral answers`);
    return h.responsesSince(seen);
  };

  /** A TaskService of its own with a short user group cache, on the test's database and fake Slack. */
  const serviceWithTtl = (ttlMs: number) =>
    new TaskService(
      h.database.db,
      h.config,
      h.app.bus,
      new Reviewers(webApiUsergroups(new WebClient(BOT_TOKEN, { slackApiUrl: h.fake.url, retryConfig: { retries: 0 } })), { ttlMs, retryMs: 50 }),
    );

  it('lets user group members approve and refuses non-members, showing each group’s progress', async () => {
    const id = await h.createTask('run ug-prod -m "members of S0SRE review" uptime');
    const request = await requestIn(UG_REVIEW, id);
    const text = blocksText(request);
    expect(text).toContain(`*sre* (1 of <!subteam^${SRE_GROUP}>, <@${ALICE}>)`);
    expect(text).toContain(':white_circle: *sre* 0/1   :white_circle: *dba* 0/1');
    expect(buttonIds(request)).toEqual([ACTION.approve, ACTION.reject]);

    // The author is in the user group, and still may not review; MALLORY is in no group.
    const seen = h.fake.responses.length;
    await h.click(request, ACTION.approve, AUTHOR);
    await h.click(request, ACTION.approve, MALLORY);
    const refusals = await refusalsAfter(seen, 2);
    // Each click is answered when its own check is done: the answers may cross.
    expect(refusals.some((text) => /You wrote #\d+, so you cannot review it/.test(text))).toBe(true);
    // MALLORY may not see the task (no group, not in its channel): told it does not exist, groups unnamed.
    expect(refusals.some((text) => /There is no task #\d+\./.test(text))).toBe(true);
    expect(await h.count('reviews', { task_id: id })).toBe(0);

    // BOB is only in the Slack user group: his approval counts for sre, not for dba.
    await h.click(request, ACTION.approve, BOB);
    await requestIn(UG_REVIEW, id, ':white_check_mark: *sre* 1/1   :white_circle: *dba* 0/1');
    expect((await h.task(id))?.status).toBe('pending-review');
    await h.click(request, ACTION.approve, CAROL);
    await h.waitForStatus(id, 'approved');
    await h.card(id, ':white_check_mark: *dba* 1/1');

    // Run and Kill belong to reviewers too: ERIN (a user group member) may run it.
    const card = await h.card(id);
    expect(buttonIds(card)).toEqual([ACTION.run]);
    await h.click(card, ACTION.run, ERIN);
    await h.waitForStatus(id, ['success', 'failure']);
    expect(await h.app.service.isReviewerOf('ug-prod', ERIN)).toBe(true);
    expect(await h.app.service.isReviewerOf('ug-prod', MALLORY)).toBe(false);
    expect(await h.app.service.reviewedTargets(ERIN)).toEqual(['ug-prod']);
    expect((await h.app.service.resolvedPolicy('ug-prod'))?.groups[0]?.users).toEqual([ALICE, BOB, ERIN, AUTHOR]);
  });

  it('sees a membership change after the cache’s TTL, not before', async () => {
    // Long enough that a loaded machine still refuses FRANK from the cache before it expires.
    const service = serviceWithTtl(1500);
    const created = await service.create({
      author: AUTHOR,
      target: 'ug-prod',
      message: 'ttl',
      type: null,
      script: 'uptime',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    const id = created.task.id;
    const lookups = h.fake.callsTo('usergroups.users.list').length;
    try {
      h.fake.setUsergroup(SRE_GROUP, [BOB, ERIN, FRANK]);
      // Cached: FRANK is not a member yet, and Slack is not asked.
      expect(await service.approve(id, FRANK)).toMatchObject({ ok: false, code: 'not_reviewer' });
      expect(h.fake.callsTo('usergroups.users.list').length).toBe(lookups);
      await sleep(1600);
      expect(await service.approve(id, FRANK)).toMatchObject({ ok: true });
      expect(h.fake.callsTo('usergroups.users.list').length).toBe(lookups + 1);
      // Left the group: after the TTL, ERIN no longer counts (and may not reject).
      h.fake.setUsergroup(SRE_GROUP, [BOB]);
      await sleep(1600);
      expect(await service.reject(id, ERIN, 'no')).toMatchObject({ ok: false, code: 'not_reviewer' });
    } finally {
      h.fake.setUsergroup(SRE_GROUP, [BOB, ERIN, AUTHOR]);
    }
  });

  it('checks the approval again at Run: an approver who left the group no longer counts, and the task goes back to review', async () => {
    const service = serviceWithTtl(100);
    const created = await service.create({
      author: AUTHOR,
      target: 'ug-prod',
      message: 'run later',
      type: null,
      script: 'uptime',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    const id = created.task.id;
    try {
      expect(await service.approve(id, ERIN)).toMatchObject({ ok: true });
      expect(await service.approve(id, CAROL)).toMatchObject({ ok: true, task: { status: 'approved' } });
      // ERIN leaves the sre user group before the author clicks Run.
      h.fake.setUsergroup(SRE_GROUP, [BOB]);
      await sleep(150);
      const run = await service.run(id, AUTHOR);
      expect(run).toMatchObject({ ok: false, code: 'review_again' });
      expect((await h.task(id))?.status).toBe('pending-review');
      const back = (await eventsForTask(h.database.db, id)).find(
        (e) => e.type === 'task.pending-review' && (e.data as { reason?: string }).reason === 'approval-no-longer-holds',
      );
      expect(back).toBeDefined();
      // A current member approves: it is approved again and runs.
      expect(await service.approve(id, BOB)).toMatchObject({ ok: true, task: { status: 'approved' } });
      expect(await service.run(id, AUTHOR)).toMatchObject({ ok: true, task: { status: 'ready' } });
    } finally {
      h.fake.setUsergroup(SRE_GROUP, [BOB, ERIN, AUTHOR]);
    }
  });

  it('falls back to the last known members when usergroups.users.list fails, and to the listed users when none are known', async () => {
    const service = serviceWithTtl(100);
    const created = await service.create({
      author: AUTHOR,
      target: 'ug-prod',
      message: 'fallback',
      type: null,
      script: 'uptime',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    const id = created.task.id;
    await sleep(150);
    // Slack fails: BOB is still known as a member; MALLORY is still not one.
    h.fake.failNext('usergroups.users.list', { error: 'fatal_error' }, 3);
    expect(await service.checkMayReview(id, MALLORY)).toMatchObject({ ok: false, code: 'not_reviewer' });
    expect(await service.approve(id, BOB)).toMatchObject({ ok: true });
    h.fake.clearFailures();

    // A process that never knew the members, while Slack fails: only the listed ALICE counts for sre.
    const fresh = serviceWithTtl(100);
    h.fake.failNext('usergroups.users.list', { status: 500 }, 5);
    const other = await fresh.create({
      author: AUTHOR,
      target: 'ug-prod',
      message: 'no members known',
      type: null,
      script: 'uptime',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!other.ok) throw new Error(other.message);
    expect(await fresh.approve(other.task.id, ERIN)).toMatchObject({ ok: false, code: 'not_reviewer' });
    expect(await fresh.approve(other.task.id, ALICE)).toMatchObject({ ok: true });
    h.fake.clearFailures();

    // A user group Slack does not know: its members are unknown, so the task is not refused as
    // unreachable, and nobody can approve it until Slack names members.
    const solo = await h.app.service.create({
      author: AUTHOR,
      target: 'ug-solo',
      message: 'ghosts',
      type: null,
      script: 'uptime',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    expect(solo).toMatchObject({ ok: true });
    if (solo.ok) expect(await h.app.service.approve(solo.task.id, BOB)).toMatchObject({ ok: false, code: 'not_reviewer' });
  });

  it('DMs each member of a dm group once, except the author, with a link to the review request', async () => {
    const id = await h.createTask('run ug-prod -m "please look: DMs" uptime');
    const request = await requestIn(UG_REVIEW, id);
    const recipients = [ALICE, BOB, ERIN];
    const dms = () => h.fake.messages().filter((m) => m.channel.startsWith('D') && blocksText(m).includes(`task #${id} `));
    await h.fake.waitFor(() => dms().length >= recipients.length || undefined, 10_000, 'three DMs');

    // Redraws by this process and by a second one do not DM again.
    const replica: RunningApp = await h.startReplica();
    try {
      await Promise.all([h.app.messages!.sync(id), replica.messages!.sync(id), replica.messages!.reconcile()]);
    } finally {
      await replica.stop(1000);
    }
    await sleep(300);
    expect(
      dms()
        .map((m) => m.channel)
        .sort(),
    ).toEqual(recipients.map(dmChannel).sort());
    const opened = h.fake.callsTo('conversations.open').filter((c) => c.status === 200 && recipients.includes(String(c.args.users)));
    expect(opened.length).toBeGreaterThanOrEqual(recipients.length);
    expect(opened.some((c) => c.args.users === AUTHOR)).toBe(false);

    const permalink = `https://fake.slack/archives/${UG_REVIEW}/p${request.ts.replace('.', '')}`;
    for (const dm of dms()) {
      const text = blocksText(dm);
      expect(text).toContain(`<@${AUTHOR}> asks for your review of task #${id} on \`ug-prod\``);
      expect(text).toContain('please look: DMs');
      expect(text).toContain(`<${permalink}|Open the review request>`);
    }
    const sent = (await eventsForTask(h.database.db, id)).filter((e) => e.type === 'review.dm-sent');
    expect(sent.map((e) => e.data.user).sort()).toEqual([...recipients].sort());
    expect((await h.database.db('tasks').where({ id }).first('review_dms_sent')).review_dms_sent).toBe(true);
  });

  it('sends each DM once when processes race to send them', async () => {
    const replica = await h.startReplica();
    try {
      const created = await h.app.service.create({
        author: AUTHOR,
        target: 'ug-prod',
        message: 'race',
        type: null,
        script: 'uptime',
        source: 'api',
        sourceKey: null,
        channelId: null,
      });
      if (!created.ok) throw new Error(created.message);
      const id = created.task.id;
      await Promise.all([replica.messages!.sync(id), replica.messages!.sync(id), h.app.messages!.sync(id), replica.messages!.reconcile()]);
      await until(
        async () => (await h.database.db('review_dms').where({ task_id: id }).whereNotNull('sent_at').pluck('user_id')).length >= 3,
        'three DMs recorded',
      );
      await h.fake.waitFor(
        () => h.fake.messages().filter((m) => m.channel.startsWith('D') && blocksText(m).includes(`task #${id} `)).length >= 3 || undefined,
        10_000,
        'DMs',
      );
      await Promise.all([replica.messages!.sync(id), h.app.messages!.sync(id)]);
      await sleep(300);
      expect(h.fake.messages().filter((m) => m.channel.startsWith('D') && blocksText(m).includes(`task #${id} `))).toHaveLength(3);
      expect((await eventsForTask(h.database.db, id)).filter((e) => e.type === 'review.dm-sent')).toHaveLength(3);
    } finally {
      await replica.stop(1000);
    }
  });

  it('claims each DM for exactly one process, and lets it be claimed again once released', async () => {
    const id = await h.serviceTask('true', { message: 'claims' });
    const users = [ALICE, BOB, ERIN, CAROL];
    const claims = await Promise.all(Array.from({ length: 6 }, () => claimDms(h.database.db, id, users)));
    expect(claims.flat().sort()).toEqual([...users].sort());
    expect(await claimDms(h.database.db, id, users)).toEqual([]);
    // A failed send gives its claim back; a sent DM is never claimed again.
    await releaseDm(h.database.db, id, BOB);
    await h.database.db('review_dms').where({ task_id: id, user_id: ALICE }).update({ sent_at: h.database.db.fn.now() });
    await releaseDm(h.database.db, id, ALICE);
    expect(await claimDms(h.database.db, id, users)).toEqual([BOB]);
    // A claim left by a process that died mid-send is taken over after two minutes.
    await h.database
      .db('review_dms')
      .where({ task_id: id, user_id: ERIN })
      .update({ claimed_at: h.database.db.raw("now() - interval '3 minutes'") });
    expect(await claimDms(h.database.db, id, users)).toEqual([ERIN]);
  });

  it('links the review request and the card to each other, fetching each permalink once', async () => {
    const id = await h.createTask('run ug-prod -m "links" uptime');
    const card = await h.card(id);
    const cardLink = `https://fake.slack/archives/${TASKS_CHANNEL}/p${card.ts.replace('.', '')}`;
    const request = await requestIn(UG_REVIEW, id, `Asked in <#${TASKS_CHANNEL}>: <${cardLink}|open the task card>`);
    const requestLink = `https://fake.slack/archives/${UG_REVIEW}/p${request.ts.replace('.', '')}`;
    await h.card(id, `<${requestLink}|`);
    expect(await h.database.db('tasks').where({ id }).first('card_permalink', 'review_permalink')).toEqual({
      card_permalink: cardLink,
      review_permalink: requestLink,
    });
    await h.app.messages!.sync(id);
    const asked = h.fake.callsTo('chat.getPermalink').filter((c) => c.args.message_ts === card.ts || c.args.message_ts === request.ts);
    expect(asked).toHaveLength(2);
  });

  it('retries a permalink Slack failed to give, without holding up the card', async () => {
    h.fake.failNext('chat.getPermalink', { status: 500 }, 2);
    const id = await h.createTask('run web-prod -m "links later" uptime');
    await h.card(id);
    const request = await h.reviewRequest(id);
    const requestLink = `https://fake.slack/archives/${request.channel}/p${request.ts.replace('.', '')}`;
    await h.card(id, `<${requestLink}|`);
    expect(h.fake.callsTo('chat.getPermalink').filter((c) => c.status !== 200 || c.response.ok === false).length).toBeGreaterThanOrEqual(1);
  });

  it('refuses an approval past the review deadline even before a sweep has marked it expired', async () => {
    // The app's own sweep runs once a minute by default: 1 s after the request, no sweep has run.
    const id = await h.createTask('run expiring -m "too late" uptime');
    await sleep(1100);
    const late = await h.app.service.approve(id, ALICE);
    expect(late).toMatchObject({ ok: false, code: 'expired' });
    expect(await h.count('reviews', { task_id: id })).toBe(0);
  });

  it('expires a review left pending too long: rejected by nobody, and the card and request say so', async () => {
    const log = createLogger('silent');
    // Two sweepers, as two replicas would run them, on top of the app's own.
    const sweepers = [0, 1].map(() => new ReviewExpiry(h.database.db, h.config, h.app.bus, log, { intervalMs: 100 }));
    const approvedId = await h.createTask('run expiring -m "approved in time" uptime');
    await h.app.service.approve(approvedId, ALICE);
    const id = await h.createTask('run expiring -m "nobody looks" uptime');
    const request = await requestIn(EXPIRE_REVIEW, id, 'Expires <!date^');
    for (const sweeper of sweepers) sweeper.start();
    try {
      const task = await h.waitForStatus(id, 'rejected', 10_000);
      expect(task.result.failureMessage).toBe('review expired after 1s without enough approvals');
      await sleep(300);
      const rejected = (await eventsForTask(h.database.db, id)).filter((e) => e.type === 'task.rejected');
      expect(rejected).toHaveLength(1);
      expect(rejected[0]).toMatchObject({ actor: null, data: { from: 'pending-review', reason: 'expired' } });
      expect((await h.task(approvedId))?.status).toBe('approved');
    } finally {
      await Promise.all(sweepers.map((sweeper) => sweeper.stop()));
    }
    const expired = await requestIn(EXPIRE_REVIEW, id, ':hourglass: review expired after 1s without enough approvals');
    expect(buttonIds(expired)).toEqual([]);
    await h.card(id, 'review expired after 1s without enough approvals');

    // A late click changes nothing.
    const seen = h.fake.responses.length;
    await h.click(request, ACTION.approve, ALICE);
    expect((await refusalsAfter(seen, 1))[0]).toMatch(/is rejected; it can no longer be reviewed/);
    expect(await h.count('reviews', { task_id: id })).toBe(0);
  });

  it('lets the author resubmit a rejected task as a new one, linked both ways', async () => {
    const id = await h.createTask('run web-prod -m "first try" ```\necho one\n```');
    expect(await h.app.service.resubmit(id, AUTHOR, {})).toMatchObject({ ok: false, code: 'not_rejected' });
    await h.app.service.reject(id, ALICE, 'use two');
    expect(await h.app.service.resubmit(id, MALLORY, {})).toMatchObject({ ok: false, code: 'not_author' });

    const again = await h.app.service.resubmit(id, AUTHOR, { script: 'echo two' });
    if (!again.ok) throw new Error(again.message);
    expect(again.created).toBe(true);
    const next = again.task;
    expect(next.id).not.toBe(id);
    expect(next).toMatchObject({
      status: 'pending-review',
      target: 'web-prod',
      type: 'bash',
      script: 'echo two',
      message: 'first try',
      author: AUTHOR,
      channelId: TASKS_CHANNEL,
    });
    expect((await eventsForTask(h.database.db, id)).find((e) => e.type === 'task.resubmitted')).toMatchObject({ actor: AUTHOR, data: { as: next.id } });
    expect((await eventsForTask(h.database.db, next.id)).find((e) => e.type === 'task.created')).toMatchObject({ data: { resubmissionOf: id } });

    // Reviewed from scratch: its own card and review request.
    await h.card(next.id);
    const request = await h.reviewRequest(next.id);
    expect(buttonIds(request)).toEqual([ACTION.approve, ACTION.reject]);

    // Resubmitting twice (a double submit) gives the same new task.
    const twice = await h.app.service.resubmit(id, AUTHOR, { script: 'echo three', message: 'changed' });
    expect(twice).toMatchObject({ ok: true, created: false, task: { id: next.id, script: 'echo two' } });
    expect((await eventsForTask(h.database.db, id)).filter((e) => e.type === 'task.resubmitted')).toHaveLength(1);
  });
});
