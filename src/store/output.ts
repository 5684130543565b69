/** Stored output: chunks in arrival order, one row per stream per flush. */
import type { OutputStream } from '../domain/task.js';
import type { Queryable } from './db.js';
import { CHANNEL_TASK } from './notify.js';

export interface OutputChunk {
  executionId: number;
  stepId: number | null;
  stream: OutputStream;
  data: string;
}

export async function insertChunks(db: Queryable, chunks: readonly OutputChunk[]): Promise<void> {
  if (chunks.length === 0) return;
  await db('output_chunks').insert(
    chunks.map((chunk) => ({ execution_id: chunk.executionId, step_id: chunk.stepId, stream: chunk.stream, data: chunk.data })),
  );
}

/**
 * A run's buffered output in one statement: its chunks, the run's byte count, and (when
 * `taskId` is given) one NOTIFY for the task's followers, all at one commit.
 */
export async function storeBatch(db: Queryable, executionId: number, chunks: readonly OutputChunk[], bytes: number, taskId?: number): Promise<void> {
  if (chunks.length === 0) return;
  const values = chunks.map(() => '(?::bigint, ?::bigint, ?, ?)').join(', ');
  await db.raw(
    `WITH chunk AS (INSERT INTO output_chunks (execution_id, step_id, stream, data) VALUES ${values}),
     counted AS (UPDATE executions SET output_bytes = output_bytes + ? WHERE id = ?)
     SELECT ${taskId !== undefined ? 'pg_notify(?, ?)' : '1'}`,
    [
      ...chunks.flatMap((chunk) => [chunk.executionId, chunk.stepId, chunk.stream, chunk.data]),
      bytes,
      executionId,
      ...(taskId !== undefined ? [CHANNEL_TASK, String(taskId)] : []),
    ],
  );
}

export interface StoredChunk {
  id: number;
  step_id: number | null;
  stream: OutputStream;
  data: string;
}

export async function chunksFor(db: Queryable, executionId: number): Promise<StoredChunk[]> {
  return db('output_chunks').where({ execution_id: executionId }).orderBy('id').select<StoredChunk[]>('id', 'step_id', 'stream', 'data');
}

/**
 * The newest chunks of a run, oldest first, holding at least its last `minChars` characters when
 * it printed that much: read newest first in small batches, each chunk cut to its last
 * `minChars` characters, at most `maxChunks` rows. A tail read never reads the whole log.
 * `more`: earlier output exists that was not read.
 */
export async function tailChunks(db: Queryable, executionId: number, minChars: number, maxChunks = 400): Promise<{ chunks: StoredChunk[]; more: boolean }> {
  const newestFirst: StoredChunk[] = [];
  let chars = 0;
  let beforeId: number | null = null;
  while (newestFirst.length < maxChunks) {
    const query = db('output_chunks')
      .where({ execution_id: executionId })
      .orderBy('id', 'desc')
      .limit(Math.min(50, maxChunks - newestFirst.length))
      .select<StoredChunk[]>('id', 'step_id', 'stream', db.raw('right(data, ?) AS data', [minChars]));
    if (beforeId !== null) query.where('id', '<', beforeId);
    const rows = await query;
    for (const row of rows) {
      newestFirst.push(row);
      chars += row.data.length;
      beforeId = row.id;
      if (chars >= minChars) break;
    }
    if (chars >= minChars || rows.length === 0) break;
  }
  const oldestRead = newestFirst.at(-1);
  const more = oldestRead !== undefined && (chars >= minChars || newestFirst.length >= maxChunks)
    ? (await db('output_chunks').where({ execution_id: executionId }).where('id', '<', oldestRead.id).first('id')) !== undefined || oldestRead.data.length >= minChars
    : false;
  return { chunks: newestFirst.reverse(), more };
}

/** About the last `maxChars` characters a step printed (its newest chunks), in order. */
export async function recentOutput(db: Queryable, executionId: number, stepId: number, maxChars: number): Promise<string> {
  const rows = await db('output_chunks')
    .where({ execution_id: executionId, step_id: stepId })
    .whereNot({ stream: 'system' })
    .orderBy('id', 'desc')
    .limit(50)
    .select<{ data: string }[]>('data');
  let text = '';
  for (const row of rows) {
    text = row.data + text;
    if (text.length >= maxChars) break;
  }
  return text.slice(-maxChars);
}

/** recentOutput for every step of a run at once: one query, however many hosts. */
export async function recentOutputByStep(db: Queryable, executionId: number, maxChars: number): Promise<Map<number, string>> {
  const rows = await db
    .select<{ step_id: number; data: string }[]>('step_id', 'data')
    .from(
      db('output_chunks')
        .where({ execution_id: executionId })
        .whereNot({ stream: 'system' })
        .whereNotNull('step_id')
        .select('step_id', 'data', 'id', db.raw('row_number() over (partition by step_id order by id desc) as newest'))
        .as('recent'),
    )
    .where('newest', '<=', 50)
    .orderBy([{ column: 'step_id' }, { column: 'id' }]);
  const tails = new Map<number, string>();
  for (const row of rows) tails.set(row.step_id, ((tails.get(row.step_id) ?? '') + row.data).slice(-maxChars));
  return tails;
}
