/**
 * Schedules in the HTTP API (issue 13, "Schedules everywhere"), through real HTTP, a real
 * Postgres, the fake Slack and a real sshd. Every answer is checked against the server's own
 * OpenAPI document (test/support/apiClient).
 *
 * - create is reviewed like `/task schedule add` (the request appears in Slack), replays an
 *   Idempotency-Key, and refuses a bad cron or time zone naming the field;
 * - approve names the version read: 428 without If-Match, 412 after an edit, 200 with the
 *   current ETag; then every firing runs on the host without a new review;
 * - pause, resume, delete, reject; list with filters and a cursor;
 * - who may see: a stranger gets 404 for every call about a schedule (writes included), exactly
 *   as for one that does not exist, and no schedule events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { SCHEDULE_ACTION } from '../../src/slack/render/schedule.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, MALLORY, REVIEW_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const RESULTS = 'CSCHEDRES';
const CAROL = 'UCAROL'; // a member of the results channel (with the author), nothing else

describe('schedules in the API', () => {
  let h: Harness;
  let api: ApiClient;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    h = await Harness.start();
    h.fake.setChannelMembers(RESULTS, [AUTHOR, CAROL]);
    api = await ApiClient.connect(h.app.url);
    for (const user of [AUTHOR, ALICE, BOB, MALLORY, CAROL]) tokens[user] = (await createApiToken(h.database.db, user, user)).token;
  });
  afterAll(async () => {
    await h?.stop();
  });

  const as = (user: string) => ({
    get: (path: string) => api.call('GET', path, { token: tokens[user]! }),
    post: (path: string, body?: unknown, headers?: Record<string, string>) =>
      api.call('POST', path, { token: tokens[user]!, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) }),
    delete: (path: string) => api.call('DELETE', path, { token: tokens[user]! }),
  });
  const author = as(AUTHOR);
  const row = (id: number) => h.database.db('schedules').where({ id }).first();
  const requestOf = (id: number, contains?: string) =>
    h.fake.waitFor(
      () => {
        const all = h.fake.messages(REVIEW_CHANNEL).filter((m) => !m.thread_ts && blocksText(m).includes(`*S${id}*`));
        const last = all.at(-1);
        return last && (contains === undefined || blocksText(last).includes(contains)) ? structuredClone(last) : undefined;
      },
      10_000,
      `review request of S${id}`,
    );

  it('creates a schedule reviewed like /task schedule add, and replays an Idempotency-Key', async () => {
    const body = { target: 'web-prod', cron: '0  3 * * *', tz: 'Europe/Paris', script: 'echo nightly', message: 'from CI', channel: RESULTS };
    const first = await author.post('/schedules', body, { 'Idempotency-Key': 'nightly-1' });
    expect(first.status).toBe(201);
    const schedule = first.body.schedule;
    expect(schedule).toMatchObject({
      status: 'pending-review',
      target: 'web-prod',
      author: AUTHOR,
      cron: '0 3 * * *',
      tz: 'Europe/Paris',
      script: 'echo nightly',
      channel: RESULTS,
      resultChannel: RESULTS,
      notify: 'always',
      overlap: 'skip',
      catchUp: 'run',
    });
    expect(schedule.nextFireTimes).toHaveLength(3);
    expect(first.headers.get('etag')).toBe(`"${schedule.contentVersion}"`);
    // The review request in Slack, with an Approve button for this version.
    const request = await requestOf(schedule.id, 'echo nightly');
    expect(JSON.stringify(request.blocks)).toContain(`"action_id":"${SCHEDULE_ACTION.approve}"`);
    expect(JSON.stringify(request.blocks)).toContain(`${schedule.id}:${schedule.contentVersion}`);

    const again = await author.post('/schedules', body, { 'Idempotency-Key': 'nightly-1' });
    expect(again.status).toBe(200);
    expect(again.body.schedule.id).toBe(schedule.id);
    const clash = await author.post('/schedules', { ...body, script: 'rm -rf /' }, { 'Idempotency-Key': 'nightly-1' });
    expect(clash.status).toBe(422);
    expect(clash.body.error.code).toBe('idempotency_conflict');
    expect(await h.count('schedules', { script: 'rm -rf /' })).toBe(0);
    // Audited, with the schedule as the event's subject.
    const created = await h.database.db('events').where({ type: 'schedule.created', subject: `schedule:${schedule.id}` });
    expect(created).toHaveLength(1);
  });

  it('refuses a bad cron, time zone, target or body, naming what is wrong', async () => {
    const before = await h.count('schedules');
    const cron = await author.post('/schedules', { target: 'sandbox', cron: '*/70 * * * *', script: 'true' });
    expect(cron.status).toBe(422);
    expect(cron.body.error).toMatchObject({ code: 'bad_cron' });
    expect(cron.body.error.message).toMatch(/not a valid cron/);
    const tz = await author.post('/schedules', { target: 'sandbox', cron: '* * * * *', tz: 'Mars/Olympus', script: 'true' });
    expect(tz.status).toBe(422);
    expect(tz.body.error.message).toMatch(/`Mars\/Olympus` is not a time zone/);
    const target = await author.post('/schedules', { target: 'nowhere', cron: '* * * * *', script: 'true' });
    expect(target.status).toBe(422);
    expect(target.body.error.code).toBe('unknown_target');
    const unknown = await author.post('/schedules', { target: 'sandbox', cron: '* * * * *', script: 'true', colour: 'red' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/unknown field: colour/);
    const empty = await author.post('/schedules', { target: 'sandbox', cron: '* * * * *', script: '   ' });
    expect(empty.status).toBe(400);
    // Results go to a channel whose members may then see it: only one the author is in.
    const elsewhere = await author.post('/schedules', { target: 'sandbox', cron: '* * * * *', script: 'true', channel: 'CSOMEONEELSE' });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.error.code).toBe('not_in_channel');
    expect(await h.count('schedules')).toBe(before);
  });

  it('approves only the version read: 428 without If-Match, 412 after an edit, then it fires on the host', async () => {
    const created = (await author.post('/schedules', { target: 'web-prod', cron: '*/1 * * * * *', script: 'echo api-version-one', channel: RESULTS })).body
      .schedule;
    const read = await as(ALICE).get(`/schedules/${created.id}`);
    expect(read.status).toBe(200);
    expect(read.body.schedule.reviews).toEqual([]);
    const seenTag = read.headers.get('etag')!;

    const bare = await as(ALICE).post(`/schedules/${created.id}/approve`, {});
    expect(bare.status).toBe(428);
    expect(bare.body.error.code).toBe('precondition_required');

    // The author changes what runs after Alice read it: her ETag names the old version.
    const edited = await h.command(`schedule edit ${created.id} echo api-version-two`);
    expect(edited.json.text).toMatch(/What it runs changed/);
    const stale = await as(ALICE).post(`/schedules/${created.id}/approve`, {}, { 'If-Match': seenTag });
    expect(stale.status).toBe(412);
    expect(stale.body.error.code).toBe('precondition_failed');
    const weak = await as(ALICE).post(
      `/schedules/${created.id}/approve`,
      {},
      { 'If-Match': `W/${(await as(ALICE).get(`/schedules/${created.id}`)).headers.get('etag')}` },
    );
    expect(weak.status).toBe(412);
    expect((await row(created.id)).status).toBe('pending-review');
    expect(await h.count('schedule_reviews', { schedule_id: created.id })).toBe(0);

    // The author may not approve their own, whatever they send.
    const current = await as(ALICE).get(`/schedules/${created.id}`);
    expect(current.body.schedule.script).toBe('echo api-version-two');
    const own = await author.post(`/schedules/${created.id}/approve`, {}, { 'If-Match': current.headers.get('etag')! });
    expect(own.status).toBe(403);
    expect(own.body.error.code).toBe('self_review');

    const approved = await as(ALICE).post(`/schedules/${created.id}/approve`, {}, { 'If-Match': current.headers.get('etag')! });
    expect(approved.status).toBe(200);
    expect(approved.body.schedule.status).toBe('active');
    const afterApproval = await as(ALICE).get(`/schedules/${created.id}`);
    expect(afterApproval.body.schedule.reviews).toMatchObject([{ userId: ALICE, verdict: 'approve' }]);

    // Firings run on the host without a new review.
    const firing = await waitFor(
      async () => h.database.db('schedule_firings').where({ schedule_id: created.id }).whereNotNull('task_id').first(),
      10_000,
      'a firing',
    );
    const task = await h.waitForStatus(Number(firing.task_id), 'success', 15_000);
    expect(task.script).toBe('echo api-version-two');
    const output = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', task.id).pluck('o.data');
    expect(output.join('')).toContain('api-version-two');

    // Pause, resume and remove, by a reviewer; a second pause is refused by the state.
    const paused = await as(BOB).post(`/schedules/${created.id}/pause`, {});
    expect(paused.status).toBe(200);
    expect(paused.body.schedule.status).toBe('paused');
    expect(paused.body.schedule.nextFireTimes).toEqual([]);
    const twice = await as(BOB).post(`/schedules/${created.id}/pause`, {});
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('wrong_status');
    expect((await as(BOB).post(`/schedules/${created.id}/resume`, {})).body.schedule.status).toBe('active');
    const removed = await author.delete(`/schedules/${created.id}`);
    expect(removed.status).toBe(200);
    expect(removed.body.schedule.status).toBe('removed');
    const atRemove = await h.count('schedule_firings', { schedule_id: created.id });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await h.count('schedule_firings', { schedule_id: created.id })).toBe(atRemove);
  }, 60_000);

  it('rejects with a reason: it never fires', async () => {
    const created = (await author.post('/schedules', { target: 'web-prod', cron: '*/1 * * * * *', script: 'echo never' })).body.schedule;
    const rejected = await as(BOB).post(`/schedules/${created.id}/reject`, { reason: 'not every second' });
    expect(rejected.status).toBe(200);
    expect(rejected.body.schedule.status).toBe('rejected');
    expect((await as(ALICE).get(`/schedules/${created.id}`)).body.schedule.reviews).toMatchObject([
      { userId: BOB, verdict: 'reject', reason: 'not every second' },
    ]);
    const late = await as(ALICE).post(`/schedules/${created.id}/approve`, {}, { 'If-Match': `"${created.contentVersion}"` });
    expect(late.status).toBe(409);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await h.count('schedule_firings', { schedule_id: created.id })).toBe(0);
  });

  it('answers a stranger 404 for every call about a schedule, as for one that does not exist', async () => {
    const created = (await author.post('/schedules', { target: 'web-prod', cron: '0 4 * * *', script: 'echo secret-schedule', channel: RESULTS })).body
      .schedule;
    const mallory = as(MALLORY);
    const tag = { 'If-Match': `"${created.contentVersion}"` };
    const calls = (id: number) => [
      () => mallory.get(`/schedules/${id}`),
      () => mallory.post(`/schedules/${id}/pause`, {}),
      () => mallory.post(`/schedules/${id}/resume`, {}),
      () => mallory.post(`/schedules/${id}/approve`, {}, tag),
      () => mallory.post(`/schedules/${id}/reject`, {}),
      () => mallory.delete(`/schedules/${id}`),
    ];
    const hidden = calls(created.id);
    const missing = calls(999_999);
    for (let i = 0; i < hidden.length; i++) {
      const [a, b] = [await hidden[i]!(), await missing[i]!()];
      expect(a.status, `call ${i}`).toBe(404);
      expect(a.body.error.code).toBe(b.body.error.code);
      expect(a.body.error.message.replace(String(created.id), 'N')).toBe(b.body.error.message.replace('999999', 'N'));
      expect(a.text).not.toContain('secret-schedule');
    }
    expect((await row(created.id)).status).toBe('pending-review');
    const listed = await mallory.get('/schedules?limit=200');
    expect(listed.status).toBe(200);
    expect(listed.body.schedules.map((s: { id: number }) => s.id)).not.toContain(created.id);
    const events = await mallory.get('/events?type=schedule.created');
    expect(events.body.events).toEqual([]);

    // Who may: the author, the target's reviewers, a member of the results channel; and their audit trail.
    for (const user of [AUTHOR, ALICE, CAROL]) {
      expect((await as(user).get(`/schedules/${created.id}`)).status, user).toBe(200);
      const trail = await as(user).get('/events?type=schedule.created&limit=200');
      expect(
        trail.body.events.map((e: { subject: string }) => e.subject),
        user,
      ).toContain(`schedule:${created.id}`);
    }
  });

  it('lists with filters and a cursor, newest first, hiding removed ones unless asked', async () => {
    const ids: number[] = [];
    for (let n = 0; n < 3; n++)
      ids.push((await as(BOB).post('/schedules', { target: 'sandbox', cron: `${n} 5 * * *`, script: `echo list-${n}` })).body.schedule.id);
    const sandbox = await as(BOB).get(`/schedules?target=sandbox&author=${BOB}&limit=2`);
    expect(sandbox.status).toBe(200);
    expect(sandbox.body.schedules.map((s: { id: number }) => s.id)).toEqual([ids[2], ids[1]]);
    expect(sandbox.body.schedules[0].status).toBe('active'); // no review on sandbox
    const next = await as(BOB).get(`/schedules?target=sandbox&author=${BOB}&limit=2&cursor=${sandbox.body.nextCursor}`);
    expect(next.body.schedules.map((s: { id: number }) => s.id)).toEqual([ids[0]]);
    expect(next.body.nextCursor).toBeNull();
    await as(BOB).delete(`/schedules/${ids[0]}`);
    const active = await as(BOB).get(`/schedules?target=sandbox&author=${BOB}`);
    expect(active.body.schedules.map((s: { id: number }) => s.id)).toEqual([ids[2], ids[1]]);
    const removed = await as(BOB).get(`/schedules?status=removed&author=${BOB}`);
    expect(removed.body.schedules.map((s: { id: number }) => s.id)).toEqual([ids[0]]);
    const bad = await as(BOB).get('/schedules?status=sleeping');
    expect(bad.status).toBe(400);
    for (const id of ids.slice(1)) await as(BOB).delete(`/schedules/${id}`);
  });

  it('documents every schedule operation it serves, each called above with a 2xx answer', () => {
    const operations = Object.entries(api.document.paths)
      .filter(([path]) => path.startsWith('/schedules'))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`));
    expect(operations.sort()).toEqual(
      [
        'get /schedules',
        'post /schedules',
        'get /schedules/{id}',
        'delete /schedules/{id}',
        'post /schedules/{id}/pause',
        'post /schedules/{id}/resume',
        'post /schedules/{id}/approve',
        'post /schedules/{id}/reject',
      ].sort(),
    );
    for (const operation of operations)
      expect(
        [...api.seen].some((seen) => seen.startsWith(`${operation} 2`)),
        operation,
      ).toBe(true);
  });
});
