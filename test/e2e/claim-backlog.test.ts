/**
 * A claim costs the same whatever the backlog of ready tasks behind it. A burst (a schedule's
 * fan-out, a fleet command) makes thousands of tasks ready faster than autovacuum re-analyzes the
 * table; on statistics that still say "hardly any task is ready", the claim's UPDATE used to find
 * its rows through an index of ready tasks and read every one of them.
 * pg_stat_get_xact_tuples_returned counts the entries one transaction read through each index.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimReady } from '../../src/store/executions.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { insertTaskRows } from '../support/taskRows.js';

describe('the claim under a backlog of ready tasks', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('reads the tasks it claims by primary key, not every ready task', async () => {
    const { db } = database;
    await insertTaskRows(
      db,
      Array.from({ length: 50 }, () => ({ status: 'success', author: 'U1', target: 'sandbox', script: 'true' })),
    );
    // Statistics taken before the burst, when no task was ready, and kept so (autovacuum could
    // otherwise re-analyze the table mid-test, and the old statement would then look cheap too).
    await db.raw('ALTER TABLE tasks SET (autovacuum_enabled = false)');
    await db.raw('ANALYZE tasks');
    const claimable = await insertTaskRows(
      db,
      Array.from({ length: 9 }, () => ({ status: 'ready', author: 'U1', target: 'sandbox', script: 'true' })),
    );
    const backlog = await insertTaskRows(
      db,
      Array.from({ length: 2000 }, () => ({ status: 'ready', author: 'U1', target: 'sandbox', script: 'true' })),
    );
    expect(backlog).toHaveLength(2000);

    const read = await db.transaction(async (trx) => {
      const claimed = await claimReady(trx, { id: 'test-runner', key: 7 }, 30_000, '{}', 9);
      expect(claimed.map((c) => c.task.id)).toEqual(claimable);
      const rows = await trx.raw<{ rows: Array<{ indexrelname: string; read: string }> }>(
        `SELECT c.relname AS indexrelname, pg_stat_get_xact_tuples_returned(c.oid) AS read
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'tasks'::regclass`,
      );
      return new Map(rows.rows.map((row) => [row.indexrelname, Number(row.read)]));
    });
    // The oldest nine ready tasks, read once through the queue's own index; each then found by
    // its id (with the audit event's and the run's foreign-key checks): a few reads per task
    // claimed, none per task waiting. Before: the queue's index read whole for the UPDATE (2,018).
    expect(read.get('tasks_ready_idx')).toBe(9);
    const allRead = [...read.values()].reduce((sum, n) => sum + n, 0);
    expect(allRead).toBeLessThan(100);
  });
});
