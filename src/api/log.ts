/**
 * GET /api/v1/tasks/{id}/log: the latest run's stored output (already masked when stored) as
 * text, a byte range of it (`Range` or `?offset=`), or a live Server-Sent Events stream that
 * polls the database, so it follows a run whichever replica is running it.
 */
import { isTerminal } from '../domain/lifecycle.js';
import type { Task } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { latestExecution } from '../store/executions.js';
import { getTask } from '../store/tasks.js';
import { chunksAfter, executionLogText, hostLabelsOf, LogAssembler } from '../service/logs.js';
import { ApiError } from './errors.js';
import type { ApiContext } from './routes.js';

export interface LogDeps {
  db: Db;
  /** How often a follower looks for new output. */
  logPollMs: number;
}

export async function handleLog(deps: LogDeps, ctx: ApiContext, task: Task, query: { offset?: number | undefined; follow?: '0' | '1' | undefined }): Promise<void> {
  if (query.follow === '1') return followLog(deps, ctx, task, query.offset ?? 0);
  const execution = await latestExecution(deps.db, task.id);
  const log = Buffer.from(execution ? await executionLogText(deps.db, execution.id) : '', 'utf8');
  const { res } = ctx;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('X-Log-Size', String(log.length));
  res.setHeader('X-Task-Status', task.status);
  res.type('text/plain; charset=utf-8');
  const range = parseRange(ctx.req.get('range'), log.length);
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${log.length}`);
    throw new ApiError(416, 'range_not_satisfiable', `The log has ${log.length} bytes.`);
  }
  if (range) {
    res.status(206).setHeader('Content-Range', `bytes ${range.start}-${range.end}/${log.length}`);
    res.send(log.subarray(range.start, range.end + 1));
    return;
  }
  const offset = query.offset ?? 0;
  if (offset > log.length) throw new ApiError(416, 'range_not_satisfiable', `offset ${offset} is past the end of the log (${log.length} bytes).`);
  res.status(200).send(log.subarray(offset));
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else (several ranges, other units) is ignored, as HTTP allows. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  const match = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

async function followLog(deps: LogDeps, ctx: ApiContext, task: Task, offset: number): Promise<void> {
  const { req, res } = ctx;
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  let closed = false;
  req.on('close', () => (closed = true));
  const send = async (event: string, data: unknown) => {
    if (closed) return;
    // A client that went away never drains: wait for whichever comes first.
    if (!res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.once('drain', done);
        res.once('close', done);
      });
    }
  };
  let assembler: LogAssembler | null = null;
  let executionId: number | null = null;
  let skip = offset;
  let lastBeat = Date.now();
  try {
    while (!closed) {
      // Read the status before the output: output stored before the task ended is then surely seen.
      const now = (await getTask(deps.db, task.id)) ?? task;
      if (executionId === null) {
        const execution = await latestExecution(deps.db, task.id);
        if (execution) {
          executionId = execution.id;
          assembler = new LogAssembler(await hostLabelsOf(deps.db, execution.id));
        }
      }
      let more = false;
      if (assembler && executionId !== null) {
        const chunks = await chunksAfter(deps.db, executionId, assembler.lastChunkId);
        more = chunks.length === 500;
        let text = assembler.add(chunks);
        if (skip > 0 && text !== '') {
          const bytes = Buffer.from(text, 'utf8');
          text = bytes.subarray(Math.min(skip, bytes.length)).toString('utf8');
          skip -= Math.min(skip, bytes.length);
        }
        if (text !== '') await send('output', { text });
      }
      // The execution was looked for above: a task that ended without one never ran.
      if (!more && isTerminal(now.status)) {
        await send('end', { status: now.status });
        break;
      }
      if (Date.now() - lastBeat > 15_000) {
        res.write(': keep-alive\n\n');
        lastBeat = Date.now();
      }
      if (!more) await new Promise((resolve) => setTimeout(resolve, deps.logPollMs));
    }
  } finally {
    res.end();
  }
}
