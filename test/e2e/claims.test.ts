/**
 * One claim per task made ready in the claiming process (issue 12). Its ready NOTIFY and the
 * process's own word for it both wake the runner, usually while the claim that takes it is in
 * flight, and on a busy machine after it; a second claim then found nothing, and cost a round trip
 * and a commit on the path of every Run. Polling is set to a minute, so only those wakes start
 * claims here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTHOR, Harness } from '../support/harness.js';
import { insertTaskRows } from '../support/taskRows.js';
import { CHANNEL_READY } from '../../src/store/notify.js';

describe('claims per task', () => {
  let h: Harness;
  beforeAll(async () => {
    // The second look comes after 1 s, not 50 ms: the test commits the holder between the skip
    // and the second look, which on a loaded machine can take longer than 50 ms.
    h = await Harness.start({ runner: { pollMs: 60_000, missedRetryMs: 1000 } });
    await new Promise((resolve) => setTimeout(resolve, 300));
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('claims each task made ready here once, though two wakes name it', async () => {
    const before = h.app.runner.claimsSent;
    const rounds = 10;
    for (let i = 0; i < rounds; i++) {
      await h.waitForStatus(await h.serviceTask('true'), 'success', 10_000);
    }
    // Two per task before; then one more whenever a wake landed after the claim that took its task.
    expect(h.app.runner.claimsSent - before).toBe(rounds);
  });

  it('claims nothing for a ready NOTIFY that arrives after its task was claimed', async () => {
    const id = await h.serviceTask('true');
    await h.waitForStatus(id, 'success', 10_000);
    const before = h.app.runner.claimsSent;
    // Late, as on a busy machine: the task it names is this runner's already.
    await (await h.sideConnection()).query('SELECT pg_notify($1, $2)', [CHANNEL_READY, String(id)]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.app.runner.claimsSent).toBe(before);
  });

  it('looks again, shortly, for a task its wake named but its claim skipped because a short statement held the row', async () => {
    // Ready, with no NOTIFY of its own: only the wake below names it (polling is a minute away).
    const [id] = await insertTaskRows(h.database.db, [{ status: 'ready', author: AUTHOR, target: 'sandbox', script: 'true' }]);
    // Another session holds the row as a card's post claim does for a moment: the runner's
    // FOR UPDATE SKIP LOCKED passes it by.
    const holder = await h.sideConnection();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM tasks WHERE id = $1 FOR KEY SHARE', [id]);
    const before = h.app.runner.claimsSent;
    // Its ready NOTIFY, as a process that made it ready sends it.
    await (await h.sideConnection()).query('SELECT pg_notify($1, $2)', [CHANNEL_READY, String(id)]);
    // Its claim found the row locked, and the drain is over.
    const deadline = Date.now() + 5_000;
    while (h.app.runner.claimsSent === before || h.app.runner.claiming) {
      if (Date.now() > deadline) throw new Error('the runner never claimed');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect((await h.task(id!))?.status).toBe('ready');
    await holder.query('COMMIT');
    const looked = h.app.runner.claimsSent;
    // Only the runner's own second look can start it now.
    await h.waitForStatus(id!, ['running', 'success'], 5_000);
    expect(h.app.runner.claimsSent).toBeGreaterThan(looked);
  });
});
