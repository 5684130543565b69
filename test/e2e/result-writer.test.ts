/**
 * Runs that end together share a commit (src/runner/resultWriter.ts, issue 12): each commit
 * waits for its WAL flush, which on a busy runner cost more of the machine than the statements.
 * Each result must still be stored as its own, answered as its own, and not be held back or
 * undone by another's trouble. Rows written in one transaction share its id (xmin), which is how
 * these tests see which results shared a commit.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultWriter } from '../../src/runner/resultWriter.js';
import { claimReady, failRunOfLostRunner, plansJson, renewLeases, type Claimed, type ExecutionResult } from '../../src/store/executions.js';
import { transitionTask, type Transition } from '../../src/store/tasks.js';
import type { Db } from '../../src/store/db.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { Harness } from '../support/harness.js';
import { insertTaskRows } from '../support/taskRows.js';
import { waitFor } from '../support/waitFor.js';

const RUNNER = { id: 'runner-a', key: 4242 };

/** Until a statement containing `text` waits on a row lock. */
async function untilWaitingOnLock(db: Db, text: string, what: string): Promise<void> {
  await waitFor(
    async () => (await db.raw(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE ?`, [`%${text}%`])).rows.length > 0,
    5_000,
    what,
    10,
  );
}

/** The transaction that wrote each task's end event (events are never updated); each task has at most one. */
async function endTransactions(db: Db, taskIds: readonly number[]): Promise<Map<number, string>> {
  const rows = await db('events')
    .whereIn('task_id', taskIds)
    .whereIn('type', ['task.success', 'task.failure'])
    .select<Array<{ task_id: number; xmin: string }>>('task_id', db.raw('xmin::text AS xmin'));
  const transactions = new Map(rows.map((row) => [row.task_id, row.xmin]));
  expect(transactions.size, 'one end event per task').toBe(rows.length);
  return transactions;
}

describe('ResultWriter on Postgres', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  /** `n` tasks claimed by RUNNER, running, each with its execution and one step. */
  async function running(n: number): Promise<Claimed[]> {
    await insertTaskRows(
      database.db,
      Array.from({ length: n }, () => ({ status: 'ready', author: 'U1', target: 'sandbox', script: 'true' })),
    );
    const plans = plansJson(new Map([['sandbox', [[{ host: '127.0.0.1', port: 22, user: 'deploy' }]]]]));
    const claimed = await claimReady(database.db, RUNNER, 60_000, plans, n);
    expect(claimed).toHaveLength(n);
    return claimed;
  }

  /** A run's end as executeRun writes it, with exit code `exitCode`. */
  function result(claimed: Claimed, exitCode: number, set: Transition['set'] = {}, runnerKey = RUNNER.key) {
    const end: Transition = {
      taskId: claimed.task.id,
      from: 'running',
      to: exitCode === 0 ? 'success' : 'failure',
      actor: null,
      data: { exitCode, durationMs: 10 + exitCode, execution: claimed.execution.id },
      set: { exit_code: exitCode, duration_ms: 10 + exitCode, ...set },
    };
    const run: ExecutionResult = {
      executionId: claimed.execution.id,
      runnerKey,
      outcome: { phase: exitCode === 0 ? 'succeeded' : 'failed', exitCode, failureMessage: null },
      steps: claimed.steps.map((step) => ({ stepId: step.id, phase: exitCode === 0 ? 'succeeded' : 'failed', exitCode, signal: null, failureMessage: null })),
    };
    return [run, end] as const;
  }

  /** The tasks' statuses, in id order. */
  const statusesOf = (claimed: readonly Claimed[]) =>
    database
      .db('tasks')
      .whereIn(
        'id',
        claimed.map((c) => c.task.id),
      )
      .orderBy('id')
      .pluck('status');

  /** A session of the test's own, to hold locks in; closing it rolls back what it holds. */
  async function session() {
    const connection = await database.db.client.acquireConnection();
    return {
      query: (text: string, values?: unknown[]) => database.db.raw(text, values as never).connection(connection),
      async close() {
        await database.db
          .raw('ROLLBACK')
          .connection(connection)
          .catch(() => undefined);
        await database.db.client.releaseConnection(connection);
      },
    };
  }

  it('writes results that end while one is being written in one transaction, each with its own result', async () => {
    const claimed = await running(8);
    const sharedFailures: unknown[] = [];
    const writer = new ResultWriter(database.db, (error) => sharedFailures.push(error));
    // All at once: the first is written alone at once, the seven that end meanwhile wait for it.
    const answers = await Promise.all(claimed.map((c, i) => writer.write(...result(c, i))));
    expect(answers).toEqual(claimed.map(() => true));
    // The seven went in one statement, not one by one after it failed.
    expect(sharedFailures).toEqual([]);

    const ids = claimed.map((c) => c.task.id);
    const tasks = await database.db('tasks').whereIn('id', ids).orderBy('id').select('id', 'status', 'exit_code', 'duration_ms');
    expect(tasks).toEqual(claimed.map((c, i) => ({ id: c.task.id, status: i === 0 ? 'success' : 'failure', exit_code: i, duration_ms: 10 + i })));
    const runs = await database.db('executions').whereIn('task_id', ids).orderBy('task_id').select('phase', 'exit_code');
    expect(runs).toEqual(claimed.map((_, i) => ({ phase: i === 0 ? 'succeeded' : 'failed', exit_code: i })));
    const steps = await database
      .db('execution_steps')
      .whereIn(
        'execution_id',
        claimed.map((c) => c.execution.id),
      )
      .select('phase');
    expect(steps.every((step) => step.phase !== 'running')).toBe(true);
    // One audit event per end, in the transaction that moved the task.
    const transactions = await endTransactions(database.db, ids);
    expect(transactions.size).toBe(8);
    expect(new Set(transactions.values()).size).toBe(2);
    expect(new Set(ids.slice(1).map((id) => transactions.get(id))).size).toBe(1);
  });

  it('answers false for a run no longer this runner’s, in a shared transaction, and stores the others', async () => {
    const claimed = await running(4);
    const sharedFailures: unknown[] = [];
    const writer = new ResultWriter(database.db, (error) => sharedFailures.push(error));
    // The third is written with another runner's key: as after the sweeper gave the run up.
    const answers = await Promise.all(claimed.map((c, i) => writer.write(...result(c, 0, {}, i === 2 ? RUNNER.key + 1 : RUNNER.key))));
    expect(answers).toEqual([true, true, false, true]);
    expect(sharedFailures).toEqual([]);
    const statuses = await statusesOf(claimed);
    expect(statuses).toEqual(['success', 'success', 'running', 'success']);
    const transactions = await endTransactions(
      database.db,
      claimed.map((c) => c.task.id),
    );
    expect(transactions.get(claimed[1]!.task.id)).toBe(transactions.get(claimed[3]!.task.id));
  });

  it('writes the others on their own when one result’s statement fails, and gives that error to its caller alone', async () => {
    const claimed = await running(4);
    const writer = new ResultWriter(database.db);
    const settled = await Promise.allSettled(
      // The third's duration is not a number: its statement fails, and with it the transaction it shared.
      claimed.map((c, i) => writer.write(...result(c, 0, i === 2 ? { duration_ms: 'soon' as unknown as number } : {}))),
    );
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(String((settled[2] as PromiseRejectedResult).reason)).toMatch(/invalid input syntax for type integer/);
    const statuses = await statusesOf(claimed);
    expect(statuses).toEqual(['success', 'success', 'running', 'success']);
    // Its run is still running and still this runner's: the caller's retry can store it.
    expect(await writer.write(...result(claimed[2]!, 0))).toBe(true);
    expect((await database.db('tasks').where({ id: claimed[2]!.task.id }).first('status'))?.status).toBe('success');
    // Nothing was stored twice: one end event per task.
    expect(
      (
        await endTransactions(
          database.db,
          claimed.map((c) => c.task.id),
        )
      ).size,
    ).toBe(4);
    const events = await database
      .db('events')
      .whereIn(
        'task_id',
        claimed.map((c) => c.task.id),
      )
      .where({ type: 'task.success' })
      .count<{ count: string }[]>('* as count');
    expect(Number(events[0]!.count)).toBe(4);
  });
  it('answers stored for a result whose commit landed though its answer was lost, and stores nothing twice', async () => {
    const [claimed] = await running(1);
    const writer = new ResultWriter(database.db);
    expect(await writer.write(...result(claimed!, 0))).toBe(true);
    // The same write again, as the caller retries it when the connection dropped as it committed.
    expect(await writer.write(...result(claimed!, 0))).toBe(true);
    const events = await database.db('events').where({ task_id: claimed!.task.id, type: 'task.success' }).select('id');
    expect(events).toHaveLength(1);
  });

  it('answers stored for a result in a shared statement whose earlier try was stored, and stores nothing twice', async () => {
    const [first, again, other] = await running(3);
    const sharedFailures: unknown[] = [];
    const writer = new ResultWriter(database.db, (error) => sharedFailures.push(error));
    // Stored, but as if its answer never came back: the caller writes it again.
    expect(await writer.write(...result(again!, 0))).toBe(true);
    // Written together (the first may still be counted in flight), so the retry goes in a shared statement.
    const answers = await Promise.all([writer.write(...result(first!, 0)), writer.write(...result(again!, 0)), writer.write(...result(other!, 0))]);
    expect(answers).toEqual([true, true, true]);
    expect(sharedFailures).toEqual([]);
    const transactions = await endTransactions(
      database.db,
      [first!, again!, other!].map((c) => c.task.id),
    );
    // One end event each; the retried one's is still its first write's.
    expect(transactions.size).toBe(3);
    expect(transactions.get(again!.task.id)).not.toBe(transactions.get(other!.task.id));
  });

  it('locks runs in id order, as the lease renewal does: a renewal holding an earlier run does not deadlock with it', async () => {
    const claimed = await running(3);
    const [first, early, late] = [...claimed].sort((a, b) => a.execution.id - b.execution.id);
    const writer = new ResultWriter(database.db);
    // A session that locks runs in id order, as renewLeases does, holds the earlier run's row.
    const side = await session();
    try {
      await side.query('BEGIN');
      await side.query('SELECT id FROM executions WHERE id = ? FOR UPDATE', [early!.execution.id]);
      // One result in flight, then the later run's and the earlier run's end, in that order, together.
      const writes = [writer.write(...result(first!, 0)), writer.write(...result(late!, 0)), writer.write(...result(early!, 0))];
      await writes[0];
      await untilWaitingOnLock(database.db, 'finished AS', 'the shared write to wait on the lock');
      // The renewal goes on to the later run: free, since the shared write waits for the earlier one first.
      await side.query(`SET LOCAL lock_timeout = '500ms'`);
      await side.query('SELECT id FROM executions WHERE id = ? FOR UPDATE', [late!.execution.id]);
      await side.query('COMMIT');
      expect(await Promise.all(writes)).toEqual([true, true, true]);
    } finally {
      await side.close();
    }
    const transactions = await endTransactions(database.db, [early!.task.id, late!.task.id]);
    expect(transactions.get(early!.task.id)).toBe(transactions.get(late!.task.id));
  });
  it('writes the next results beside one that waits on a lock, instead of behind it', async () => {
    const [stuck, free] = await running(2);
    const writer = new ResultWriter(database.db);
    const holder = await session();
    const hold = holder.query;
    try {
      await hold('BEGIN');
      await hold('SELECT id FROM tasks WHERE id = ? FOR UPDATE', [stuck!.task.id]);
      const waiting = writer.write(...result(stuck!, 0));
      const started = Date.now();
      expect(await writer.write(...result(free!, 0))).toBe(true);
      expect(Date.now() - started).toBeLessThan(2_000);
      await hold('COMMIT');
      expect(await waiting).toBe(true);
    } finally {
      await holder.close();
    }
  });

  it('writes a shared transaction’s results one by one when it waits on a lock for over a second, so the free ones are stored', async () => {
    const [stuck, locked, free] = [...(await running(3))].sort((a, b) => a.execution.id - b.execution.id);
    const writer = new ResultWriter(database.db);
    const holder = await session();
    const hold = holder.query;
    try {
      await hold('BEGIN');
      await hold('SELECT id FROM tasks WHERE id = ANY(?::bigint[]) FOR UPDATE', [[stuck!.task.id, locked!.task.id]]);
      // The first waits alone; the next two go together after the stall, and one of them waits too.
      const first = writer.write(...result(stuck!, 0));
      const together = [writer.write(...result(locked!, 0)), writer.write(...result(free!, 0))];
      const started = Date.now();
      expect(await together[1]).toBe(true);
      // Stored once the shared transaction gave up its wait (1 s), while the locks are still held.
      expect(Date.now() - started).toBeGreaterThan(900);
      expect((await database.db('tasks').where({ id: free!.task.id }).first('status'))?.status).toBe('success');
      await hold('COMMIT');
      expect(await Promise.all([first, together[0]])).toEqual([true, true]);
    } finally {
      await holder.close();
    }
  });

  it('answers not stored for a run the lost-run sweeper ended, though it ended it with the same status', async () => {
    const [claimed] = await running(1);
    // The sweeper's end: the run failed as its runner's, the task failed with its reason.
    await database.db.transaction(async (trx) => {
      expect(await failRunOfLostRunner(trx, claimed!.execution.id, RUNNER.key, 'runner lost')).not.toBeNull();
      await transitionTask(trx, { taskId: claimed!.task.id, from: 'running', to: 'failure', actor: null, data: { reason: 'runner-lost', runner: RUNNER.id } });
    });
    const writer = new ResultWriter(database.db);
    // The runner's own result, a failure too, comes after.
    expect(await writer.write(...result(claimed!, 1))).toBe(false);
    const events = await database.db('events').where({ task_id: claimed!.task.id, type: 'task.failure' }).select('data');
    expect(events.map((event) => (event.data as { reason?: string }).reason)).toEqual(['runner-lost']);
  });

  it('renews a lease while output is being stored for the run (its key share lock does not stop it)', async () => {
    const [claimed] = await running(1);
    const holder = await session();
    const hold = holder.query;
    try {
      // What storing a chunk of output takes on its run's row (the foreign key's check).
      await hold('BEGIN');
      await hold('SELECT id FROM executions WHERE id = ? FOR KEY SHARE', [claimed!.execution.id]);
      const renewed = await Promise.race([
        renewLeases(database.db, [claimed!.execution.id], RUNNER.id, 60_000),
        new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2_000)),
      ]);
      expect(renewed).not.toBe('waited');
      expect([...(renewed as Map<number, unknown>).keys()]).toEqual([claimed!.execution.id]);
    } finally {
      await holder.close();
    }
  });

  it('renews leases locking runs in id order, whatever order their rows lie in', async () => {
    const [early, late] = await running(2);
    // The earlier run's row rewritten: its new version now lies after the later run's.
    await renewLeases(database.db, [early!.execution.id], RUNNER.id, 60_000);
    const holder = await session();
    const hold = holder.query;
    try {
      await hold('BEGIN');
      await hold('SELECT id FROM executions WHERE id = ? FOR UPDATE', [late!.execution.id]);
      const renewal = renewLeases(database.db, [early!.execution.id, late!.execution.id], RUNNER.id, 60_000);
      await untilWaitingOnLock(database.db, 'lease_until', 'the renewal to wait on the lock');
      // Waiting for the later run, it already holds the earlier one.
      await expect(database.db.raw('SELECT id FROM executions WHERE id = ? FOR UPDATE NOWAIT', [early!.execution.id])).rejects.toThrow(/could not obtain lock/);
      await hold('COMMIT');
      expect([...(await renewal).keys()].sort()).toEqual([early!.execution.id, late!.execution.id].sort());
    } finally {
      await holder.close();
    }
  });
});

describe('runs ending together through the runner', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('stores every result of tasks that end while another result is being written, sharing commits', async () => {
    const dir = h.scratchDir();
    const go = join(dir, 'go');
    // Each task says it is ready, waits for the same file, then exits with its own number.
    const ids: number[] = [];
    for (let i = 0; i < 8; i++) ids.push(await h.serviceTask(`echo ready-${i}; while [ ! -e ${go} ]; do sleep 0.01; done; exit ${i}`));
    const db = h.database.db;
    const started = async () => {
      const [row] = await db('output_chunks')
        .join('executions', 'executions.id', 'output_chunks.execution_id')
        .whereIn('executions.task_id', ids)
        .countDistinct<{ count: string | number }[]>('output_chunks.execution_id as count');
      return Number(row?.count ?? 0) === 8;
    };
    await waitFor(started, 10_000, 'every task to say it is ready', 20);
    // The first result to be written waits on these rows; the others end meanwhile.
    const holder = await h.sideConnection();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM tasks WHERE id = ANY($1::bigint[]) FOR UPDATE', [ids]);
    writeFileSync(go, '');
    await untilWaitingOnLock(db, 'finished AS', 'the first result to wait on the lock');
    // The other seven tasks end within a few tens of milliseconds of the file.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await holder.query('COMMIT');

    const ended = await Promise.all(ids.map((id) => h.waitForStatus(id, ['success', 'failure'], 10_000)));
    expect(ended.map((task) => task.result.exitCode)).toEqual(ids.map((_, i) => i));
    expect(ended.map((task) => task.result.lastLine)).toEqual(ids.map((_, i) => `ready-${i}`));
    const transactions = await endTransactions(db, ids);
    expect(transactions.size).toBe(8);
    // The first waited on the lock; the seven that ended meanwhile went in one or a few shared
    // transactions (a new one goes beside a stalled write every quarter second), never one each.
    expect(new Set(transactions.values()).size).toBeLessThan(8);
  });
});
