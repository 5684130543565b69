/**
 * Bounded log reads (review of issue 10, M5): Postgres computes where each chunk's text starts in
 * the assembled log (host labels and all) without sending the output, and a range is read from
 * the chunks that hold it. Every byte must be the same as assembling the whole log and slicing
 * it: checked here on random runs (one host and several, countersign's own lines, line breaks of
 * every kind, unfinished lines, multibyte text) on a real Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionLogText, LogAssembler, RunLog } from '../../src/service/logs.js';
import { insertChunks, tailChunks } from '../../src/store/output.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { insertTaskRows } from '../support/taskRows.js';

describe('log layout and ranges', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  let seed = 12345;
  const random = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const pieces = ['a', 'line\n', '\n', '\n\n', 'x\r\ny', '\r', 'é', '😀', '\u2028', '\u2029z', 'tail', '\x1b[31mred\x1b[0m', '\nnext', ''];

  async function run(hosts: number, chunks: number): Promise<number> {
    const [taskId] = await insertTaskRows(database.db, [{ status: 'running', author: 'U1', target: 'sandbox', script: 'true' }]);
    const [execution] = await database
      .db('executions')
      .insert({ task_id: taskId, plan: JSON.stringify([]), runner_id: 'test', lease_until: database.db.fn.now() })
      .returning<Array<{ id: number }>>('id');
    const steps =
      hosts === 0
        ? []
        : await database
            .db('execution_steps')
            .insert(
              Array.from({ length: hosts }, (_, i) => ({
                execution_id: execution!.id,
                group_index: 0,
                host: `web-${i}.example`,
                port: 22,
                user: 'deploy',
                run_token: `t${i}`,
              })),
            )
            .returning<Array<{ id: number }>>('id');
    const rows = Array.from({ length: chunks }, () => {
      const stepId = random(8) === 0 || steps.length === 0 ? null : steps[random(steps.length)]!.id;
      const data = Array.from({ length: 1 + random(6) }, () => pieces[random(pieces.length)]).join('');
      return { executionId: execution!.id, stepId, stream: stepId === null ? ('system' as const) : ('stdout' as const), data };
    });
    for (const row of rows) await insertChunks(database.db, [row]); // one row each, in order
    return execution!.id;
  }

  /** The first step's id, or null (countersign's own line) for a run without steps. */
  const chunks0 = (ids: Array<number | string>) => (ids.length === 0 ? null : Number(ids[0]));

  async function collect(iterable: AsyncIterable<Buffer>): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of iterable) parts.push(part);
    return Buffer.concat(parts);
  }

  it('gives the same size and the same bytes for any range as the whole assembled log', async () => {
    for (const hosts of [1, 2, 3, 0]) {
      for (let round = 0; round < 4; round++) {
        const executionId = await run(hosts, 5 + random(40));
        const whole = Buffer.from(await executionLogText(database.db, executionId), 'utf8');
        const log = await RunLog.open(database.db, executionId);
        const layout = await log.layout({ from: 0 });
        expect(layout.size).toBe(whole.length);
        for (let probe = 0; probe < 12; probe++) {
          const from = random(whole.length + 1);
          const to = from + random(whole.length - from + 1);
          const at = (await log.layout({ from })).at;
          const got = at ? await collect(log.bytes(at, from, to)) : Buffer.alloc(0);
          expect(got.equals(whole.subarray(from, to)), `hosts ${hosts}, bytes ${from}-${to}`).toBe(true);
          const suffix = 1 + random(whole.length + 5);
          const tail = await log.layout({ suffix });
          const tailBytes = tail.at ? await collect(log.bytes(tail.at, Math.max(0, whole.length - suffix), whole.length)) : Buffer.alloc(0);
          expect(tailBytes.equals(whole.subarray(Math.max(0, whole.length - suffix))), `hosts ${hosts}, last ${suffix} bytes`).toBe(true);
        }
        // Resumed after the last chunk, an assembler adds what comes next exactly as the whole log grows.
        const next = {
          executionId,
          stepId: chunks0(await database.db('execution_steps').where({ execution_id: executionId }).pluck('id')),
          stream: 'stdout' as const,
          data: 'more\nlines',
        };
        const resumedAtEnd = log.assemblerAt(layout.end);
        await insertChunks(database.db, [next]);
        const [stored] = await database
          .db('output_chunks')
          .where({ execution_id: executionId })
          .orderBy('id', 'desc')
          .limit(1)
          .select('id', 'step_id', 'stream', 'data');
        const grown = Buffer.from(await executionLogText(database.db, executionId), 'utf8');
        const added = resumedAtEnd.add([{ ...stored, id: Number(stored.id), step_id: stored.step_id === null ? null : Number(stored.step_id) }]);
        expect(Buffer.concat([whole, Buffer.from(added, 'utf8')]).equals(grown), `hosts ${hosts}, after the end`).toBe(true);
        // An assembler resumed at any chunk carries on exactly as one that read everything.
        const chunks = await database.db('output_chunks').where({ execution_id: executionId }).orderBy('id').select('id', 'step_id', 'stream', 'data');
        const middle = chunks[random(chunks.length - 1)]!;
        const layoutAt = await log.layout({ untilId: Number(middle.id) - 1 });
        const at = (await log.layout({ from: layoutAt.size })).at;
        // The middle chunk starts at or after that offset: there is always a chunk to resume at.
        expect(at, `hosts ${hosts}, a chunk to resume at`).toBeDefined();
        const resumed = log
          .assemblerAt(at!)
          .add(chunks.filter((c) => Number(c.id) >= at!.id).map((c) => ({ ...c, id: Number(c.id), step_id: c.step_id === null ? null : Number(c.step_id) })));
        expect(Buffer.from(resumed, 'utf8').equals(grown.subarray(at!.start)), `hosts ${hosts}, resumed at chunk ${at!.id}`).toBe(true);
      }
    }
  }, 120_000);

  it('reads a 4 MB log in batches of a few hundred kilobytes', async () => {
    const [taskId] = await insertTaskRows(database.db, [{ status: 'running', author: 'U1', target: 'sandbox', script: 'true' }]);
    const [execution] = await database
      .db('executions')
      .insert({ task_id: taskId, plan: JSON.stringify([]), runner_id: 'test', lease_until: database.db.fn.now() })
      .returning<Array<{ id: number }>>('id');
    const line = `${'y'.repeat(99)}\n`;
    for (let i = 0; i < 16; i++) await insertChunks(database.db, [{ executionId: execution!.id, stepId: null, stream: 'system', data: line.repeat(2621) }]);
    const log = await RunLog.open(database.db, execution!.id);
    const layout = await log.layout({ from: 0 });
    expect(layout.size).toBe(16 * 2621 * 100);
    let largest = 0;
    let total = 0;
    for await (const part of log.bytes(layout.at!, 0, layout.size)) {
      largest = Math.max(largest, part.length);
      total += part.length;
    }
    expect(total).toBe(layout.size);
    expect(largest).toBeLessThanOrEqual(2 * 262_100);
    expect(new LogAssembler(new Map()).add([])).toBe('');
  });
  it('reads the tail of a log in about the characters it shows, whatever the size of its chunks', async () => {
    const minChars = 5600;
    for (const size of [20, 40, 700, 5599, 5600, 9000, 65_000]) {
      const [taskId] = await insertTaskRows(database.db, [{ status: 'running', author: 'U1', target: 'sandbox', script: 'true' }]);
      const [execution] = await database
        .db('executions')
        .insert({ task_id: taskId, plan: JSON.stringify([]), runner_id: 'test', lease_until: database.db.fn.now() })
        .returning<Array<{ id: number }>>('id');
      const chunkCount = Math.min(300, Math.ceil((3 * minChars) / size) + 2);
      const texts = Array.from({ length: chunkCount }, (_, i) => `${i}:`.padEnd(size, 'abcdefghij').slice(0, size));
      await insertChunks(
        database.db,
        texts.map((data) => ({ executionId: execution!.id, stepId: null, stream: 'system' as const, data })),
      );
      const whole = texts.join('');
      let sent = 0;
      const count = (rows: unknown) => {
        if (Array.isArray(rows)) for (const row of rows) sent += typeof row?.data === 'string' ? row.data.length : 0;
      };
      database.db.on('query-response', count);
      const { chunks, more } = await tailChunks(database.db, execution!.id, minChars).finally(() => database.db.off('query-response', count));
      expect(sent, `characters sent for chunks of ${size}`).toBe(minChars);
      const tail = chunks.map((chunk) => chunk.data).join('');
      // Exactly the last minChars characters, in order: nothing beyond them crossed the wire.
      expect(tail, `chunks of ${size}`).toBe(whole.slice(-minChars));
      expect(more, `chunks of ${size}`).toBe(true);
      const short = await tailChunks(database.db, execution!.id, whole.length + 10);
      expect(short.chunks.map((chunk) => chunk.data).join(''), `whole log, chunks of ${size}`).toBe(whole.slice(-(whole.length + 10)));
      expect(short.more).toBe(false);
    }
  });
});
