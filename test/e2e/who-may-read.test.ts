/**
 * Who may read a task and its output (issue 10, point 6), through the real surfaces: signed
 * Slack commands, the HTTP API with tokens, the task page. Its author, the target's reviewers,
 * the target's viewers (listed or through a Slack user group), admins, and members of the
 * channel its card is in see it; anybody else gets what they would get for a task that does
 * not exist, so ids cannot be probed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { appendEvent } from '../../src/store/events.js';
import { SCAN_LIMIT } from '../../src/service/taskQueries.js';
import { ApiClient } from '../support/apiClient.js';
import { insertTaskRows } from '../support/taskRows.js';
import { ALICE, AUTHOR, blocksText, Harness, MALLORY, TASKS_CHANNEL } from '../support/harness.js';

const CAROL = 'UCAROL'; // in the channel the cards go to, nothing else
const VICTOR = 'UVICTOR'; // a listed viewer of `watched`
const GWEN = 'UGWEN'; // a viewer of `watched` through the Slack user group
const ADAM = 'UADAM'; // an admin
const WATCHERS = 'SWATCHERS';

describe('who may read a task', () => {
  let h: Harness;
  let api: ApiClient;
  const tokens: Record<string, string> = {};
  /** A task with a card in the tasks channel, on a target with viewers, with output. */
  let carded = 0;
  /** The same kind of task without a card (made through the API without a channel). */
  let uncarded = 0;
  /** A task on web-prod, waiting for Alice's review. */
  let reviewed = 0;
  let execution = 0;

  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) =>
        [
          '  watched:',
          '    description: Viewers may read it',
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "${ssh.knownHosts}"`,
          `    viewers: { users: [${VICTOR}], usergroup: ${WATCHERS} }`,
        ].join('\n'),
      extraYaml: () => `admins:\n  users: [${ADAM}]\n`,
    });
    h.fake.setChannelMembers(TASKS_CHANNEL, [AUTHOR, CAROL]);
    h.fake.setUsergroup(WATCHERS, [GWEN]);
    api = await ApiClient.connect(h.app.url);
    for (const user of [AUTHOR, ALICE, MALLORY, CAROL, VICTOR, GWEN, ADAM]) tokens[user] = (await createApiToken(h.database.db, user, user)).token;

    carded = await h.createTask('run watched -m "classified work" echo classified-output');
    const created = await h.app.service.create({
      author: AUTHOR,
      target: 'watched',
      message: 'no card',
      type: null,
      script: 'echo uncarded-output',
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    uncarded = created.task.id;
    reviewed = await h.createTask('run web-prod -m "needs eyes" echo reviewed-output');
    await Promise.all([h.waitForStatus(carded, 'success'), h.waitForStatus(uncarded, 'success')]);
    execution = Number((await h.database.db('executions').where({ task_id: carded }).first('id'))?.id);
  });
  afterAll(async () => {
    await h.stop();
  });

  const as = (user: string) => ({
    get: (path: string, headers?: Record<string, string>) => api.call('GET', path, { token: tokens[user]!, ...(headers ? { headers } : {}) }),
    post: (path: string, body?: unknown) => api.call('POST', path, { token: tokens[user]!, ...(body !== undefined ? { body } : {}) }),
  });
  const say = async (text: string, user: string, channel = 'CELSEWHERE') =>
    blocksText((await h.command(text, user, { channel })).json as { text?: string; blocks?: unknown[] });
  /** The answer with the task id written as #N, to compare with the answer about a task that does not exist. */
  const anonymous = (text: string, id: number) => text.replaceAll(`#${id}`, '#N');

  describe('in Slack', () => {
    it('tells a stranger there is no such task, for show and logs, from any channel, and lists none of it', async () => {
      for (const channel of [TASKS_CHANNEL, 'CELSEWHERE']) {
        const shown = await say(`show ${carded}`, MALLORY, channel);
        expect(anonymous(shown, carded)).toBe(anonymous(await say('show 99999', MALLORY, channel), 99999));
        expect(shown).not.toContain('classified');
        const logs = await say(`logs ${carded}`, MALLORY, channel);
        expect(anonymous(logs, carded)).toBe(anonymous(await say('logs 99999', MALLORY, channel), 99999));
        expect(logs).not.toContain('classified-output');
      }
      for (const scope of ['all', 'running', 'mine', 'pending']) {
        const list = await say(`list ${scope}`, MALLORY);
        for (const id of [carded, uncarded, reviewed]) expect(list, `list ${scope}`).not.toContain(`*#${id}*`);
      }
    });

    it('shows a member of the card’s channel that task (asked from anywhere), but not one whose card is elsewhere', async () => {
      expect(await say(`show ${carded}`, CAROL)).toContain('classified work');
      expect(await say(`logs ${carded}`, CAROL)).toContain('classified-output');
      const all = await say('list all', CAROL);
      expect(all).toContain(`*#${carded}*`);
      expect(all).toContain(`*#${reviewed}*`); // its card is in the channel too
      expect(all).not.toContain(`*#${uncarded}*`);
      expect(await say(`logs ${uncarded}`, CAROL)).toContain(`There is no task #${uncarded}`);
    });

    it('shows a target’s viewers (listed or through a user group) its tasks, reviewers theirs, and admins everything', async () => {
      for (const viewer of [VICTOR, GWEN]) {
        expect(await say(`logs ${uncarded}`, viewer)).toContain('uncarded-output');
        expect(await say(`show ${reviewed}`, viewer)).toContain(`There is no task #${reviewed}`);
      }
      expect(await say(`show ${reviewed}`, ALICE)).toContain('needs eyes');
      expect(await say(`logs ${carded}`, ALICE)).toContain(`There is no task #${carded}`);
      const everything = await say('list all', ADAM);
      for (const id of [carded, uncarded, reviewed]) expect(everything).toContain(`*#${id}*`);
      expect(await say(`logs ${uncarded}`, ADAM)).toContain('uncarded-output');
    });
  });

  describe('through the API', () => {
    it('answers a stranger 404, as for a task that does not exist: task, executions, execution, log with Range or follow', async () => {
      const stranger = as(MALLORY);
      const missing = await stranger.get('/tasks/99999');
      const hidden = await stranger.get(`/tasks/${carded}`);
      expect(hidden.status).toBe(404);
      expect(anonymous(hidden.text, carded)).toBe(anonymous(missing.text, 99999));
      expect(hidden.text).not.toContain('classified');
      expect((await stranger.get(`/tasks/${carded}/executions`)).status).toBe(404);
      const hiddenExecution = await stranger.get(`/executions/${execution}`);
      expect(hiddenExecution.status).toBe(404);
      expect(hiddenExecution.text.replaceAll(String(execution), 'N')).toBe((await stranger.get('/executions/99999')).text.replaceAll('99999', 'N'));
      for (const headers of [undefined, { range: 'bytes=0-5' }]) {
        const log = await stranger.get(`/tasks/${carded}/log`, headers);
        expect(log.status).toBe(404);
        expect(log.text).not.toContain('classified-output');
      }
      const follow = await fetch(`${api.baseUrl}/tasks/${carded}/log?follow=1`, { headers: { authorization: `Bearer ${tokens[MALLORY]}` } });
      expect(follow.status).toBe(404);
      expect(follow.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await follow.text()).not.toContain('classified-output');

      const listed = await stranger.get('/tasks?limit=200');
      expect(listed.status).toBe(200);
      expect(listed.body.tasks.map((t: { id: number }) => t.id)).not.toEqual(expect.arrayContaining([carded]));
      expect(listed.body.tasks.every((t: { author: string }) => t.author === MALLORY)).toBe(true);
    });

    it('answers a stranger’s changes to a task as for a task that does not exist, and refuses one who sees it but may not act', async () => {
      const missing = await as(MALLORY).post('/tasks/99999/reject', { reason: 'x' });
      expect(missing.status).toBe(404);
      for (const action of ['approve', 'reject', 'start', 'stop']) {
        const hidden = await as(MALLORY).post(`/tasks/${reviewed}/${action}`, action === 'reject' ? { reason: 'x' } : undefined);
        expect(hidden.status, action).toBe(404);
        expect(anonymous(hidden.text, reviewed), action).toBe(anonymous(missing.text, 99999));
      }
      const stop = await as(MALLORY).post(`/executions/${execution}/stop`);
      expect(stop.status).toBe(404);
      expect(stop.text.replaceAll(String(execution), 'N')).toBe((await as(MALLORY).post('/executions/99999/stop')).text.replaceAll('99999', 'N'));
      expect((await h.task(reviewed))?.status).toBe('pending-review');
      // Carol sees it (its card is in her channel) but reviews nothing: told why, as before.
      const refused = await as(CAROL).post(`/tasks/${reviewed}/reject`, { reason: 'x' });
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe('not_reviewer');
      // In Slack too, a stranger's kill learns nothing.
      expect(anonymous(await say(`kill ${carded}`, MALLORY), carded)).toBe(anonymous(await say('kill 99999', MALLORY), 99999));
    });

    it('lets the channel member, the viewers and the admin read it, the log and its live stream included', async () => {
      for (const user of [AUTHOR, CAROL, VICTOR, GWEN, ADAM]) {
        const got = await as(user).get(`/tasks/${carded}`);
        expect(got.status, user).toBe(200);
        expect((await as(user).get(`/tasks/${carded}/log`)).text, user).toBe('classified-output\n');
        expect((await as(user).get(`/executions/${execution}`)).status, user).toBe(200);
      }
      const follow = await fetch(`${api.baseUrl}/tasks/${carded}/log?follow=1`, { headers: { authorization: `Bearer ${tokens[CAROL]}` } });
      expect(follow.status).toBe(200);
      expect(await follow.text()).toContain('classified-output');
      // The channel does not reach a task whose card is elsewhere; the viewers do.
      expect((await as(CAROL).get(`/tasks/${uncarded}`)).status).toBe(404);
      expect((await as(GWEN).get(`/tasks/${uncarded}/log`)).text).toBe('uncarded-output\n');
      const carolsList = (await as(CAROL).get('/tasks?limit=200')).body.tasks.map((t: { id: number }) => t.id);
      expect(carolsList).toContain(carded);
      expect(carolsList).not.toContain(uncarded);
    });

    it('shows an event when its task may be seen, and events about no task to admins only', async () => {
      await appendEvent(h.database.db, { taskId: null, type: 'schedule.created', actor: AUTHOR, data: { schedule: 1 } });
      const hidden = await as(MALLORY).get(`/events?task=${carded}`);
      expect(hidden.status).toBe(200);
      expect(hidden.body.events).toEqual([]);
      const strangers = (await as(MALLORY).get('/events?limit=200')).body.events as Array<{ taskId: number | null; type: string }>;
      expect(strangers.filter((e) => e.taskId !== null && [carded, uncarded, reviewed].includes(e.taskId))).toEqual([]);
      expect(strangers.some((e) => e.taskId === null)).toBe(false);

      const carols = (await as(CAROL).get(`/events?task=${carded}`)).body.events as Array<{ type: string }>;
      expect(carols.map((e) => e.type)).toContain('task.success');
      // Even the author of the schedule event sees it only as an admin would: it is about no task.
      const authors = (await as(AUTHOR).get('/events?limit=200')).body.events as Array<{ taskId: number | null }>;
      expect(authors.some((e) => e.taskId === null)).toBe(false);
      expect(authors.some((e) => e.taskId === carded)).toBe(true);
      const admins = (await as(ADAM).get('/events?type=schedule.created')).body.events as Array<{ taskId: number | null }>;
      expect(admins).toHaveLength(1);
    });
  });

  describe('the task page', () => {
    it('opens for a token whose user may see the task, answers 404 to another, and opens for any holder of its signed link', async () => {
      const page = (user: string, id = carded) => fetch(`${h.app.url}/tasks/${id}`, { headers: { authorization: `Bearer ${tokens[user]}` } });
      const shown = await page(CAROL);
      expect(shown.status).toBe(200);
      expect(await shown.text()).toContain('classified-output');
      const hidden = await page(MALLORY);
      expect(hidden.status).toBe(404);
      const hiddenHtml = await hidden.text();
      expect(hiddenHtml).not.toContain('classified');
      const missing = await (await page(MALLORY, 99999)).text();
      const same = (html: string, id: number) => html.replaceAll(`task #${id}.`, 'task #N.').replace(/nonce-[^']+'|nonce="[^"]+"/g, '');
      expect(same(hiddenHtml, carded)).toBe(same(missing, 99999));
      expect((await fetch(`${h.app.url}/tasks/${carded}/stream`, { headers: { authorization: `Bearer ${tokens[MALLORY]}` } })).status).toBe(404);
      // The card's link is a capability for that task alone: no token needed, and no other task.
      const link = h.app.signer.taskUrl(carded);
      expect((await fetch(link)).status).toBe(200);
      expect((await fetch(link.replace(`/tasks/${carded}?`, `/tasks/${uncarded}?`))).status).toBe(403);
    });
  });

  describe('lists at scale', () => {
    it('fills a page from the tasks the user may see, and never reads more than the bound per request', async () => {
      const db = h.database.db;
      const row = (author: string, script: string) => ({ status: 'success', author, target: 'sandbox', script });
      const [oldest] = await insertTaskRows(db, [row(MALLORY, 'echo oldest')]);
      // More tasks she may not see than one request reads.
      await insertTaskRows(
        db,
        Array.from({ length: SCAN_LIMIT + 100 }, (_, i) => row('USOMEONE', `echo ${i}`)),
      );
      const [a, b, c] = await insertTaskRows(db, [row(MALLORY, 'echo a'), row(MALLORY, 'echo b'), row(MALLORY, 'echo c')]);

      const stranger = as(MALLORY);
      const page1 = await stranger.get('/tasks?limit=2');
      expect(page1.body.tasks.map((t: { id: number }) => t.id)).toEqual([c, b]);
      expect(page1.body.nextCursor).toBe(String(b));
      // The next request reaches its bound before it finds another: what it has, and where to go on.
      const page2 = await stranger.get(`/tasks?limit=2&cursor=${page1.body.nextCursor}`);
      expect(page2.body.tasks.map((t: { id: number }) => t.id)).toEqual([a]);
      expect(page2.body.nextCursor).not.toBeNull();
      expect(Number(page2.body.nextCursor)).toBeLessThan(a!);
      const page3 = await stranger.get(`/tasks?limit=2&cursor=${page2.body.nextCursor}`);
      expect(page3.body.tasks.map((t: { id: number }) => t.id)).toEqual([oldest]);
      expect(page3.body.nextCursor).toBeNull();

      // An admin's list is one query: full pages.
      const admin = await as(ADAM).get('/tasks?limit=5');
      expect(admin.body.tasks).toHaveLength(5);
      expect(admin.body.nextCursor).not.toBeNull();
      // In Slack, a list that found nothing within its bound says it looked only so far back.
      expect(await say('list all', CAROL)).toContain('None you may see among the most recent tasks');
      expect(await say('list all', MALLORY)).toContain(`*#${c}*`);
    });
  });
});
