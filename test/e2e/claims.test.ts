/**
 * One claim per task made ready in the claiming process (issue 12). Its ready NOTIFY and the
 * process's own word for it both wake the runner, usually while the claim that takes it is in
 * flight, and on a busy machine after it; a second claim then found nothing, and cost a round trip
 * and a commit on the path of every Run. Polling is set to a minute, so only those wakes start
 * claims here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { ALICE, AUTHOR, Harness } from '../support/harness.js';
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

  /** Tasks approved on web-prod by ALICE, as a Run finds them (its approvals on the task's version). */
  const approvedTasks = async (n: number, script = 'true'): Promise<number[]> => {
    const ids = await insertTaskRows(
      h.database.db,
      Array.from({ length: n }, () => ({ status: 'approved', author: AUTHOR, target: 'web-prod', script })),
    );
    const versions = await h.database.db('tasks').whereIn('id', ids).select('id', 'content_version');
    await h.database
      .db('reviews')
      .insert(versions.map((row) => ({ task_id: row.id, user_id: ALICE, verdict: 'approve', content_version: row.content_version })));
    return ids;
  };
  const transitions = (id: number) =>
    h.database.db('events').where({ task_id: id }).whereIn('type', ['task.ready', 'task.running']).orderBy('id').select('type', 'actor', 'data', 'created_at');

  it('starts a Run clicked here in the statement that makes it ready: one claim, both transitions audited in one transaction', async () => {
    const id = await h.createTask('run web-prod -m "claimed at the click" true');
    await h.click(await h.reviewRequest(id), ACTION.approve, ALICE);
    const card = await h.card(id, /Run/);
    await h.waitForStatus(id, 'approved');
    const before = h.app.runner.claimsSent;
    expect((await h.click(card, ACTION.run, AUTHOR)).status).toBe(200);
    await h.waitForStatus(id, 'success', 10_000);
    expect(h.app.runner.claimsSent - before).toBe(1);
    const [ready, running] = await transitions(id);
    expect(ready).toMatchObject({ type: 'task.ready', actor: AUTHOR, data: { from: 'approved' } });
    expect(running).toMatchObject({ type: 'task.running', actor: null, data: { from: 'ready', runner: expect.any(String) } });
    // One transaction: the database's clock reads the same for both.
    expect(running.created_at.getTime()).toBe(ready.created_at.getTime());
    expect(await h.database.db('executions').where({ task_id: id }).pluck('id')).toHaveLength(1);
  });

  it('makes a Run ready on its own where the runner has no room, for a runner that has room to claim', async () => {
    const full = await h.startReplica({ runner: { maxConcurrent: 0 } });
    try {
      const [id] = await approvedTasks(1);
      const readied: string[] = [];
      const record = (query: { sql: string; bindings?: unknown[] }) => {
        if (query.sql.includes('current AS (SELECT id, status FROM tasks') && query.bindings?.includes('ready')) readied.push(query.sql);
      };
      h.database.db.on('query', record);
      try {
        expect(await full.service.run(id!, AUTHOR)).toMatchObject({ ok: true, task: { status: 'ready' } });
      } finally {
        h.database.db.off('query', record);
      }
      // Other processes hear of it from that statement, and this one's runner (polling a minute
      // away) claims it from the NOTIFY.
      expect(readied).toHaveLength(1);
      expect(readied[0]).toContain('notified_changed');
      await h.waitForStatus(id!, 'success', 10_000);
      const [ready, running] = await transitions(id!);
      expect(ready).toMatchObject({ type: 'task.ready', actor: AUTHOR });
      expect(running).toMatchObject({ type: 'task.running' });
      expect(running.created_at.getTime()).toBeGreaterThan(ready.created_at.getTime());
    } finally {
      await full.stop(1000);
    }
  });

  it('only makes a Run ready before its grace delay is over, so Cancel stays offered until then', async () => {
    const [id] = await approvedTasks(1);
    await h.database
      .db('tasks')
      .where({ id })
      .update({ run_after: h.database.db.raw("now() + interval '1 hour'") });
    const before = h.app.runner.claimsSent;
    expect(await h.app.service.run(id!, AUTHOR)).toMatchObject({ ok: true, task: { status: 'ready' } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await h.task(id!))?.status).toBe('ready');
    expect(await h.database.db('executions').where({ task_id: id }).pluck('id')).toEqual([]);
    // Tried at the click, then left to the claim that waits for its time.
    expect(h.app.runner.claimsSent).toBeGreaterThan(before);
    expect(await h.app.service.cancel(id!, AUTHOR)).toMatchObject({ ok: true });
  });

  it('runs each task once when two processes with room take the same Run at once', async () => {
    const other = await h.startReplica();
    try {
      const ids = await approvedTasks(12, 'echo once');
      for (const id of ids) {
        const answers = await Promise.all([h.app.service.run(id, AUTHOR), other.service.run(id, AUTHOR)]);
        // One started it; the other was told it can no longer be run (it was running, or already over).
        expect(answers.filter((answer) => answer.ok)).toHaveLength(1);
        expect(answers.find((answer) => !answer.ok)).toMatchObject({ ok: false, code: 'wrong_status' });
      }
      for (const id of ids) await h.waitForStatus(id, 'success', 10_000);
      const executions = await h.database.db('executions').whereIn('task_id', ids).select('task_id');
      expect(executions.map((row) => row.task_id).sort()).toEqual([...ids].sort());
      for (const id of ids) {
        // Each claimed at its click, by one of the two, in one transaction.
        const [ready, running, ...more] = await transitions(id);
        expect(more).toEqual([]);
        expect([ready.type, running.type]).toEqual(['task.ready', 'task.running']);
        expect(running.created_at.getTime()).toBe(ready.created_at.getTime());
      }
      for (const id of ids) {
        const out = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data');
        expect(out.join('')).toBe('once\n');
      }
    } finally {
      await other.stop(1000);
    }
  });

  it('lets a shutdown wait for a Run being claimed at its click, and run it, rather than leave it untracked', async () => {
    const replica = await h.startReplica();
    try {
      const [id] = await approvedTasks(1, 'echo tracked');
      // The claim's insert waits behind this lock: the Run is being claimed when the shutdown starts.
      const holder = await h.sideConnection();
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE executions IN SHARE MODE');
      const clicked = replica.service.run(id!, AUTHOR);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const stopping = replica.runner.stop(10_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.query('COMMIT');
      expect(await clicked).toMatchObject({ ok: true, task: { status: 'running' } });
      await stopping;
      // The run the claim took was this runner's to finish before its shutdown ended.
      expect(await h.task(id!)).toMatchObject({ status: 'success' });
      const out = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data');
      expect(out.join('')).toBe('tracked\n');
    } finally {
      await replica.stop(1000);
    }
  });
});
