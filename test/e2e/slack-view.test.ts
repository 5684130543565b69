/**
 * Slack is a view of Postgres: when Slack refuses or rate-limits a call, the task's state is
 * still right and the messages catch up. Output in the thread is paced and stays inside Slack's
 * limits; output too long for a message is uploaded whole as a file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { LOG_MESSAGE_CHARS } from '../../src/slack/render/threadLog.js';
import { ALICE, blocksText, Harness, TASKS_CHANNEL } from '../support/harness.js';

describe('Slack as a view of Postgres', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('posts the card late when Slack rate-limits the first post, without duplicating it', async () => {
    h.fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const id = await h.createTask('run web-prod -m "rate limited" uptime');
    expect((await h.task(id))?.status).toBe('pending-review');
    await h.reviewRequest(id);
    const card = await h.card(id);
    expect(blocksText(card)).toContain('waiting for review');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(h.fake.messages(TASKS_CHANNEL).filter((m) => blocksText(m).includes(`*#${id}*`))).toHaveLength(1);
    expect(h.fake.callsTo('chat.postMessage').some((c) => c.status === 429)).toBe(true);
  });

  it('catches the card up after a failed update', async () => {
    const id = await h.createTask('run web-prod -m "update fails" uptime');
    const request = await h.reviewRequest(id);
    await h.card(id);
    h.fake.failNext('chat.update', { error: 'internal_error' }, 2);
    await h.click(request, ACTION.approve, ALICE);
    expect((await h.waitForStatus(id, 'approved')).status).toBe('approved');
    const card = await h.card(id, `Approved by <@${ALICE}>`);
    expect(blocksText(card)).toContain(':white_check_mark: approved');
    expect(h.fake.callsTo('chat.update').filter((c) => c.response.ok === false).length).toBeGreaterThanOrEqual(1);
  });

  it('tells the author when the card cannot be posted in their channel, and posts it once it can', async () => {
    h.fake.failNext('chat.postMessage', { error: 'not_in_channel' }, 2);
    const before = h.fake.responses.length;
    const id = await h.createTask('run sandbox -m "no card yet" echo card-later');
    await h.fake.waitFor(() => h.fake.responses.length > before || undefined, 5000, 'warning to the author');
    expect(h.responsesSince(before)[0]).toMatch(/was created, but I could not post its card here \(`not_in_channel`\)/);
    expect((await h.waitForStatus(id, ['success', 'failure'])).status).toBe('success');
    const card = await h.card(id, 'success');
    expect(blocksText(card)).toMatch(/exit code \*0\*/);
    // The output reached the thread once the card existed.
    await h.fake.waitFor(() => h.fake.thread(TASKS_CHANNEL, card.ts).find((m) => (m.text ?? '').includes('card-later')), 10_000, 'late thread output');
  });

  it('paces long output to about one write per second, inside the limits, then uploads the whole log', async () => {
    const script = 'for i in 1 2 3 4 5; do seq -f "line %g of a long run" 1 1500; sleep 0.7; done; echo the-end';
    const startedAt = Date.now();
    const id = await h.createTask(`run sandbox -m "long output" ${script}`);
    const task = await h.waitForStatus(id, ['success', 'failure'], 30_000);
    expect(task.status).toBe('success');
    const card = await h.card(id, 'success');

    const expected = `${Array.from({ length: 5 }, () => Array.from({ length: 1500 }, (_, i) => `line ${i + 1} of a long run\n`).join('')).join('')}the-end\n`;
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.thread_ts === card.ts), 15_000, 'uploaded log');
    expect(file.content.toString('utf8')).toBe(expected);
    expect(file.channel_id).toBe(TASKS_CHANNEL);
    expect(file.initial_comment).toMatch(new RegExp(`Full output of #${id}: 7501 lines`));
    expect(h.fake.callsTo('files.upload')).toHaveLength(0);

    // Every write to the thread was accepted (the fake refuses what Slack refuses) and within limits.
    const replies = h.fake.thread(TASKS_CHANNEL, card.ts);
    const replyTs = new Set(replies.map((m) => m.ts));
    const threadWrites = h.fake.calls.filter(
      (c) =>
        c.at >= startedAt &&
        ((c.method === 'chat.postMessage' && c.args.thread_ts === card.ts) || (c.method === 'chat.update' && replyTs.has(String(c.args.ts)))),
    );
    expect(threadWrites.length).toBeGreaterThan(2);
    expect(threadWrites.every((c) => c.response.ok === true)).toBe(true);
    for (const reply of replies) expect((reply.text ?? '').length).toBeLessThanOrEqual(LOG_MESSAGE_CHARS + 8);
    expect(replies.every((reply) => (reply.text ?? '').length <= 4000)).toBe(true);
    // Coalesced: consecutive writes to the thread at least ~1 s apart.
    const gaps = threadWrites.slice(1).map((c, i) => c.at - threadWrites[i]!.at);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(900);
    // What the thread shows is the start of the real output, unaltered.
    const logMessages = replies.filter((m) => (m.text ?? '').includes('```'));
    // The thread's first line says where the whole log is.
    expect(logMessages[0]?.text).toMatch(
      new RegExp(`^:page_facing_up: The whole log, live: <http://[^|>]+/tasks/${id}\\?expires=\\d+&sig=[^|>]+\\|task page>\n\`\`\`\n`),
    );
    const shown = logMessages.map((m) => (m.text ?? '').replace(/^[^`]*```\n/, '').replace(/\n```$/, '')).join('');
    expect(shown.slice(0, 5000)).toBe(expected.slice(0, 5000));
  });

  it('says so in the thread when a script prints nothing', async () => {
    const id = await h.createTask('run sandbox true');
    await h.waitForStatus(id, 'success');
    const card = await h.card(id, 'success');
    await h.fake.waitFor(() => h.fake.thread(TASKS_CHANNEL, card.ts).find((m) => (m.text ?? '').includes('printed nothing')), 5000, 'no-output note');
  });
});
