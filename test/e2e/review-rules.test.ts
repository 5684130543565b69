/**
 * Review rules beyond the happy path: several groups with their own counts, reviewers in two
 * groups, races between reviewers and between clicks (at the use-case level, so the requests
 * really overlap), reviews that could never complete, and scripts too long for the request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, REVIEW_CHANNEL, sleep } from '../support/harness.js';

const CAROL = 'UCAROL';
const DAVE = 'UDAVE';

describe('review rules', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) => {
        const host = `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`;
        const sshBlock = `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`;
        return [
          '  db-prod:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${REVIEW_CHANNEL}`,
          '      groups:',
          `        - { name: sre, users: [${ALICE}, ${BOB}], approvals: 1 }`,
          `        - { name: dba, users: [${CAROL}, ${DAVE}, ${BOB}], approvals: 2 }`,
          // Its own review channel: the races above queue many requests at Slack's ~1 post/s in CREVIEW.
          '  scripts:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          '      channel: CSCRIPTS',
          `      groups: [{ name: sre, users: [${ALICE}], approvals: 1 }]`,
          '  solo:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${REVIEW_CHANNEL}`,
          `      groups: [{ name: just-me, users: [${AUTHOR}], approvals: 1 }]`,
        ].join('\n');
      },
    });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('needs every group to reach its own count, and shows each group’s progress', async () => {
    const id = await h.createTask('run db-prod -m "two groups" uptime');
    const request = await h.reviewRequest(id);
    expect(blocksText(request)).toContain(':white_circle: *sre* 0/1   :white_circle: *dba* 0/2');

    await h.click(request, ACTION.approve, ALICE);
    await h.reviewRequest(id, ':white_check_mark: *sre* 1/1   :white_circle: *dba* 0/2');
    await h.click(request, ACTION.approve, CAROL);
    await h.reviewRequest(id, ':white_check_mark: *sre* 1/1   :white_circle: *dba* 1/2');
    expect((await h.task(id))?.status).toBe('pending-review');

    await h.click(request, ACTION.approve, DAVE);
    await h.waitForStatus(id, 'approved');
    const card = await h.card(id, ':white_check_mark: *dba* 2/2');
    expect(buttonIds(card)).toEqual([ACTION.run]);
  });

  it('counts a reviewer in two groups for both', async () => {
    const id = await h.createTask('run db-prod -m "bob counts twice" uptime');
    const request = await h.reviewRequest(id);
    await h.click(request, ACTION.approve, BOB);
    await h.reviewRequest(id, ':white_check_mark: *sre* 1/1   :white_circle: *dba* 1/2');
    await h.click(request, ACTION.approve, CAROL);
    expect((await h.waitForStatus(id, 'approved')).status).toBe('approved');
  });

  it('approves exactly once when the last two approvals race', async () => {
    for (let round = 0; round < 8; round++) {
      const id = await h.createTask(`run db-prod -m "race ${round}" uptime`);
      await h.app.service.approve(id, ALICE);
      const results = await Promise.all([h.app.service.approve(id, CAROL), h.app.service.approve(id, DAVE)]);
      expect(results.every((r) => r.ok)).toBe(true);
      expect((await h.task(id))?.status).toBe('approved');
      expect(await h.count('events', { task_id: id, type: 'task.approved' })).toBe(1);
      expect(await h.count('reviews', { task_id: id })).toBe(3);
    }
  });

  it('lets one of a racing approve and reject win, never both', async () => {
    for (let round = 0; round < 8; round++) {
      const id = await h.createTask(`run web-prod -m "tug ${round}" uptime`);
      const [approve, reject] = await Promise.all([h.app.service.approve(id, ALICE), h.app.service.reject(id, BOB, 'no')]);
      expect([approve.ok, reject.ok].filter(Boolean)).toHaveLength(1);
      const status = (await h.task(id))?.status;
      expect(status).toBe(approve.ok ? 'approved' : 'rejected');
      const decided = (await h.count('events', { task_id: id, type: 'task.approved' })) + (await h.count('events', { task_id: id, type: 'task.rejected' }));
      expect(decided).toBe(1);
    }
  });

  it('starts exactly one run when Run arrives many times at once', async () => {
    const id = await h.createTask('run web-prod -m "click storm" uptime');
    await h.app.service.approve(id, ALICE);
    const results = await Promise.all(Array.from({ length: 12 }, () => h.app.service.run(id, AUTHOR)));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok).every((r) => !r.ok && /cannot be run now/.test(r.message))).toBe(true);
    await h.waitForStatus(id, ['success', 'failure']);
    expect(await h.count('events', { task_id: id, type: 'task.ready' })).toBe(1);
    expect(await h.count('executions', { task_id: id })).toBe(1);
  });

  it('refuses a task whose review could never complete, creating nothing', async () => {
    const before = await h.count('tasks');
    const response = await h.command('run solo -m "only I review this" uptime');
    expect(response.json.text).toMatch(/could never be approved: \*just-me\* would need approvals from people other than you/);
    expect(await h.count('tasks')).toBe(before);
    // Someone else may ask for it: the author's colleague is the only reviewer, and counts.
    const other = await h.command('run solo -m "you review" uptime', ALICE);
    expect(other.json.text).toMatch(/Created \*#\d+\*/);
  });

  it('puts the whole script in the review request’s thread when it is too long to show', async () => {
    const lines = Array.from({ length: 400 }, (_, i) => `echo "step ${i}: $(date +%s)"`);
    const id = await h.createTask(`run scripts -m "long script" \`\`\`\n${lines.join('\n')}\n\`\`\``);
    const request = await h.fake.waitFor(() => h.fake.messages('CSCRIPTS').find((m) => blocksText(m).includes(`*#${id}*`)), 10_000, 'review request');
    const version = (await h.task(id))!.contentVersion.slice(0, 12);
    expect(blocksText(request)).toContain(`the whole script, version \`${version}\`, is in this thread`);
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.thread_ts === request.ts), 10_000, 'script file in the review thread');
    expect(file.content.toString('utf8')).toBe(lines.join('\n'));
    expect(file.channel_id).toBe('CSCRIPTS');
    // Recorded right after the upload lands (the fake shows the file first).
    const deadline = Date.now() + 5000;
    while (!(await h.task(id))?.reviewScriptPosted && Date.now() < deadline) await sleep(25);
    expect((await h.task(id))?.reviewScriptPosted).toBe(true);
    expect(file.filename).toBe(`task-${id}-script-${version}.sh`);

    // Edited before any decision: the thread gets the new version's file, named by its version,
    // and says the other one is void; the request names the version Approve now covers.
    const edited = [...lines.slice(0, 399), 'echo "EVIL-TAIL-RAN"'];
    expect(await h.app.service.update(id, AUTHOR, { script: edited.join('\n') })).toMatchObject({ ok: true });
    const newVersion = (await h.task(id))!.contentVersion.slice(0, 12);
    const second = await h.fake.waitFor(
      () => h.fake.files.find((f) => f.thread_ts === request.ts && f !== file),
      45_000,
      'the edited script in the review thread',
    );
    expect(second.content.toString('utf8')).toContain('EVIL-TAIL-RAN');
    expect(second.filename).toBe(`task-${id}-script-${newVersion}.sh`);
    expect(second.title).toContain(`version ${newVersion}`);
    expect(second.initial_comment).toContain('any other script file in this thread is an earlier version and is void');
    expect(file.title).toContain(`version ${version}`);
    const redrawn = await h.fake.waitFor(
      () => {
        const message = h.fake.messages('CSCRIPTS').find((m) => m.ts === request.ts);
        return message && blocksText(message).includes(`version \`${newVersion}\``) ? message : undefined;
      },
      45_000,
      'the request redrawn with the new version',
    );
    expect(blocksText(redrawn)).not.toContain(`version \`${version}\``);
    // The earlier tests of this file spent the workspace's chat.update budget: the redraw queues behind them.
  }, 90_000);
});
