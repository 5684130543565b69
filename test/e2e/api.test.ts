/**
 * The HTTP API through real HTTP, with the embedded Postgres, a real sshd and the fake Slack.
 * Every answer is checked against the server's own OpenAPI document (test/support/apiClient).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, Harness, MALLORY, TASKS_CHANNEL } from '../support/harness.js';
import { sseEvents } from '../support/sse.js';

describe('HTTP API', () => {
  let h: Harness;
  let api: ApiClient;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    h = await Harness.start();
    api = await ApiClient.connect(h.app.url);
    for (const [user, name] of [
      [AUTHOR, 'author'],
      [ALICE, 'alice'],
      [BOB, 'bob'],
      [MALLORY, 'mallory'],
    ] as const) {
      tokens[user] = (await createApiToken(h.database.db, user, name)).token;
    }
  });
  afterAll(async () => {
    await h.stop();
  });

  const as = (user: string) => ({
    get: (path: string, headers?: Record<string, string>) => api.call('GET', path, { token: tokens[user]!, ...(headers ? { headers } : {}) }),
    post: (path: string, body?: unknown, headers?: Record<string, string>) =>
      api.call('POST', path, { token: tokens[user]!, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) }),
    patch: (path: string, body: unknown) => api.call('PATCH', path, { token: tokens[user]!, body }),
    delete: (path: string) => api.call('DELETE', path, { token: tokens[user]! }),
  });
  const author = as(AUTHOR);

  async function createReviewed(script = 'echo reviewed', message = 'because'): Promise<number> {
    const answer = await author.post('/tasks', { target: 'web-prod', script, message, channel: TASKS_CHANNEL });
    expect(answer.status).toBe(201);
    return answer.body.task.id;
  }

  it('puts a card only in a channel its author is in, or the target’s own: a channel names who may see the task', async () => {
    const elsewhere = await author.post('/tasks', { target: 'web-prod', script: 'echo channel-check', message: 'spam', channel: 'CSOMEONEELSE' });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.error.code).toBe('not_in_channel');
    const mine = await author.post('/tasks', { target: 'web-prod', script: 'echo channel-check', message: 'here', channel: TASKS_CHANNEL });
    expect(mine.status).toBe(201);
  });

  it('refuses calls without a valid token with 401 and a JSON error', async () => {
    const none = await api.call('GET', '/tasks');
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthenticated');
    expect(none.body.error.message).toMatch(/Authorization: Bearer/);
    const bad = await api.call('GET', '/tasks', { token: 'cst_not-a-real-token' });
    expect(bad.status).toBe(401);
    // Tokens are stored hashed: the clear value is nowhere in the database.
    const stored = await h.database.db('api_tokens').pluck('token_hash');
    expect(stored).not.toContain(tokens[AUTHOR]);
    expect(stored.every((hash: string) => /^[0-9a-f]{64}$/.test(hash))).toBe(true);
  });

  it('creates a task whose card and review request appear in Slack, and replays an Idempotency-Key', async () => {
    const first = await author.post(
      '/tasks',
      { target: 'web-prod', script: 'uptime', message: 'from CI', channel: TASKS_CHANNEL },
      { 'Idempotency-Key': 'deploy-42' },
    );
    expect(first.status).toBe(201);
    const task = first.body.task;
    expect(task).toMatchObject({ status: 'pending-review', target: 'web-prod', author: AUTHOR, script: 'uptime', message: 'from CI', source: 'api' });
    expect(task.statusUrl).toBe(`${h.app.url}/api/v1/tasks/${task.id}`);
    expect(task.logUrl).toMatch(new RegExp(`^${h.app.url}/tasks/${task.id}\\?expires=\\d+&sig=`));
    await h.card(task.id, 'from CI');
    await h.reviewRequest(task.id, 'Approve');

    const again = await author.post(
      '/tasks',
      { target: 'web-prod', script: 'uptime', message: 'from CI', channel: TASKS_CHANNEL },
      { 'Idempotency-Key': 'deploy-42' },
    );
    expect(again.status).toBe(200);
    expect(again.body.task.id).toBe(task.id);
    expect(await h.count('tasks', { source: 'api', script: 'uptime' })).toBe(1);
    // The same key from another user is another task; the same key for another script is refused.
    const other = await as(BOB).post('/tasks', { target: 'sandbox', script: 'uptime' }, { 'Idempotency-Key': 'deploy-42' });
    expect(other.status).toBe(201);
    const clash = await author.post('/tasks', { target: 'web-prod', script: 'rm -rf /tmp/x' }, { 'Idempotency-Key': 'deploy-42' });
    expect(clash.status).toBe(422);
    expect(clash.body.error.code).toBe('idempotency_conflict');
  });

  it('validates input: unknown fields, wrong types, malformed JSON, oversize bodies, bad queries', async () => {
    const before = await h.count('tasks');
    const unknown = await author.post('/tasks', { target: 'sandbox', script: 'true', colour: 'red' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/unknown field: colour/);
    const wrongType = await author.post('/tasks', { target: 'sandbox', script: 42 });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.issues[0].path).toBe('script');
    const empty = await author.post('/tasks', { target: 'sandbox', script: '   ' });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toMatch(/script is empty/);
    const tooLong = await author.post('/tasks', { target: 'sandbox', script: `echo ${'x'.repeat(70 * 1024)}` });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.message).toMatch(/at most 64 KiB/);
    const malformed = await api.call('POST', '/tasks', {
      token: tokens[AUTHOR]!,
      rawBody: '{"target": "sandbox",',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('malformed_json');
    const huge = await api.call('POST', '/tasks', {
      token: tokens[AUTHOR]!,
      rawBody: JSON.stringify({ target: 'sandbox', script: 'x'.repeat(600 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('body_too_large');
    const unknownTarget = await author.post('/tasks', { target: 'nowhere', script: 'true' });
    expect(unknownTarget.status).toBe(422);
    expect(unknownTarget.body.error.message).toMatch(/There is no target `nowhere`/);
    const badQuery = await author.get('/tasks?status=sleeping');
    expect(badQuery.status).toBe(400);
    expect(badQuery.body.error.message).toMatch(/unknown status `sleeping`/);
    expect((await author.get(`/tasks?cursor=${'9'.repeat(25)}`)).status).toBe(400);
    const badLimit = await author.get('/tasks?limit=5000');
    expect(badLimit.status).toBe(400);
    const badId = await author.get('/tasks/abc');
    expect(badId.status).toBe(404);
    const noRoute = await author.get('/nothing-here');
    expect(noRoute.status).toBe(404);
    expect(await h.count('tasks')).toBe(before);
  });

  it('applies the Slack rules to reviews, runs and edits, answering 403 and 409', async () => {
    const id = await createReviewed('echo first');
    // The author edits before anyone reviews; nobody else may (a stranger may not even see it: 404).
    expect((await as(MALLORY).patch(`/tasks/${id}`, { script: 'echo evil' })).status).toBe(404);
    const edited = await author.patch(`/tasks/${id}`, { script: 'echo edited-script', message: 'edited why' });
    expect(edited.status).toBe(200);
    expect(edited.body.task).toMatchObject({ script: 'echo edited-script', message: 'edited why' });
    await h.reviewRequest(id, 'edited-script');
    expect((await author.patch(`/tasks/${id}`, {})).status).toBe(400);
    // Approvals name the version read: its ETag.
    const read = await as(ALICE).get(`/tasks/${id}`);
    expect(read.headers.get('etag')).toBe(`"${edited.body.task.contentVersion}"`);
    const seen = { 'If-Match': read.headers.get('etag')! };

    const self = await author.post(`/tasks/${id}/approve`, undefined, seen);
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe('self_review');
    const outsider = await as(MALLORY).post(`/tasks/${id}/approve`, undefined, seen);
    expect(outsider.status).toBe(404);
    expect((await author.post(`/tasks/${id}/start`)).status).toBe(409);
    const approved = await as(ALICE).post(`/tasks/${id}/approve`, {}, seen);
    expect(approved.status).toBe(200);
    expect(approved.body.task.status).toBe('approved');
    expect((await as(ALICE).post(`/tasks/${id}/approve`, undefined, seen)).status).toBe(409);
    // Reviewed now: no more edits.
    const late = await author.patch(`/tasks/${id}`, { message: 'too late' });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('not_editable');
    expect((await as(MALLORY).post(`/tasks/${id}/start`)).status).toBe(404);

    const started = await author.post(`/tasks/${id}/start`);
    expect(started.status).toBe(200);
    await h.waitForStatus(id, 'success');
    const got = await author.get(`/tasks/${id}`);
    expect(got.body.task.reviews).toEqual([expect.objectContaining({ userId: ALICE, verdict: 'approve', reason: null })]);
    expect(got.body.task.result.exitCode).toBe(0);
    expect(got.body.task.result.lastLine).toBe('edited-script');
    // The card links to the task page with a signed link that opens it.
    const card = await h.card(id, 'success');
    const link = new RegExp(`<(http://[^|>]+/tasks/${id}\\?expires=\\d+&sig=[^|>]+)\\|Task page`).exec(JSON.stringify(card.blocks))?.[1];
    expect(link).toBeDefined();
    const page = await fetch(link!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('edited-script');

    const rejectedId = await createReviewed('echo never');
    const rejected = await as(BOB).post(`/tasks/${rejectedId}/reject`, { reason: 'not during the freeze' });
    expect(rejected.body.task.status).toBe('rejected');
    expect((await author.post(`/tasks/${rejectedId}/start`)).status).toBe(409);
    expect((await author.get(`/tasks/${rejectedId}`)).body.task.reviews[0]).toMatchObject({ userId: BOB, verdict: 'reject', reason: 'not during the freeze' });
  });

  it('deletes a task only before it ran: it ends cancelled and never runs', async () => {
    const id = await createReviewed('echo should-never-run');
    expect((await as(MALLORY).delete(`/tasks/${id}`)).status).toBe(404);
    const deleted = await author.delete(`/tasks/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.task.status).toBe('cancelled');
    expect((await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': `"${deleted.body.task.contentVersion}"` })).status).toBe(409);
    await h.card(id, 'cancelled');
    const ran = await author.post('/tasks', { target: 'sandbox', script: 'echo done' });
    await h.waitForStatus(ran.body.task.id, 'success');
    const tooLate = await author.delete(`/tasks/${ran.body.task.id}`);
    expect(tooLate.status).toBe(409);
    expect(await h.count('executions', { task_id: id })).toBe(0);
  });

  it('lists with filters and cursor pagination, newest first', async () => {
    const mine: number[] = [];
    for (let i = 0; i < 5; i++) mine.push((await as(BOB).post('/tasks', { target: 'web-prod', script: `echo page-${i}` })).body.task.id);
    const page1 = await as(BOB).get(`/tasks?author=${BOB}&target=web-prod&status=pending-review&limit=2`);
    expect(page1.status).toBe(200);
    expect(page1.body.tasks.map((t: { id: number }) => t.id)).toEqual([mine[4], mine[3]]);
    expect(page1.body.tasks[0].reviews).toBeUndefined();
    const page2 = await as(BOB).get(`/tasks?author=${BOB}&target=web-prod&status=pending-review&limit=2&cursor=${page1.body.nextCursor}`);
    expect(page2.body.tasks.map((t: { id: number }) => t.id)).toEqual([mine[2], mine[1]]);
    const page3 = await as(BOB).get(`/tasks?author=${BOB}&target=web-prod&status=pending-review&limit=2&cursor=${page2.body.nextCursor}`);
    expect(page3.body.tasks.map((t: { id: number }) => t.id)).toEqual([mine[0]]);
    expect(page3.body.nextCursor).toBeNull();
    const future = await as(BOB).get(`/tasks?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    expect(future.body.tasks).toEqual([]);
    const several = await as(BOB).get('/tasks?status=success,cancelled&limit=200');
    expect(several.body.tasks.length).toBeGreaterThan(0);
    expect(several.body.tasks.every((t: { status: string }) => ['success', 'cancelled'].includes(t.status))).toBe(true);
  });

  it('serves the log as text, by Range and offset, and follows a running task over SSE until it ends', async () => {
    const created = await author.post('/tasks', { target: 'sandbox', script: 'echo one; sleep 0.6; echo two; sleep 0.6; echo three' });
    const id = created.body.task.id;
    const response = await fetch(`${api.baseUrl}/tasks/${id}/log?follow=1`, { headers: { authorization: `Bearer ${tokens[AUTHOR]}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events: Array<{ event: string; data: { text?: string; status?: string }; at: number }> = [];
    for await (const { event, data } of sseEvents(response.body)) {
      if (data) events.push({ event, data: JSON.parse(data), at: Date.now() });
    }
    const output = events.filter((e) => e.event === 'output');
    expect(output.map((e) => e.data.text).join('')).toBe('one\ntwo\nthree\n');
    // Streamed as it ran, not all at the end.
    expect(output.length).toBeGreaterThanOrEqual(2);
    expect(output[output.length - 1]!.at - output[0]!.at).toBeGreaterThan(500);
    expect(events[events.length - 1]).toMatchObject({ event: 'end', data: { status: 'success' } });

    const whole = await author.get(`/tasks/${id}/log`);
    expect(whole.status).toBe(200);
    expect(whole.text).toBe('one\ntwo\nthree\n');
    expect(whole.headers.get('x-log-size')).toBe('14');
    const range = await author.get(`/tasks/${id}/log`, { range: 'bytes=4-7' });
    expect(range.status).toBe(206);
    expect(range.text).toBe('two\n');
    expect(range.headers.get('content-range')).toBe('bytes 4-7/14');
    const suffix = await author.get(`/tasks/${id}/log`, { range: 'bytes=-6' });
    expect(suffix.text).toBe('three\n');
    const offset = await author.get(`/tasks/${id}/log?offset=8`);
    expect(offset.text).toBe('three\n');
    expect((await author.get(`/tasks/${id}/log`, { range: 'bytes=99-' })).status).toBe(416);
    expect((await author.get(`/tasks/${id}/log?offset=99`)).status).toBe(416);
    // A finished task's follow answers what there is and ends at once.
    const replay = await fetch(`${api.baseUrl}/tasks/${id}/log?follow=1&offset=4`, { headers: { authorization: `Bearer ${tokens[AUTHOR]}` } });
    const replayed = await replay.text();
    expect(replayed).toContain('"text":"two\\nthree\\n"');
    expect(replayed).toContain('event: end');
  });

  it('shows executions with steps and status_version, and stops a run through its execution', async () => {
    const created = await author.post('/tasks', { target: 'sandbox', script: 'echo started; sleep 30' });
    const id = created.body.task.id;
    await h.waitForStatus(id, 'running');
    const list = await author.get(`/tasks/${id}/executions`);
    expect(list.body.executions).toHaveLength(1);
    const executionId = list.body.executions[0].id;
    const deadline = Date.now() + 10_000;
    let execution: any;
    for (;;) {
      execution = (await author.get(`/executions/${executionId}`)).body.execution;
      if (execution.steps[0].output.tail.includes('started') || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(execution).toMatchObject({ taskId: id, phase: 'running', stopRequested: false });
    expect(execution.steps[0]).toMatchObject({ phase: 'running', host: h.ssh.host, exitCode: null });
    expect(execution.steps[0].output.tail).toBe('started\n');
    const versionBefore = execution.statusVersion;

    expect((await as(MALLORY).post(`/executions/${executionId}/stop`)).status).toBe(404);
    const stop = await author.post(`/executions/${executionId}/stop`);
    expect(stop.status).toBe(200);
    expect(stop.body.stopping).toBe(true);
    await h.waitForStatus(id, 'killed');
    const after = (await author.get(`/executions/${executionId}`)).body.execution;
    expect(after).toMatchObject({ phase: 'killed', stopRequested: true, stopRequestedBy: AUTHOR });
    expect(after.statusVersion).toBeGreaterThan(versionBefore);
    expect((await author.post(`/executions/${executionId}/stop`)).status).toBe(409);
    expect((await author.get('/executions/999999')).status).toBe(404);

    // Stop through the task, too.
    const other = (await author.post('/tasks', { target: 'sandbox', script: 'sleep 30' })).body.task.id;
    await h.waitForStatus(other, 'running');
    expect((await author.post(`/tasks/${other}/stop`)).body.stopping).toBe(true);
    await h.waitForStatus(other, 'killed');
  });

  it('reads the audit trail with filters and pagination', async () => {
    const id = await createReviewed('echo audited');
    await as(ALICE).post(`/tasks/${id}/reject`, { reason: 'audit me' });
    const forTask = await author.get(`/events?task=${id}`);
    expect(forTask.status).toBe(200);
    const types = forTask.body.events.map((e: { type: string }) => e.type);
    expect(types).toEqual(['task.rejected', 'review.rejected', 'task.pending-review', 'task.created']);
    expect(forTask.body.events[0]).toMatchObject({ taskId: id, actor: ALICE, data: { reason: 'audit me', from: 'pending-review' } });
    const byType = await author.get(`/events?actor=${ALICE}&type=review.rejected`);
    expect(byType.body.events.map((e: { taskId: number }) => e.taskId)).toEqual([id]);
    const byActor = await author.get(`/events?actor=${ALICE}&limit=1`);
    expect(byActor.body.events).toHaveLength(1);
    expect(byActor.body.events[0]).toMatchObject({ taskId: id, type: 'task.rejected' });
    expect(byActor.body.nextCursor).not.toBeNull();
    const next = await author.get(`/events?actor=${ALICE}&limit=1&cursor=${byActor.body.nextCursor}`);
    expect(next.body.events[0]).toMatchObject({ taskId: id, type: 'review.rejected', actor: ALICE });
    expect(next.body.events[0].id).toBeLessThan(byActor.body.events[0].id);
  });

  it('documents every operation it serves in OpenAPI 3.1', async () => {
    expect(api.document).toMatchObject({ openapi: '3.1.0' });
    // Runbooks, runs and run again are exercised by test/e2e/runbooks.test.ts, schedules by
    // schedules-api.test.ts, each with the same check.
    const elsewhere = (path: string) => path.startsWith('/runbooks') || path.startsWith('/runs') || path.endsWith('/again') || path.startsWith('/schedules');
    const operations = Object.entries(api.document.paths)
      .filter(([path]) => !elsewhere(path))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`));
    expect(operations).toHaveLength(14);
    // Each operation was called above and its answers checked against the document.
    for (const operation of operations) expect([...api.seen].some((seen) => seen.startsWith(`${operation} 2`))).toBe(true);
  });
});
