/** Reject asks for a reason in a modal; a rejected task shows who and why, and never runs. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, REJECT_REASON_BLOCK, REJECT_REASON_INPUT } from '../../src/slack/render/blocks.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, MALLORY, sleep } from '../support/harness.js';

describe('rejecting a task', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('opens a reason modal, shows the rejection on both messages, and never runs the task', async () => {
    const marker = `/tmp/countersign-rejected-${Date.now()}`;
    const id = await h.createTask(`run web-prod -m "cleanup" touch ${marker}`);
    const request = await h.reviewRequest(id);

    // Only reviewers get the modal; the author is told why, and an outsider (who may not see the
    // task) that there is no such task, ephemerally.
    const seen = h.fake.responses.length;
    await h.click(request, ACTION.reject, AUTHOR);
    await h.click(request, ACTION.reject, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length >= seen + 2 || undefined, 5000, 'refusals');
    // Each click is answered when its own check is done: the answers may cross.
    expect(h.responsesSince(seen)).toHaveLength(2);
    expect(h.responsesSince(seen)).toEqual(expect.arrayContaining([expect.stringMatching(/You wrote/), expect.stringMatching(/There is no task #\d+\./)]));
    expect(h.fake.views.list).toHaveLength(0);

    await h.click(request, ACTION.reject, ALICE);
    const modal = await h.fake.waitFor(() => h.fake.views.list[0], 5000, 'reject modal');
    const submitted = await h.driver.submitView({
      view: modal,
      user: ALICE,
      values: { [REJECT_REASON_BLOCK]: { [REJECT_REASON_INPUT]: 'Use the runbook <script> & ask in #ops first' } },
    });
    expect(submitted.status).toBe(200);
    expect(submitted.text).toBe('');

    const task = await h.waitForStatus(id, 'rejected');
    expect(task.status).toBe('rejected');
    const card = await h.card(id, 'Rejected by');
    expect(blocksText(card)).toContain(`Rejected by <@${ALICE}>`);
    // The reason is shown, escaped so it cannot inject markup.
    expect(blocksText(card)).toContain('Use the runbook &lt;script&gt; &amp; ask in #ops first');
    // No Run, ever: only its author may edit and resubmit it as a new task.
    expect(buttonIds(card)).toEqual([ACTION.resubmit]);
    const decided = await h.reviewRequest(id, 'Rejected by');
    expect(buttonIds(decided)).toEqual([]);

    // A second reviewer's late Approve on the old message is refused; nothing runs.
    const before = h.fake.responses.length;
    await h.click(request, ACTION.approve, BOB);
    await h.fake.waitFor(() => h.fake.responses.length > before || undefined, 5000, 'late approve refusal');
    expect(h.responsesSince(before)[0]).toMatch(/is rejected; it can no longer be reviewed/);

    await sleep(700); // longer than the runner's poll: had anything been queued, it would have started
    expect((await h.task(id))?.status).toBe('rejected');
    expect(await h.count('executions', { task_id: id })).toBe(0);
    expect(await h.count('output_chunks')).toBe(0);
    expect(h.ssh.sessionPids()).toEqual([]);
    const { existsSync } = await import('node:fs');
    expect(existsSync(marker)).toBe(false);
  });

  it('takes a rejection without a reason, and refuses a second rejection in the modal', async () => {
    const id = await h.createTask('run web-prod uptime');
    const request = await h.reviewRequest(id);
    await h.click(request, ACTION.reject, ALICE);
    await h.click(request, ACTION.reject, BOB);
    const [first, second] = await h.fake.waitFor(() => (h.fake.views.list.length >= 3 ? h.fake.views.list.slice(1, 3) : undefined), 5000, 'two modals');
    expect((await h.driver.submitView({ view: first!, user: ALICE })).status).toBe(200);
    await h.waitForStatus(id, 'rejected');
    const late = await h.driver.submitView({ view: second!, user: BOB });
    expect(late.json).toEqual({
      response_action: 'errors',
      errors: { [REJECT_REASON_BLOCK]: expect.stringMatching(/is rejected; it can no longer be reviewed/) },
    });
    const card = await h.card(id, 'Rejected by');
    expect(blocksText(card)).toContain('(no reason given)');
    expect(await h.count('reviews', { task_id: id })).toBe(1);
  });
});
