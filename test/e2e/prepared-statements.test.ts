/**
 * The hot statements (a task's birth and transitions, the claim, output batches) are prepared
 * once per connection and executed by name (src/store/db.ts prepared()), so Postgres stops
 * planning them on every call. A prepared statement reading `tasks.*` breaks when another
 * replica's migration adds a column (Postgres: "cached plan must not change result type"); the
 * next call must prepare afresh and succeed, and a transaction's retry too. A birth runs
 * straight on a pooled connection (runPrepared, past knex's query building) and must do the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, runPrepared, type Db } from '../../src/store/db.js';
import { claimReady } from '../../src/store/executions.js';
import { insertTasks, transitionTask, type TaskBirth } from '../../src/store/tasks.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { insertTaskRows } from '../support/taskRows.js';

describe('prepared hot statements', () => {
  let database: TestDatabase;
  /** One connection: what it has prepared is what the next call finds. */
  let single: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    single = createDb(database.url, 1);
  });
  afterAll(async () => {
    await single?.destroy();
    await database?.drop();
  });

  const toReady = (taskId: number) => ({ taskId, from: 'approved' as const, to: 'ready' as const, actor: 'U1' });
  const approvedTasks = (n: number) =>
    insertTaskRows(
      database.db,
      Array.from({ length: n }, () => ({ status: 'approved', author: 'U1', target: 'sandbox', script: 'true' })),
    );
  /** Our statements on the single connection, with how often each ran as a prepared statement. */
  const preparedHere = async () =>
    (
      await single.raw<{ rows: Array<{ name: string; statement: string; runs: number }> }>(
        `SELECT name, statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements WHERE name LIKE 'cs%'`,
      )
    ).rows;

  it('runs a transition and the claim by name, prepared once per connection', async () => {
    const ids = await approvedTasks(12);
    for (const id of ids.slice(0, 10)) expect((await transitionTask(single, toReady(id)))?.status).toBe('ready');
    const claimed = await claimReady(single, { id: 'test-runner', key: 7 }, 30_000, '{}', 16);
    expect(claimed.map((c) => c.task.id)).toEqual(ids.slice(0, 10));
    const claimed2 = await claimReady(single, { id: 'test-runner', key: 7 }, 30_000, '{}', 16);
    expect(claimed2).toEqual([]);
    const statements = await preparedHere();
    const transition = statements.find((s) => s.statement.includes('UPDATE tasks SET status = $'));
    const claim = statements.find((s) => s.statement.includes('FOR UPDATE SKIP LOCKED'));
    // Ten transitions through one prepared statement: parsed once, executed ten times.
    expect(transition?.runs).toBe(10);
    expect(claim?.runs).toBe(2);
  });

  it('prepares afresh when a migration changes what tasks.* returns, outside and inside a transaction', async () => {
    const [a, b, c] = await approvedTasks(3);
    expect((await transitionTask(single, toReady(a!)))?.status).toBe('ready');
    // Another replica's migration, on another connection.
    await database.db.raw('ALTER TABLE tasks ADD COLUMN prepared_test_extra int');
    try {
      const moved = await transitionTask(single, toReady(b!));
      expect(moved?.status).toBe('ready');
      expect(moved?.id).toBe(b);
      // The statement again, once more changed: inside a transaction the first try fails (the
      // error aborted it) and the caller's retry works.
      await database.db.raw('ALTER TABLE tasks ADD COLUMN prepared_test_more int');
      const inTrx = () => single.transaction((trx) => transitionTask(trx, toReady(c!)));
      await expect(inTrx()).rejects.toThrow(/cached plan must not change result type/);
      expect((await inTrx())?.status).toBe('ready');
    } finally {
      await database.db.raw('ALTER TABLE tasks DROP COLUMN IF EXISTS prepared_test_extra, DROP COLUMN IF EXISTS prepared_test_more');
    }
    const rows = await database.db('tasks').whereIn('id', [a!, b!, c!]).orderBy('id').pluck('status');
    expect(rows).toEqual(['ready', 'ready', 'ready']);
  });

  const birth = (n: number): TaskBirth => ({
    task: {
      author: 'U1',
      target: 'sandbox',
      type: 'sh',
      script: `echo ${n}`,
      message: `birth ${n}`,
      source: 'api',
      sourceKey: `prepared-birth-${n}`,
      channelId: null,
      reviewChannel: null,
    },
    birth: { actor: 'U1', enter: 'ready', data: { target: 'sandbox', reviewed: false } },
  });

  it('runs a birth by name past knex, prepared once per connection, and prepares afresh when its result type changes', async () => {
    for (const n of [1, 2, 3]) expect((await insertTasks(single, [birth(n)]))[0]?.created).toBe(true);
    const statement = (await preparedHere()).find((s) => s.statement.includes('INSERT INTO tasks (id,'));
    // Numbered as knex numbers it, parsed once, executed three times.
    expect(statement?.statement).toMatch(/unnest\(\$1::/);
    expect(statement?.runs).toBe(3);
    // A column it returns changes type (another replica's migration): the plan's result type changed.
    await database.db.raw('ALTER TABLE tasks ALTER COLUMN last_line TYPE varchar');
    try {
      const [answer] = await insertTasks(single, [birth(4)]);
      expect(answer?.created).toBe(true);
      expect(answer?.task.message).toBe('birth 4');
      // In a transaction the birth goes through knex on the transaction's connection, by the same
      // name: one statement prepared afresh, run by both paths.
      const [inTrx] = await single.transaction((trx) => insertTasks(trx, [birth(5)]));
      expect(inTrx?.task.script).toBe('echo 5');
      const fresh = (await preparedHere()).filter((s) => s.statement.includes('INSERT INTO tasks (id,') && s.name !== statement?.name);
      expect(fresh.map((s) => s.runs)).toEqual([2]);
    } finally {
      await database.db.raw('ALTER TABLE tasks ALTER COLUMN last_line TYPE text');
    }
    expect(
      await database
        .db('tasks')
        .whereIn(
          'source_key',
          [1, 2, 3, 4, 5].map((n) => `prepared-birth-${n}`),
        )
        .count<[{ count: number }]>('* AS count'),
    ).toEqual([{ count: 5 }]);
  });

  it('refuses, before sending, values that do not match the placeholders or are undefined (knex refused them too)', async () => {
    await expect(runPrepared(single, 'SELECT ?::int AS a, ?::int AS b', [1])).rejects.toThrow(/1 values for 2 placeholders/);
    await expect(runPrepared(single, 'SELECT ?::int[] AS a', [[1, undefined]])).rejects.toThrow(/an undefined value/);
    await expect(runPrepared(single, 'SELECT ?::int AS a', [undefined])).rejects.toThrow(/an undefined value/);
    // The connection went back to the pool each time (the pool has one).
    expect(await runPrepared<{ a: number; literal: string }>(single, "SELECT ?::int AS a, '\\?'::text AS literal", [7])).toEqual([{ a: 7, literal: '?' }]);
  });
});
