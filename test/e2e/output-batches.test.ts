/**
 * How a run's output reaches Postgres (src/runner/outputRecorder.ts, store/output.ts storeBatch),
 * on a real Postgres: at most maxBufferBytes per statement, in order; and interleaved output
 * (stdout and stderr taking turns, as `set -x` does) stored however many rows it makes. A
 * statement with one set of parameters per row failed past 16,383 rows (Postgres takes 65,535
 * parameters), and the recorder retried that batch forever: the run never ended.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutputRecorder } from '../../src/runner/outputRecorder.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { insertTaskRows } from '../support/taskRows.js';

describe('OutputRecorder batches on Postgres', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  async function execution(): Promise<number> {
    const [taskId] = await insertTaskRows(database.db, [{ status: 'running', author: 'U1', target: 'sandbox', script: 'true' }]);
    const [row] = await database
      .db('executions')
      .insert({ task_id: taskId, plan: JSON.stringify([]), runner_id: 'test', lease_until: database.db.fn.now() })
      .returning<Array<{ id: number }>>('id');
    return row!.id;
  }
  const stored = (executionId: number) => database.db('output_chunks').where({ execution_id: executionId }).orderBy('id').select('stream', 'data');

  it('stores at most maxBufferBytes per statement, in order, whatever waits', async () => {
    const executionId = await execution();
    // Each statement's byte count (the one it adds to the run's output_bytes).
    const batches: number[] = [];
    const count = (query: { sql: string; bindings?: unknown[] }) => {
      // The byte count and the run's id end the parameters (no NOTIFY without a task id).
      if (query.sql.includes('INSERT INTO output_chunks')) batches.push(Number(query.bindings?.at(-2)));
    };
    database.db.on('query', count);
    const r = new OutputRecorder(database.db, executionId, { flushMs: 3_600_000, maxBufferBytes: 100, highWaterBytes: 1 << 30, onError: () => undefined });
    const lines = Array.from({ length: 10 }, (_, i) => `${String(i).padStart(2, '0')} ${'x'.repeat(36)}\n`);
    // Alternating streams: each line is a row of its own (40 bytes).
    lines.forEach((line, i) => r.write(null, i % 2 === 0 ? 'stdout' : 'stderr', line));
    try {
      expect(await r.close()).toBe(true);
    } finally {
      database.db.off('query', count);
    }
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.every((bytes) => bytes > 0 && bytes <= 100)).toBe(true);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(400);
    expect((await stored(executionId)).map((row) => row.data)).toEqual(lines);
  });

  it('stores text as written whichever way the batch is sent (each chunk a parameter, or one array of them)', async () => {
    // Characters an array literal must escape, and ones it must not mistake for syntax.
    const awkward = ['say "hi"\n', 'C:\\path\\to {a,b}\n', 'NULL\n', '', 'tab\there, comma\n', 'emoji \u{1F600} and é\n', '\\"\n'];
    for (const rows of [awkward.length, 40]) {
      const executionId = await execution();
      const r = new OutputRecorder(database.db, executionId, {
        flushMs: 3_600_000,
        maxBufferBytes: 1 << 20,
        highWaterBytes: 1 << 30,
        onError: () => undefined,
      });
      const written = Array.from({ length: rows }, (_, i) => awkward[i % awkward.length]!).filter((text) => text !== '');
      // Alternating streams: a row per write.
      written.forEach((text, i) => r.write(null, i % 2 === 0 ? 'stdout' : 'stderr', text));
      expect(await r.close()).toBe(true);
      expect((await stored(executionId)).map((row) => row.data)).toEqual(written);
    }
  });

  it('stores 20,000 interleaved stdout and stderr lines, a row each, in one batch', async () => {
    const executionId = await execution();
    const errors: unknown[] = [];
    const r = new OutputRecorder(database.db, executionId, {
      flushMs: 3_600_000,
      maxBufferBytes: 512 * 1024,
      highWaterBytes: 2 * 1024 * 1024,
      onError: (error) => errors.push(error),
    });
    for (let i = 0; i < 20_000; i++) r.write(null, i % 2 === 0 ? 'stdout' : 'stderr', 'x\n');
    expect(await r.close()).toBe(true);
    expect(errors).toEqual([]);
    const rows = await stored(executionId);
    expect(rows).toHaveLength(20_000);
    expect(rows.slice(0, 3).map((row) => row.stream)).toEqual(['stdout', 'stderr', 'stdout']);
    const [{ output_bytes }] = await database.db('executions').where({ id: executionId }).select('output_bytes');
    expect(Number(output_bytes)).toBe(40_000);
  });
});
