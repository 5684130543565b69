/**
 * Approvals bound to content (issue 10 point 3), through signed Slack requests and the API over
 * HTTP, on a real Postgres: an approval names the full SHA-256 content version its reviewer saw.
 * A stale Approve button, a forged or truncated one, one whose old 32-bit key an edit collided
 * with, and an API approve with an old ETag or none are all refused, and nothing is approved.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, MALLORY, TASKS_CHANNEL } from '../support/harness.js';

/** The 32-bit FNV-1a content key Approve buttons carried before content versions. */
function fnv1a(script: string, message: string | null): number {
  let hash = 0x811c9dc5;
  for (const ch of `${script}\u0000${message ?? ''}`) {
    hash ^= ch.codePointAt(0) ?? 0;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Two scripts, one harmless and one not, whose FNV-1a keys (with this message) collide. Found by
 * a birthday search over 2^17 random 10-character tags on each side, about a second's work: kept
 * here rather than searched for on each run, since blocking the event loop that long would
 * stall the app this test process also runs. The test checks that they do collide.
 */
const COLLISION = { message: 'routine check', harmless: 'echo harmless # QDFXXXTXTP', harmful: 'rm -rf /tmp/countersign-victim # PSMkIqrK0V' };

/** The message with its Approve button's value replaced: what a crafted click sends. */
function withApproveValue(message: FakeMessage, value: string): FakeMessage {
  const copy = structuredClone(message);
  for (const block of (copy.blocks ?? []) as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>) {
    for (const element of block.elements ?? []) if (element.action_id === ACTION.approve) element.value = value;
  }
  return copy;
}

const approveValue = (message: FakeMessage): string => {
  for (const block of (message.blocks ?? []) as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>) {
    for (const element of block.elements ?? []) if (element.action_id === ACTION.approve) return String(element.value);
  }
  throw new Error('no Approve button');
};

describe('approvals bound to the content version', () => {
  let h: Harness;
  let api: ApiClient;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    h = await Harness.start();
    api = await ApiClient.connect(h.app.url);
    for (const user of [AUTHOR, ALICE, BOB, MALLORY]) tokens[user] = (await createApiToken(h.database.db, user, user.toLowerCase())).token;
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  const as = (user: string) => ({
    get: (path: string) => api.call('GET', path, { token: tokens[user]! }),
    post: (path: string, body?: unknown, headers?: Record<string, string>) =>
      api.call('POST', path, { token: tokens[user]!, ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) }),
    patch: (path: string, body: unknown, headers?: Record<string, string>) =>
      api.call('PATCH', path, { token: tokens[user]!, body, ...(headers ? { headers } : {}) }),
  });

  async function refusalAfter(click: () => Promise<unknown>): Promise<string> {
    const seen = h.fake.responses.length;
    await click();
    await h.fake.waitFor(() => h.responsesSince(seen).length > 0 || undefined, 5000, 'an ephemeral refusal');
    return h.responsesSince(seen)[0]!;
  }

  it('refuses a stale Approve button after an edit whose old 32-bit key collides, and any button short of the full SHA-256', async () => {
    const { message, harmless, harmful } = COLLISION;
    const key = fnv1a(harmless, message).toString(36);
    expect(fnv1a(harmful, message).toString(36)).toBe(key);

    const created = await as(AUTHOR).post('/tasks', { target: 'web-prod', script: harmless, message, channel: TASKS_CHANNEL });
    expect(created.status).toBe(201);
    const id: number = created.body.task.id;
    const drawnVersion: string = created.body.task.contentVersion;
    const seenByAlice = await h.reviewRequest(id, harmless);
    expect(approveValue(seenByAlice)).toBe(`${id}:${drawnVersion}`);
    expect(drawnVersion).toMatch(/^[0-9a-f]{64}$/);

    // The author swaps in the harmful script while Alice reads the harmless one.
    const edited = await as(AUTHOR).patch(`/tasks/${id}`, { script: harmful });
    expect(edited.status).toBe(200);
    const currentVersion: string = edited.body.task.contentVersion;
    expect(currentVersion).not.toBe(drawnVersion);

    // Alice's button, drawn before the edit: refused, clearly and only to her.
    expect(await refusalAfter(() => h.click(seenByAlice, ACTION.approve, ALICE))).toMatch(
      /#\d+ changed since this request was drawn; the request now shows the new version/,
    );
    // What a button of the old scheme would carry (equal for both scripts), a prefix of the
    // current version, the version in upper case, or no version at all: none is the version.
    for (const forged of [
      `${id}:${key}`,
      `${id}:${currentVersion.slice(0, 16)}`,
      `${id}:${currentVersion.toUpperCase()}`,
      `${id}:${currentVersion} `,
      String(id),
    ]) {
      expect(await refusalAfter(() => h.click(withApproveValue(seenByAlice, forged), ACTION.approve, ALICE))).toMatch(/changed since this request was drawn/);
    }
    expect((await h.task(id))?.status).toBe('pending-review');
    expect(await h.count('reviews', { task_id: id })).toBe(0);

    // The request is redrawn with the new script and the new version; approving that is approving what runs.
    const redrawn = await h.reviewRequest(id, 'countersign-victim');
    expect(approveValue(redrawn)).toBe(`${id}:${currentVersion}`);
    expect(blocksText(redrawn)).toContain(`Version \`${currentVersion.slice(0, 12)}\``);
    await h.click(redrawn, ACTION.approve, ALICE);
    await h.waitForStatus(id, 'approved');
    const reviews = await h.database.db('reviews').where({ task_id: id });
    expect(reviews).toEqual([expect.objectContaining({ user_id: ALICE, verdict: 'approve', content_version: currentVersion })]);
    const audit = await h.database.db('events').where({ task_id: id }).orderBy('id').select('type', 'data');
    expect(audit.find((e) => e.type === 'task.updated')?.data).toEqual({ fields: ['script'], contentVersion: currentVersion, previousVersion: drawnVersion });
    expect(audit.find((e) => e.type === 'review.approved')?.data).toEqual({ contentVersion: currentVersion });
  });

  it('API: GET shows uptime, the author PATCHes rm -rf, the old ETag approves nothing (412), no If-Match is 428', async () => {
    const created = await as(AUTHOR).post('/tasks', { target: 'web-prod', script: 'uptime', message: 'load check', channel: TASKS_CHANNEL });
    const id: number = created.body.task.id;
    expect(created.headers.get('etag')).toBe(`"${created.body.task.contentVersion}"`);

    const read = await as(ALICE).get(`/tasks/${id}`);
    expect(read.status).toBe(200);
    expect(read.body.task.script).toBe('uptime');
    const etag = read.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(etag).toBe(`"${read.body.task.contentVersion}"`);

    const swapped = await as(AUTHOR).patch(`/tasks/${id}`, { script: 'rm -rf /srv/data' });
    expect(swapped.status).toBe(200);
    expect(swapped.headers.get('etag')).not.toBe(etag);

    const stale = await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': etag });
    expect(stale.status).toBe(412);
    expect(stale.body.error.code).toBe('precondition_failed');
    const missing = await as(ALICE).post(`/tasks/${id}/approve`);
    expect(missing.status).toBe(428);
    expect(missing.body.error.code).toBe('precondition_required');
    expect(missing.body.error.message).toMatch(/If-Match/);
    expect((await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': '*' })).status).toBe(428);
    // Strong comparison: the right version as a weak tag matches nothing.
    expect((await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': `W/${swapped.headers.get('etag')}` })).status).toBe(412);
    const malformed = await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': read.body.task.contentVersion });
    expect(malformed.status).toBe(400);
    expect((await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': `${etag}, ${swapped.headers.get('etag')}` })).status).toBe(400);
    expect((await h.task(id))?.status).toBe('pending-review');
    expect(await h.count('reviews', { task_id: id })).toBe(0);

    // Read again, then approve what runs.
    const again = await as(ALICE).get(`/tasks/${id}`);
    expect(again.body.task.script).toBe('rm -rf /srv/data');
    const approved = await as(ALICE).post(`/tasks/${id}/approve`, undefined, { 'If-Match': again.headers.get('etag')! });
    expect(approved.status).toBe(200);
    expect(approved.body.task.status).toBe('approved');
    const decided = await as(ALICE).get(`/tasks/${id}`);
    expect(decided.body.task.reviews).toEqual([expect.objectContaining({ userId: ALICE, verdict: 'approve', contentVersion: again.body.task.contentVersion })]);
  });

  it('API: a PATCH with an If-Match that is no longer current changes nothing (412); after the first decision edits are refused (409)', async () => {
    const created = await as(AUTHOR).post('/tasks', { target: 'web-prod', script: 'echo one', message: 'v1', channel: TASKS_CHANNEL });
    const id: number = created.body.task.id;
    const first = created.headers.get('etag')!;
    const second = await as(AUTHOR).patch(`/tasks/${id}`, { message: 'v2' }, { 'If-Match': first });
    expect(second.status).toBe(200);
    // The message is part of what reviewers approve: it changes the version too.
    expect(second.headers.get('etag')).not.toBe(first);
    const lost = await as(AUTHOR).patch(`/tasks/${id}`, { script: 'echo lost update' }, { 'If-Match': first });
    expect(lost.status).toBe(412);
    expect(lost.body.error.code).toBe('precondition_failed');
    expect((await h.task(id))?.script).toBe('echo one');
    // Someone else's If-Match reveals nothing: the author check comes first (403; 404 once tasks
    // one may not see answer as if they did not exist).
    expect([403, 404]).toContain((await as(MALLORY).patch(`/tasks/${id}`, { script: 'echo x' }, { 'If-Match': first })).status);
    expect((await h.task(id))?.message).toBe('v2');

    const rejected = await as(BOB).post(`/tasks/${id}/reject`, { reason: 'not now' });
    expect(rejected.status).toBe(200);
    const late = await as(AUTHOR).patch(`/tasks/${id}`, { script: 'echo after' }, { 'If-Match': rejected.headers.get('etag')! });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('not_editable');
  });

  it('App Home Approve buttons carry the full version too, and a stale one is refused', async () => {
    const id = await h.createTask('run web-prod -m "from home" echo home-v1');
    await h.driver.event({ event: { type: 'app_home_opened', user: ALICE, channel: 'DALICE', tab: 'home', event_ts: `${Date.now() / 1000}` } });
    const home = await h.fake.waitFor(
      () => {
        const view = h.fake.homeOf(ALICE);
        return view && JSON.stringify(view.blocks).includes(`Approve #${id}`) ? structuredClone(view) : undefined;
      },
      5000,
      'Alice’s Home with the task',
    );
    const version = (await h.task(id))!.contentVersion;
    expect(JSON.stringify(home.blocks)).toContain(`"value":"${id}:${version}"`);
    expect((await as(AUTHOR).patch(`/tasks/${id}`, { script: 'echo home-v2' })).status).toBe(200);
    await h.driver.clickViewButton({ view: home, actionId: ACTION.approve, user: ALICE, value: String(id) });
    await h.fake.waitFor(
      () => JSON.stringify(h.fake.homeOf(ALICE)?.blocks ?? []).includes('changed since this request was drawn') || undefined,
      5000,
      'the refusal on Home',
    );
    expect((await h.task(id))?.status).toBe('pending-review');
    expect(await h.count('reviews', { task_id: id })).toBe(0);
  });

  it('names the interpreter beside Approve: a Python script on a bash target is shown as Python, in the request and on Home', async () => {
    const id = await h.createTask('run web-prod -t python3 -m "rotate logs" ```\n"' + '"":"\necho rotating; exit 0\n"' + '""\nprint("PY-RAN")\n```');
    expect((await h.task(id))?.type).toBe('python3');
    const request = await h.reviewRequest(id);
    expect(blocksText(request)).toContain('Runs as *python3* on `web-prod`');
    await h.driver.event({ event: { type: 'app_home_opened', user: BOB, channel: 'DBOB', tab: 'home', event_ts: `${Date.now() / 1000}` } });
    const home = await h.fake.waitFor(
      () => {
        const view = h.fake.homeOf(BOB);
        return view && JSON.stringify(view.blocks).includes(`#${id}`) ? view : undefined;
      },
      5000,
      'Bob’s Home with the task',
    );
    expect(JSON.stringify(home.blocks)).toContain('Runs as *python3*');
    expect(JSON.stringify(home.blocks)).toContain('*Why* rotate logs');
  });
});
