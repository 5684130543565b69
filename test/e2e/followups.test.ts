/**
 * Small things people notice (issue 13), through signed Slack requests, the fake Slack, a real
 * Postgres and a real sshd:
 *
 * - the card of a rejected task, once resubmitted, says "Resubmitted as #N" with a link to the
 *   new task's card, and no longer offers to resubmit;
 * - `/task logs <id>` reads only the end of a long log, not all of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, TASK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, TASKS_CHANNEL } from '../support/harness.js';

describe('follow-ups people notice', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('links the old card of a resubmitted task to the new one, and stops offering to resubmit it', async () => {
    const id = await h.createTask('run web-prod -m "first try" echo v1');
    await h.click(await h.reviewRequest(id, 'Approve'), ACTION.reject, BOB);
    const modal = await h.fake.waitFor(() => h.fake.lastView('task_reject_reason'), 5000, 'reject modal');
    await h.driver.submitView({ view: modal, user: BOB, values: { reason: { reason_input: 'use v2' } } });
    const card = await h.card(id, 'rejected');
    expect(buttonIds(card)).toEqual([ACTION.resubmit]);
    expect(blocksText(card)).not.toContain('Resubmitted as');

    await h.click(card, ACTION.resubmit, AUTHOR);
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.lastView(TASK_MODAL_CALLBACK);
        return view && view.updates > 0 && JSON.stringify(view.title ?? '').includes(`Resubmit #${id}`) ? view : undefined;
      },
      5000,
      'the resubmit form',
    );
    const submitted = await h.driver.submitView({
      view: form,
      user: AUTHOR,
      values: { target: { value: 'web-prod' }, script: { value: 'echo v2' }, message: { value: 'second try' } },
    });
    const newId = Number(/#(\d+)/.exec(JSON.stringify(submitted.json))?.[1]);
    expect(newId).toBeGreaterThan(id);
    const newCard = await h.card(newId, 'second try');

    // The old card names the new task and links to its card (once Slack gave the permalink).
    const permalink = `https://fake.slack/archives/${TASKS_CHANNEL}/p${newCard.ts.replace('.', '')}`;
    const linked = await h.card(id, `Resubmitted as <${permalink}|#${newId}>`);
    expect(buttonIds(linked)).toEqual([]);
    // The link is stored Slack's answer, not a guess.
    expect((await h.database.db('tasks').where({ id: newId }).first('card_permalink')).card_permalink).toBe(permalink);
    // The new task is reviewed from scratch as before.
    await h.click(await h.reviewRequest(newId, 'echo v2'), ACTION.approve, ALICE);
    await h.waitForStatus(newId, 'approved');
  });

  it('/task logs reads the end of a long log, not all of it', async () => {
    const lines = 20_000;
    const id = await h.createTask(`run sandbox -m "chatty" for i in $(seq 1 ${lines}); do echo "line $i of a rather long log, padded to be longer"; done`);
    const done = await h.waitForStatus(id, 'success', 60_000);
    expect(done.status).toBe('success');
    const [{ bytes }] = await h.database
      .db('output_chunks as o')
      .join('executions as e', 'e.id', 'o.execution_id')
      .where('e.task_id', id)
      .select(h.database.db.raw('sum(octet_length(o.data))::int AS bytes'));
    expect(bytes).toBeGreaterThan(800_000);

    let read = 0;
    const count = (response: unknown, query: { sql?: string }) => {
      if (query.sql?.includes('output_chunks')) read += JSON.stringify(response ?? null).length;
    };
    h.database.db.on('query-response', count);
    let answer = '';
    try {
      answer = blocksText((await h.command(`logs ${id}`, AUTHOR)).json as { text?: string; blocks?: unknown[] });
    } finally {
      h.database.db.off('query-response', count);
    }
    console.log(`[logs] /task logs of a ${bytes}-byte log read ${read} bytes of output`);
    expect(answer).toContain(`line ${lines} of a rather long log`);
    expect(answer).toContain(`line ${lines - 30} of`);
    expect(answer).not.toContain('line 1 of');
    expect(answer).toMatch(/The last lines of [\d,]+ bytes of output/);
    expect(answer).toContain(`${bytes.toLocaleString('en')} bytes`);
    // The whole log is over 800 KB; the answer shows about 3 KB and reads not much more.
    expect(read).toBeLessThan(20_000);
  }, 90_000);
});
