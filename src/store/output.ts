/** Stored output: chunks in arrival order, one row per stream per flush. */
import type { OutputStream } from '../domain/task.js';
import { prepared, type Queryable } from './db.js';
import { CHANNEL_TASK } from './notify.js';

export interface OutputChunk {
  executionId: number;
  stepId: number | null;
  stream: OutputStream;
  data: string;
}

export async function insertChunks(db: Queryable, chunks: readonly OutputChunk[]): Promise<void> {
  if (chunks.length === 0) return;
  await db('output_chunks').insert(chunks.map((chunk) => ({ execution_id: chunk.executionId, step_id: chunk.stepId, stream: chunk.stream, data: chunk.data })));
}

/** Up to this many chunks, each chunk's text is a parameter of its own (a handful of statement shapes). */
const SEPARATE_TEXTS = 16;

/**
 * A run's buffered output in one statement: its chunks, the run's byte count, and (when
 * `taskId` is given) one NOTIFY for the task's followers, all at one commit.
 */
export async function storeBatch(db: Queryable, executionId: number, chunks: readonly OutputChunk[], bytes: number, taskId?: number): Promise<void> {
  if (chunks.length === 0) return;
  // Arrays, not a VALUES row per chunk: interleaved output (stdout and stderr lines taking turns)
  // makes many small chunks, and Postgres takes at most 65,535 parameters per statement.
  // A few big chunks (a flood) send their text as parameters of their own: one array literal of
  // half a megabyte (and its escaped copies) lands in V8's large-object space, which only a full
  // collection frees, and a 500 MB flood grew the heap by tens of megabytes that way.
  const separate = chunks.length <= SEPARATE_TEXTS;
  await prepared(
    db.raw(
      `WITH chunk AS (
       INSERT INTO output_chunks (execution_id, step_id, stream, data)
       SELECT e, s, t, d FROM unnest(?::bigint[], ?::bigint[], ?::text[], ${separate ? `ARRAY[${chunks.map(() => '?').join(', ')}]::text[]` : '?::text[]'}) WITH ORDINALITY AS c(e, s, t, d, n) ORDER BY n
     ),
     counted AS (UPDATE executions SET output_bytes = output_bytes + ? WHERE id = ?)
     SELECT ${taskId !== undefined ? 'pg_notify(?, ?)' : '1'}`,
      [
        // Each array is one parameter: pg encodes a JS array as a Postgres array.
        chunks.map((chunk) => chunk.executionId),
        chunks.map((chunk) => chunk.stepId),
        chunks.map((chunk) => chunk.stream),
        ...(separate ? chunks.map((chunk) => chunk.data) : [chunks.map((chunk) => chunk.data)]),
        bytes,
        executionId,
        ...(taskId !== undefined ? [CHANNEL_TASK, String(taskId)] : []),
        // knex's binding type has no arrays with nulls (a step id is null for the run's own lines).
      ] as never,
    ),
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
 * Chunks of a run from id `fromId` on (inclusive), oldest first: at most `limit` of them, and no
 * more than about `budgetBytes` of text (always at least one chunk). A chunk can be up to about a
 * megabyte (a batch that waited out a database outage), so a read is bounded by bytes, not rows.
 * `more`: there are further chunks (up to `untilId`) after these.
 */
export async function chunksFrom(
  db: Queryable,
  executionId: number,
  fromId: number,
  options: { budgetBytes: number; limit?: number; untilId?: number },
): Promise<{ chunks: StoredChunk[]; more: boolean }> {
  const limit = options.limit ?? 500;
  // One row past the limit, and the rows past the budget, come back without their text: they only say "more".
  const result = await db.raw<{ rows: Array<{ id: string; step_id: string | null; stream: StoredChunk['stream']; data: string | null }> }>(
    `SELECT id, step_id, stream, CASE WHEN before < ? AND n <= ? THEN data END AS data FROM (
       SELECT id, step_id, stream, data, sum(octet_length(data)) OVER w - octet_length(data) AS before, row_number() OVER w AS n
         FROM output_chunks
        WHERE execution_id = ? AND id >= ? AND id <= ?
       WINDOW w AS (ORDER BY id)
        ORDER BY id LIMIT ?
     ) c ORDER BY id`,
    [options.budgetBytes, limit, executionId, fromId, options.untilId ?? Number.MAX_SAFE_INTEGER, limit + 1],
  );
  const chunks: StoredChunk[] = [];
  for (const row of result.rows) {
    if (row.data === null) break;
    chunks.push({ id: Number(row.id), step_id: row.step_id === null ? null : Number(row.step_id), stream: row.stream, data: row.data });
  }
  return { chunks, more: result.rows.length > chunks.length };
}

/** Where a chunk's text starts in a run's assembled log, and what came just before it. */
export interface ChunkPosition {
  id: number;
  /** Byte offset of the chunk's assembled text (labels included) in the whole log. */
  start: number;
  /** The previous (non-empty) chunk's step and whether it ended a line; `first`: there was none. */
  previous: { stepId: number | null; endsLine: boolean } | 'first';
}

export interface LogLayout {
  /** Bytes of the assembled log (up to `untilId` when given). */
  size: number;
  /** Id of the newest chunk counted, 0 when none. */
  lastId: number;
  /** The first chunk whose text reaches past the byte asked for; null when none does. */
  at: ChunkPosition | null;
  /** Just after the last chunk counted: where the next chunk's text will start. */
  end: ChunkPosition;
}

/**
 * How the assembled log of a run is laid out, computed by Postgres from each chunk's size and line
 * breaks: no output text reaches this process. Mirrors LogAssembler (src/service/logs.ts), which
 * prefixes `[label] ` to every line start when a run has several hosts: `labelBytes` gives each
 * step's prefix length (key `system` for countersign's own lines, `unknown` for any other), or
 * null for an unlabelled log. A line starts after a newline followed by a character that is not
 * a line terminator (`\n(?=.)` in JavaScript: not \n, \r, U+2028 or U+2029), at the start of a
 * step's text after another step's, and at the very start; a newline is added when a step's text
 * follows another step's unfinished line.
 *
 * `from`: the position of the chunk holding that byte; `suffix`: of the chunk holding the first of
 * the last `suffix` bytes.
 */
export async function logLayout(
  db: Queryable,
  executionId: number,
  options: { labelBytes: Readonly<Record<string, number>> | null; from?: number; suffix?: number; untilId?: number },
): Promise<LogLayout> {
  const labelled = options.labelBytes !== null;
  type Row = {
    size: string;
    last_id: string;
    last_step: string | null;
    last_nl: boolean | null;
    id: string | null;
    start: string | null;
    prev_step: string | null;
    prev_nl: boolean | null;
    is_first: boolean | null;
  };
  const result = await db.raw<{ rows: Row[] }>(
    `WITH meta AS (
       SELECT id, step_id, octet_length(data) AS bytes, right(data, 1) = chr(10) AS ends_nl,
              ${labelled ? `regexp_count(data, '\n[^\n\r\u2028\u2029]')` : '0'} AS inner_starts
         FROM output_chunks WHERE execution_id = ? AND id <= ? AND data <> ''
     ), seq AS (
       SELECT m.*, lag(step_id) OVER w AS prev_step, lag(ends_nl) OVER w AS prev_nl, row_number() OVER w = 1 AS is_first,
              coalesce((?::jsonb ->> coalesce(step_id::text, 'system'))::int, (?::jsonb ->> 'unknown')::int, 0) AS label
         FROM meta m WINDOW w AS (ORDER BY id)
     ), sized AS (
       SELECT id, prev_step, prev_nl, is_first,
              bytes + CASE WHEN ? THEN
                  (CASE WHEN is_first OR prev_step IS DISTINCT FROM step_id OR prev_nl THEN label ELSE 0 END)
                + inner_starts * label
                + (CASE WHEN NOT is_first AND prev_step IS DISTINCT FROM step_id AND NOT prev_nl THEN 1 ELSE 0 END)
              ELSE 0 END AS len
         FROM seq
     ), placed AS (
       SELECT *, sum(len) OVER (ORDER BY id) - len AS start FROM sized
     ), totals AS (
       SELECT coalesce(sum(len), 0)::bigint AS size, coalesce(max(id), 0)::bigint AS last_id FROM sized
     ), newest AS (
       SELECT step_id AS last_step, ends_nl AS last_nl FROM meta ORDER BY id DESC LIMIT 1
     )
     SELECT t.size, t.last_id, n.last_step, n.last_nl, p.id, p.start, p.prev_step, p.prev_nl, p.is_first
       FROM totals t LEFT JOIN newest n ON true LEFT JOIN LATERAL (
         SELECT id, start, prev_step, prev_nl, is_first FROM placed
          WHERE start + len > (CASE WHEN ?::bigint IS NULL THEN ?::bigint ELSE greatest(t.size - ?::bigint, 0) END)
          ORDER BY id LIMIT 1
       ) p ON true`,
    [
      executionId,
      options.untilId ?? Number.MAX_SAFE_INTEGER,
      JSON.stringify(options.labelBytes ?? {}),
      JSON.stringify(options.labelBytes ?? {}),
      labelled,
      options.suffix ?? null,
      options.from ?? 0,
      options.suffix ?? null,
    ],
  );
  const row = result.rows[0];
  const at: ChunkPosition | null =
    row && row.id !== null
      ? {
          id: Number(row.id),
          start: Number(row.start),
          previous: row.is_first ? 'first' : { stepId: row.prev_step === null ? null : Number(row.prev_step), endsLine: row.prev_nl === true },
        }
      : null;
  const size = Number(row?.size ?? 0);
  const lastId = Number(row?.last_id ?? 0);
  const end: ChunkPosition = {
    id: lastId + 1,
    start: size,
    previous: !row || row.last_nl === null ? 'first' : { stepId: row.last_step === null ? null : Number(row.last_step), endsLine: row.last_nl },
  };
  return { size, lastId, at, end };
}

/**
 * The newest chunks of a run, oldest first, holding at least its last `minChars` characters when
 * it printed that much: read newest first in small batches, each chunk cut to the characters the
 * tail still lacks, at most `maxChunks` rows. A tail read never reads the whole log, and sends
 * about `minChars` characters however large the chunks.
 * `more`: earlier output exists that was not read.
 */
export async function tailChunks(db: Queryable, executionId: number, minChars: number, maxChunks = 400): Promise<{ chunks: StoredChunk[]; more: boolean }> {
  const newestFirst: StoredChunk[] = [];
  let chars = 0;
  let beforeId: number | null = null;
  let oldestCut = false;
  // Batches grow (1, 4, 16, 50 rows): a chunk may hold 64K characters, so the newest one often
  // holds the whole tail, and a fixed batch would read many cut chunks nobody needs.
  let batch = 1;
  while (newestFirst.length < maxChunks) {
    // Each row is cut, in SQL, to what the tail still lacks after the newer rows of its batch, so
    // a batch of large chunks sends at most the missing characters, not a tail's worth per row.
    const missing = minChars - chars;
    const newest = db('output_chunks')
      .where({ execution_id: executionId })
      .orderBy('id', 'desc')
      .limit(Math.min(batch, maxChunks - newestFirst.length))
      .select(
        'id',
        'step_id',
        'stream',
        'data',
        db.raw('greatest(0, ? - coalesce(sum(length(data)) OVER (ORDER BY id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::int AS keep', [
          missing,
        ]),
      );
    if (beforeId !== null) newest.where('id', '<', beforeId);
    const rows = await db
      .from(newest.as('newest'))
      .orderBy('id', 'desc')
      .select<(StoredChunk & { cut: boolean })[]>('id', 'step_id', 'stream', db.raw('right(data, keep) AS data'), db.raw('length(data) > keep AS cut'));
    for (const { cut, ...row } of rows) {
      if (chars >= minChars) break;
      newestFirst.push(row);
      chars += row.data.length;
      beforeId = row.id;
      oldestCut = cut;
    }
    if (chars >= minChars || rows.length === 0) break;
    batch = Math.min(50, batch * 4);
  }
  const oldestRead = newestFirst.at(-1);
  const more =
    oldestRead !== undefined && (chars >= minChars || newestFirst.length >= maxChunks)
      ? oldestCut || (await db('output_chunks').where({ execution_id: executionId }).where('id', '<', oldestRead.id).first('id')) !== undefined
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
