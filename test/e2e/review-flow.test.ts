/**
 * The spine, end to end through signed Slack requests, real Postgres and a real sshd:
 * /task run -> card + review request -> refusals -> Approve -> Run -> output in the thread -> success.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsForTask } from '../../src/store/events.js';
import { ACTION } from '../../src/slack/render/blocks.js';
import { ALICE, AUTHOR, blocksText, buttonIds, Harness, MALLORY, TASKS_CHANNEL } from '../support/harness.js';

describe('a reviewed task from /task run to its output', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('walks the whole path with every rule enforced', async () => {
    // 1. The command is acknowledged ephemerally within 3 s with the new task's id.
    const ack = await h.command('run web-prod -m "check disk before deploy" ```\necho "hello from $(hostname)"\necho oops >&2\nexit 0\n```');
    expect(ack.status).toBe(200);
    expect(ack.ms).toBeLessThan(3000);
    expect(ack.json.response_type).toBe('ephemeral');
    expect(ack.json.text).toMatch(/Created \*#\d+\* on `web-prod`.*waits for review by \*sre\*/);
    const id = Number(/#(\d+)/.exec(ack.json.text)?.[1]);

    // 2. The card appears in the channel: id, author, target, script, message, status.
    const card = await h.card(id);
    const cardText = blocksText(card);
    expect(cardText).toContain(`<@${AUTHOR}>`);
    expect(cardText).toContain('`web-prod`');
    expect(cardText).toContain('check disk before deploy');
    expect(cardText).toContain('echo \\"hello from $(hostname)\\"');
    expect(cardText).toContain('waiting for review');
    expect(buttonIds(card)).toEqual([]);

    // 3. The review request, with Approve and Reject, in the review channel.
    const request = await h.reviewRequest(id);
    expect(buttonIds(request)).toEqual([ACTION.approve, ACTION.reject]);
    expect((await h.task(id))?.status).toBe('pending-review');

    // 4. Refusals: the author cannot approve; a non-member cannot approve; nothing changes.
    let seen = h.fake.responses.length;
    await h.click(request, ACTION.approve, AUTHOR);
    await h.click(request, ACTION.approve, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length >= seen + 2 || undefined, 5000, 'two refusals');
    // Each click is acked at once and answered when its check is done: the answers may cross.
    const refusals = h.responsesSince(seen);
    expect(refusals).toHaveLength(2);
    expect(refusals.some((text) => /You wrote #\d+, so you cannot review it/.test(text))).toBe(true);
    // MALLORY may not see the task: she learns nothing about it, not even its review groups.
    expect(refusals.some((text) => /There is no task #\d+\./.test(text))).toBe(true);
    expect(h.fake.responses.slice(seen).every((r) => (r.body as { response_type?: string }).response_type === 'ephemeral')).toBe(true);
    expect((await h.task(id))?.status).toBe('pending-review');
    expect(await h.count('reviews', { task_id: id })).toBe(0);

    // Nothing on a reviewed target runs before approval, whoever clicks Run: the card offers no
    // Run yet, and a Run sent anyway (an old or forged payload) is refused.
    seen = h.fake.responses.length;
    const forgedRun = {
      ...card,
      blocks: [
        ...(card.blocks ?? []),
        {
          type: 'actions',
          block_id: 'forged',
          elements: [{ type: 'button', action_id: ACTION.run, text: { type: 'plain_text', text: 'Run' }, value: String(id) }],
        },
      ],
    };
    await h.click(forgedRun, ACTION.run, AUTHOR);
    await h.click(forgedRun, ACTION.run, ALICE);
    await h.fake.waitFor(() => h.fake.responses.length >= seen + 2 || undefined, 5000, 'early run refusals');
    expect(h.responsesSince(seen)).toEqual([
      expect.stringMatching(/is waiting for review, so it cannot be run now/),
      expect.stringMatching(/is waiting for review, so it cannot be run now/),
    ]);
    expect((await h.task(id))?.status).toBe('pending-review');
    expect(await h.count('executions', { task_id: id })).toBe(0);

    // 5. A member approves (a double click acts once): the card shows who and when, and offers Run.
    await Promise.all([h.click(request, ACTION.approve, ALICE), h.click(request, ACTION.approve, ALICE)]);
    await h.waitForStatus(id, 'approved');
    expect(await h.count('reviews', { task_id: id })).toBe(1);
    const approvedCard = await h.card(id, `Approved by <@${ALICE}>`);
    expect(blocksText(approvedCard)).toMatch(/<!date\^\d+\^/);
    expect(buttonIds(approvedCard)).toEqual([ACTION.run]);
    const decidedRequest = await h.reviewRequest(id, 'approved');
    expect(buttonIds(decidedRequest)).toEqual([]);
    // approved is not ready: autoRun is off, so nothing runs until Run.
    expect(await h.count('executions', { task_id: id })).toBe(0);

    // 6. Run is refused to someone who is neither author nor reviewer; MALLORY may not even see
    // the task, so she is told it does not exist (who may run it is not hers to learn).
    seen = h.fake.responses.length;
    await h.click(approvedCard, ACTION.run, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'run refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/There is no task #\d+\./);
    expect((await h.task(id))?.status).toBe('approved');

    // 7. The author clicks Run twice: one run, output streams into the card's thread, success.
    await Promise.all([h.click(approvedCard, ACTION.run, AUTHOR), h.click(approvedCard, ACTION.run, AUTHOR)]);
    const done = await h.waitForStatus(id, ['success', 'failure']);
    expect(done.status).toBe('success');
    expect(done.result.exitCode).toBe(0);
    expect(done.result.durationMs).toBeGreaterThan(0);
    expect(await h.count('executions', { task_id: id })).toBe(1);

    const thread = await h.fake.waitFor(
      () => {
        // stdout and stderr may reach the thread in different writes: wait for both.
        const replies = h.fake.thread(TASKS_CHANNEL, card.ts);
        const text = replies.map((m) => m.text ?? '').join('\n');
        return text.includes('hello from') && text.includes('oops') ? replies : undefined;
      },
      10_000,
      'output in the thread',
    );
    const threadText = thread.map((m) => m.text).join('\n');
    expect(threadText).toContain('hello from');
    expect(threadText).toContain('oops');

    const finalCard = await h.card(id, 'success');
    expect(blocksText(finalCard)).toMatch(/exit code \*0\*/);
    expect(blocksText(finalCard)).toMatch(/in \d+(\.\d)?(ms|s)/);
    // A finished task offers Run again: the same script, asked for anew and reviewed again.
    expect(buttonIds(finalCard)).toEqual([ACTION.again]);

    // Postgres kept both streams.
    const streams = await h.database.db('output_chunks').select('stream', 'data').orderBy('id');
    expect(
      streams
        .filter((c) => c.stream === 'stdout')
        .map((c) => c.data)
        .join(''),
    ).toContain('hello from');
    expect(
      streams
        .filter((c) => c.stream === 'stderr')
        .map((c) => c.data)
        .join(''),
    ).toContain('oops');

    // 8. The audit trail has every decision and transition, in order.
    const types = (await eventsForTask(h.database.db, id)).map((e) => e.type);
    expect(types).toEqual(['task.created', 'task.pending-review', 'review.approved', 'task.approved', 'task.ready', 'task.running', 'task.success']);

    // A late click on the finished card changes nothing.
    seen = h.fake.responses.length;
    await h.click(approvedCard, ACTION.run, AUTHOR);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'late run refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/finished \(success\)/);
    expect(await h.count('executions', { task_id: id })).toBe(1);

    // Run again: refused to a stranger (who may not see the task, so it does not exist for her); the author gets a new task with the same script, waiting for review again.
    seen = h.fake.responses.length;
    await h.click(finalCard, ACTION.again, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'run again refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/There is no task #\d+\./);
    seen = h.fake.responses.length;
    await h.click(finalCard, ACTION.again, AUTHOR);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'run again answer');
    const againId = Number(/#(\d+)/.exec(h.responsesSince(seen)[0] ?? '')?.[1]);
    expect(againId).toBeGreaterThan(id);
    const again = await h.waitForStatus(againId, 'pending-review');
    expect(again.script).toBe(done.script);
    expect(await h.reviewRequest(againId)).toBeTruthy();
  });
});
