/**
 * Ways around review found by reading the whole change once more, each closed and proven here
 * through the API over HTTP on a real Postgres (and the store on it):
 * - Run again of a rejected task by a reviewer made them its author, so whoever wrote the
 *   rejected script could approve it: only the author may ask again for what never ran approved.
 * - POST /runbooks/{ref}/start took any channel for the card, though a card's channel lets its
 *   members see the task: the same membership rule as POST /tasks now applies.
 * - Run reviews expired in batches of the longest waiting runs touching any expiring target:
 *   runs still within a week-long deadline filled the batch and hid runs past a one-second one.
 * - The "whole script is in the thread" mark did not name the version uploaded: an edit during
 *   the upload left the new version's request claiming a file that was the old one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { markReviewScriptPosted } from '../../src/store/slackMessages.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, Harness, targetYaml } from '../support/harness.js';
import { insertTaskRows } from '../support/taskRows.js';

describe('review mends', () => {
  let h: Harness;
  let api: ApiClient;
  const tokens: Record<string, string> = {};
  const call = (user: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    api.call(method, path, { token: tokens[user]!, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) });

  beforeAll(async () => {
    h = await Harness.start({
      // Two reviewed targets whose reviews expire, one after a week and one after a second, and a runbook on each.
      extraTargets: (ssh) =>
        (
          [
            ['slow-exp', '7d'],
            ['fast-exp', '1s'],
          ] as const
        )
          .map(([name, after]) =>
            targetYaml(ssh, name, ['review:', '  channel: CREVIEWS', `  expiresAfter: ${after}`, `  groups: [{ name: sre, users: [${ALICE}], approvals: 1 }]`]),
          )
          .join('\n'),
      extraYaml: () =>
        [
          'recipes:',
          '  say-hi:',
          '    target: sandbox',
          '    script: echo hi',
          'runbooks:',
          '  on-slow:',
          '    steps:',
          '      - { id: a, script: { target: slow-exp, script: "true" } }',
          '  on-fast:',
          '    steps:',
          '      - { id: a, script: { target: fast-exp, script: "true" } }',
        ].join('\n'),
    });
    api = await ApiClient.connect(h.app.url);
    for (const user of [AUTHOR, ALICE]) tokens[user] = (await createApiToken(h.database.db, user, user)).token;
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('lets only its author ask again for a rejected task', async () => {
    const created = await call(AUTHOR, 'POST', '/tasks', { target: 'web-prod', script: 'echo rejected once', message: 'try' });
    expect(created.status).toBe(201);
    const id = created.body.task.id as number;
    expect((await call(ALICE, 'POST', `/tasks/${id}/reject`, { reason: 'no' })).body.task.status).toBe('rejected');
    const before = await h.count('tasks');
    const byReviewer = await call(ALICE, 'POST', `/tasks/${id}/again`);
    expect(byReviewer.status).toBe(403);
    expect(byReviewer.body.error.message).toMatch(/was rejected and never ran as approved, so only its author can ask for it again/);
    expect(await h.count('tasks')).toBe(before);
    const byAuthor = await call(AUTHOR, 'POST', `/tasks/${id}/again`);
    expect(byAuthor.status).toBe(201);
  });

  it('refuses a runbook start whose card channel its user is not in, as POST /tasks does', async () => {
    const before = await h.count('tasks');
    const elsewhere = await call(AUTHOR, 'POST', '/runbooks/say-hi/start', { channel: 'CSOMEONEELSE' });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.error.code).toBe('not_in_channel');
    expect(await h.count('tasks')).toBe(before);
    const own = await call(AUTHOR, 'POST', '/runbooks/say-hi/start', {});
    expect(own.status).toBe(201);
  });

  it('marks the whole script posted only for the version that was uploaded', async () => {
    const [id] = await insertTaskRows(h.database.db, [{ status: 'pending-review', author: AUTHOR, target: 'web-prod', script: 'echo v2' }]);
    const { content_version: current } = await h.database.db('tasks').where({ id }).first('content_version');
    // The upload of an earlier version ends after an edit: the mark must not land.
    expect(await markReviewScriptPosted(h.database.db, 'tasks', id!, 'f'.repeat(64))).toBe(false);
    expect((await h.database.db('tasks').where({ id }).first('review_script_posted')).review_script_posted).toBe(false);
    expect(await markReviewScriptPosted(h.database.db, 'tasks', id!, current)).toBe(true);
    expect((await h.database.db('tasks').where({ id }).first('review_script_posted')).review_script_posted).toBe(true);
  });
  it('expires runs past their deadline even when runs still within a longer one wait longer', async () => {
    const start = async (reference: string) => {
      const started = await call(AUTHOR, 'POST', `/runbooks/${reference}/start`, {});
      expect(started.status).toBe(201);
      return started.body.run.id as number;
    };
    const waiting = [await start('on-slow'), await start('on-slow'), await start('on-slow')];
    const late = await start('on-fast');
    await new Promise((resolve) => setTimeout(resolve, 1300));
    // A batch of two: the three week-long runs, waiting longest, came first and hid the late one.
    expect(await h.app.runs.expireReviews(2)).toEqual([late]);
    const statuses = await h.database
      .db('runs')
      .whereIn('id', [...waiting, late])
      .orderBy('id')
      .pluck('status');
    expect(statuses).toEqual(['pending-review', 'pending-review', 'pending-review', 'rejected']);
  });
});
