/**
 * transitionTasksAlong with finishExecutionsStatement: a batch of runs' results in one statement
 * (issue 12's throughput). Each change must still be what transitionTaskAlong makes it: moved only
 * past its own gate and from its own statuses, with its own columns, audit event and NOTIFY, and
 * rows locked in the order the lease renewal and the lost-run sweeper lock them.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimReady, finishExecutionsStatement, plansJson, renewLeases, type Claimed, type ExecutionResult } from '../../src/store/executions.js';
import { CHANNEL_READY, CHANNEL_TASK } from '../../src/store/notify.js';
import { TASK_JSONB_COLUMNS, transitionTask, transitionTasksAlong, type AlongWith, type Transition } from '../../src/store/tasks.js';
import { appendEvent } from '../../src/store/events.js';
import type { Db } from '../../src/store/db.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { insertTaskRows } from '../support/taskRows.js';
import { waitFor } from '../support/waitFor.js';

const RUNNER = { id: 'runner-set', key: 777 };

describe('transitionTasksAlong on Postgres', () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = database.db;
  });
  afterAll(async () => {
    await database?.drop();
  });

  /** `n` tasks claimed by RUNNER, running, each with its run and one step, in claim (id) order. */
  async function running(n: number): Promise<Claimed[]> {
    await insertTaskRows(
      db,
      Array.from({ length: n }, () => ({ status: 'ready', author: 'U1', target: 'sandbox', script: 'true' })),
    );
    const plans = plansJson(new Map([['sandbox', [[{ host: '127.0.0.1', port: 22, user: 'deploy' }]]]]));
    const claimed = await claimReady(db, RUNNER, 60_000, plans, n);
    expect(claimed).toHaveLength(n);
    return [...claimed].sort((a, b) => a.task.id - b.task.id);
  }

  /** A run's result and its task's end, as executeRun makes them. */
  function ending(claimed: Claimed, exitCode: number, set: Transition['set'] = {}, runnerKey = RUNNER.key): { run: ExecutionResult; end: Transition } {
    return {
      run: {
        executionId: claimed.execution.id,
        runnerKey,
        outcome: { phase: exitCode === 0 ? 'succeeded' : 'failed', exitCode, failureMessage: exitCode === 0 ? null : `exit ${exitCode}` },
        steps: claimed.steps.map((step) => ({ stepId: step.id, phase: exitCode === 0 ? 'succeeded' : 'failed', exitCode, signal: null, failureMessage: null })),
      },
      end: {
        taskId: claimed.task.id,
        from: 'running',
        to: exitCode === 0 ? 'success' : 'failure',
        actor: null,
        data: { exitCode, execution: claimed.execution.id },
        set: { exit_code: exitCode, ...set },
      },
    };
  }

  const write = async (endings: ReadonlyArray<{ run: ExecutionResult; end: Transition }>) =>
    transitionTasksAlong(
      db,
      endings.map((e) => e.end),
      finishExecutionsStatement(endings.map((e) => e.run)),
      { notifyChanged: true },
    );

  /** A session of the test's own, to hold locks in. */
  async function session(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    return client;
  }

  /** A session listening on `channel`, and the payloads it has heard. */
  async function listen(channel: string): Promise<{ listener: pg.Client; heard: string[] }> {
    const listener = await session();
    const heard: string[] = [];
    listener.on('notification', (n) => {
      if (n.channel === channel) heard.push(n.payload ?? '');
    });
    await listener.query(`LISTEN ${channel}`);
    return { listener, heard };
  }

  it('moves each task past its own gate, with its own columns, audit event and NOTIFY, in one statement', async () => {
    const claimed = await running(4);
    const ids = claimed.map((c) => c.task.id);
    // A column only one change sets must keep its old value on the others.
    await db('tasks').whereIn('id', ids).update({ failure_message: 'before', last_line: 'before' });
    const { listener, heard } = await listen(CHANNEL_TASK);
    try {
      // Not in task id order: the events must follow the changes.
      const endings = [
        ending(claimed[3]!, 0, { duration_ms: 7, failure_message: null }),
        // Half an emoji at the end, as a line cut short leaves it: jsonb refuses it, a text parameter stores U+FFFD.
        ending(claimed[1]!, 3, { failure_message: 'exit 3', last_line: "it's done \ud83d", finished_at: new Date('2026-01-02T03:04:05.678Z') }),
        // Another runner's key: as after the sweeper gave the run up. Its gate stays shut.
        ending(claimed[2]!, 0, {}, RUNNER.key + 1),
        ending(claimed[0]!, 0, { finished_at: db.fn.now() as unknown as Date, outputs: { outputs: { answer: '42' } }, duration_ms: 5 }),
      ];
      const answers = await write(endings);
      expect(answers).toEqual([
        { moved: true, along: true },
        { moved: true, along: true },
        { moved: false, along: false },
        { moved: true, along: true },
      ]);

      const tasks = await db('tasks')
        .whereIn('id', ids)
        .orderBy('id')
        .select(
          'status',
          'exit_code',
          'duration_ms',
          'failure_message',
          'last_line',
          db.raw(`outputs->'outputs'->>'answer' AS answer`),
          db.raw('finished_at = status_changed_at AS stamped'),
          db.raw(`to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS finished`),
        );
      const now = tasks[0]!.finished;
      expect(tasks).toEqual([
        { status: 'success', exit_code: 0, duration_ms: 5, failure_message: 'before', last_line: 'before', answer: '42', stamped: true, finished: now },
        {
          status: 'failure',
          exit_code: 3,
          duration_ms: null,
          failure_message: 'exit 3',
          last_line: "it's done \ufffd",
          answer: null,
          stamped: false,
          finished: '2026-01-02 03:04:05.678',
        },
        { status: 'running', exit_code: null, duration_ms: null, failure_message: 'before', last_line: 'before', answer: null, stamped: null, finished: null },
        { status: 'success', exit_code: 0, duration_ms: 7, failure_message: null, last_line: 'before', answer: null, stamped: null, finished: null },
      ]);
      expect(now).not.toBeNull();

      const runs = await db('executions')
        .whereIn(
          'id',
          claimed.map((c) => c.execution.id),
        )
        .orderBy('task_id')
        .select('phase', 'exit_code', 'failure_message', db.raw('finished_at IS NOT NULL AS finished'));
      expect(runs).toEqual([
        { phase: 'succeeded', exit_code: 0, failure_message: null, finished: true },
        { phase: 'failed', exit_code: 3, failure_message: 'exit 3', finished: true },
        { phase: 'running', exit_code: null, failure_message: null, finished: false },
        { phase: 'succeeded', exit_code: 0, failure_message: null, finished: true },
      ]);
      const steps = await db('execution_steps')
        .join('executions', 'executions.id', 'execution_steps.execution_id')
        .orderBy('executions.task_id')
        .whereIn('executions.task_id', ids)
        .pluck('execution_steps.phase');
      expect(steps).toEqual(['succeeded', 'failed', 'running', 'succeeded']);

      // One end event per moved task, in the order of the changes, from where it was, with its data; all in one transaction.
      const events = await db('events')
        .whereIn('task_id', ids)
        .whereIn('type', ['task.success', 'task.failure'])
        .orderBy('id')
        .select('task_id', 'type', 'actor', 'data', db.raw('xmin::text AS xmin'));
      expect(events.map(({ xmin: _, ...event }) => event)).toEqual([
        { task_id: ids[3], type: 'task.success', actor: null, data: { from: 'running', exitCode: 0, execution: claimed[3]!.execution.id } },
        { task_id: ids[1], type: 'task.failure', actor: null, data: { from: 'running', exitCode: 3, execution: claimed[1]!.execution.id } },
        { task_id: ids[0], type: 'task.success', actor: null, data: { from: 'running', exitCode: 0, execution: claimed[0]!.execution.id } },
      ]);
      expect(new Set(events.map((event) => event.xmin)).size).toBe(1);

      await waitFor(async () => heard.length >= 3, 5_000, 'the three notifications');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(heard.sort()).toEqual([ids[0], ids[1], ids[3]].map(String).sort());
    } finally {
      await listener.end();
    }
  });

  it('stores a run’s result but leaves its task when the task is no longer in `from`, or runs a run’s step', async () => {
    const [killedMeanwhile, stepTask, normal] = await running(3);
    await db('tasks').where({ id: killedMeanwhile!.task.id }).update({ status: 'killed' });
    // A run's step's task ends only in transitionTask's transaction, which moves the step with it.
    await db('tasks')
      .where({ id: stepTask!.task.id })
      .update({ run_step_id: 999_999_000 + stepTask!.task.id });
    const answers = await write([ending(killedMeanwhile!, 0), ending(stepTask!, 0), ending(normal!, 0)]);
    expect(answers).toEqual([
      { moved: false, along: true },
      { moved: false, along: true },
      { moved: true, along: true },
    ]);
    const statuses = await db('tasks').whereIn('id', [killedMeanwhile!.task.id, stepTask!.task.id, normal!.task.id]).orderBy('id').pluck('status');
    expect(statuses).toEqual(['killed', 'running', 'success']);
    const ends = await db('events')
      .whereIn('task_id', [killedMeanwhile!.task.id, stepTask!.task.id])
      .whereIn('type', ['task.success', 'task.failure'])
      .count<{ count: string }[]>('* as count');
    expect(Number(ends[0]!.count)).toBe(0);
  });

  it('refuses two changes of one task or run, an SQL expression other than now(), a jsonb column’s text and an illegal transition, before sending anything', async () => {
    const [a, b] = await running(2);
    const twice = [ending(a!, 0), { ...ending(a!, 1), run: ending(b!, 1).run }];
    await expect(write(twice)).rejects.toThrow(/same task/);
    await expect(write([ending(a!, 0), ending(b!, 0, { duration_ms: db.raw('1 + 1') as unknown as number })])).rejects.toThrow(
      /duration_ms is an SQL expression/,
    );
    const illegal = ending(b!, 0);
    await expect(write([ending(a!, 0), { ...illegal, end: { ...illegal.end, from: 'ready' as const, to: 'success' as const } }])).rejects.toThrow(
      /illegal task transition/,
    );
    // jsonb_populate_record would store JSON text given for a jsonb column as a JSON string.
    await expect(write([ending(a!, 0), ending(b!, 0, { outputs: '{"outputs":{}}' as unknown as null })])).rejects.toThrow(/outputs is jsonb/);
    // Two results of one run: a bug in the caller, refused before anything is sent.
    await expect(write([ending(a!, 0), { ...ending(b!, 0), run: ending(a!, 0).run }])).rejects.toThrow(/same run/);
    const statuses = await db('tasks').whereIn('id', [a!.task.id, b!.task.id]).pluck('status');
    expect(statuses).toEqual(['running', 'running']);
  });

  it('locks runs, then tasks, each in id order, whatever order the results come in and their rows lie in', async () => {
    const [early, late] = await running(2);
    // The earlier run's row rewritten: its new version now lies after the later run's.
    await renewLeases(db, [early!.execution.id], RUNNER.id, 60_000);
    for (const [table, held, free] of [
      ['executions', early!.execution.id, late!.execution.id],
      ['tasks', early!.task.id, late!.task.id],
    ] as const) {
      const holder = await session();
      const other = await session();
      try {
        await holder.query('BEGIN');
        await holder.query(`SELECT id FROM ${table} WHERE id = $1 FOR UPDATE`, [held]);
        // The later one first: the statement must still wait for the earlier row before taking the later one.
        const writing = write([ending(late!, 0), ending(early!, 0)]);
        await waitFor(
          async () => (await db.raw(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%finish_input AS%'`)).rows.length > 0,
          5_000,
          `the statement to wait on the ${table} lock`,
          10,
        );
        await other.query('BEGIN');
        await expect(
          other.query(`SELECT id FROM ${table} WHERE id = $1 FOR UPDATE NOWAIT`, [free]),
          `the later ${table} row is not held yet`,
        ).resolves.toBeDefined();
        await other.query('ROLLBACK');
        if (table === 'tasks') {
          // Waiting for a task, it already holds both runs: runs first, then tasks.
          await other.query('BEGIN');
          await expect(other.query('SELECT id FROM executions WHERE id = $1 FOR UPDATE NOWAIT', [late!.execution.id])).rejects.toThrow(/could not obtain lock/);
          await other.query('ROLLBACK');
        }
        await holder.query('ROLLBACK');
        await writing;
      } finally {
        await holder.end();
        await other.end();
      }
      if (table === 'executions') {
        // Both stored: put them back to running for the tasks' round.
        await db('executions').whereIn('id', [early!.execution.id, late!.execution.id]).update({ phase: 'running' });
        await db('tasks').whereIn('id', [early!.task.id, late!.task.id]).update({ status: 'running' });
      }
    }
    const statuses = await db('tasks').whereIn('id', [early!.task.id, late!.task.id]).pluck('status');
    expect(statuses).toEqual(['success', 'success']);
  });

  /** Holds `sql`'s locks in a session of its own while `write` runs, then commits; answers what `write` answered. */
  async function whileHolding(sql: string, values: unknown[], writing: () => Promise<Array<{ moved: boolean; along: boolean }>>) {
    const holder = await session();
    try {
      await holder.query('BEGIN');
      await holder.query(sql, values);
      const answers = writing();
      await waitFor(
        async () => (await db.raw(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%finish_input AS%'`)).rows.length > 0,
        5_000,
        'the statement to wait on the lock',
        10,
      );
      await holder.query('COMMIT');
      return await answers;
    } finally {
      await holder.end();
    }
  }

  it('leaves a run the sweeper failed while the statement waited for it, and its task, and stores the others', async () => {
    const [lost, kept] = await running(2);
    // The sweeper's change, committed while the statement waits on the row: Postgres checks the row again.
    const answers = await whileHolding(`UPDATE executions SET phase = 'failed', failure_message = 'runner lost' WHERE id = $1`, [lost!.execution.id], () =>
      write([ending(lost!, 0), ending(kept!, 0)]),
    );
    expect(answers).toEqual([
      { moved: false, along: false },
      { moved: true, along: true },
    ]);
    const runs = await db('executions').whereIn('id', [lost!.execution.id, kept!.execution.id]).orderBy('id').select('phase', 'failure_message');
    expect(runs).toEqual([
      { phase: 'failed', failure_message: 'runner lost' },
      { phase: 'succeeded', failure_message: null },
    ]);
    expect(await db('tasks').whereIn('id', [lost!.task.id, kept!.task.id]).orderBy('id').pluck('status')).toEqual(['running', 'success']);
  });

  it('stores a run’s result but leaves its task when the task was killed while the statement waited for it', async () => {
    const [killed, kept] = await running(2);
    const answers = await whileHolding(`UPDATE tasks SET status = 'killed' WHERE id = $1`, [killed!.task.id], () =>
      write([ending(killed!, 0), ending(kept!, 0)]),
    );
    expect(answers).toEqual([
      { moved: false, along: true },
      { moved: true, along: true },
    ]);
    expect(await db('tasks').whereIn('id', [killed!.task.id, kept!.task.id]).orderBy('id').pluck('status')).toEqual(['killed', 'success']);
    const ends = await db('events')
      .where({ task_id: killed!.task.id })
      .whereIn('type', ['task.success', 'task.killed'])
      .count<{ count: string }[]>('* as count');
    expect(Number(ends[0]!.count)).toBe(0);
  });

  it('is not held up by output being stored for a run (its key share lock)', async () => {
    const [a, b] = await running(2);
    const holder = await session();
    try {
      // What storing a chunk of output takes on its run's row (the foreign key's check).
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM executions WHERE id = $1 FOR KEY SHARE', [a!.execution.id]);
      const answers = await Promise.race([
        write([ending(a!, 0), ending(b!, 0)]),
        new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2_000)),
      ]);
      expect(answers).toEqual([
        { moved: true, along: true },
        { moved: true, along: true },
      ]);
    } finally {
      await holder.end();
    }
  });

  it('moves tasks to ready with the NOTIFY every runner listens for', async () => {
    const ids = await insertTaskRows(db, [
      { status: 'approved', author: 'U1', target: 'sandbox', script: 'true' },
      { status: 'approved', author: 'U1', target: 'sandbox', script: 'true' },
    ]);
    const { listener, heard } = await listen(CHANNEL_READY);
    try {
      // A gate passing the first change only.
      const firstOnly: AlongWith = { ctes: 'first_only AS (SELECT 0 AS ord)', gate: 'first_only', bindings: [] };
      const changes = ids.map((taskId): Transition => ({ taskId, from: 'approved', to: 'ready', actor: 'U1' }));
      expect(await transitionTasksAlong(db, changes, firstOnly)).toEqual([
        { moved: true, along: true },
        { moved: false, along: false },
      ]);
      await waitFor(async () => heard.length >= 1, 5_000, 'the ready notification');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(heard).toEqual([String(ids[0])]);
      const events = await db('events').whereIn('task_id', ids).where({ type: 'task.ready' }).select('task_id', 'actor', 'data');
      expect(events).toEqual([{ task_id: ids[0], actor: 'U1', data: { from: 'approved' } }]);
    } finally {
      await listener.end();
    }
  });

  it('knows every jsonb column of tasks (a string given for one is refused, not stored as a JSON string)', async () => {
    const jsonb = await db('information_schema.columns').where({ table_name: 'tasks', data_type: 'jsonb' }).orderBy('column_name').pluck('column_name');
    expect(jsonb).toEqual([...TASK_JSONB_COLUMNS].sort());
  });

  it('stores half an emoji in a single transition’s or event’s data as U+FFFD, as the batch does', async () => {
    const [id] = await insertTaskRows(db, [{ status: 'approved', author: 'U1', target: 'sandbox', script: 'true' }]);
    // A reason typed in Slack arrives as JSON, which may carry a lone surrogate.
    expect(await transitionTask(db, { taskId: id!, from: 'approved', to: 'ready', actor: 'U1', data: { reason: 'ok \ud83d' } })).not.toBeNull();
    await appendEvent(db, { taskId: id!, type: 'task.noted', actor: 'U1', data: { note: '\udc00 end' } });
    const events = await db('events').where({ task_id: id }).whereIn('type', ['task.ready', 'task.noted']).orderBy('id').pluck('data');
    expect(events).toEqual([{ from: 'approved', reason: 'ok \ufffd' }, { note: '\ufffd end' }]);
  });
});
