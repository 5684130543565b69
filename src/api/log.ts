/**
 * GET /api/v1/tasks/{id}/log: the latest run's stored output (already masked when stored) as
 * text, a byte range of it (`Range` or `?offset=`), or a live Server-Sent Events stream. A stream
 * follows the run whichever replica runs it, through the process's shared TaskFeed (one reader per
 * task, woken by NOTIFY: no polling per connection); followers are capped per user and in total
 * (429 beyond), and a stream ends when its task ends or after `followMaxMs` (an `end` event with
 * `timeout: true` and the offset to resume from).
 */
import { openEventStream } from '../http/eventStream.js';
import { isTerminal } from '../domain/lifecycle.js';
import type { Task } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { latestExecution } from '../store/executions.js';
import { getTask } from '../store/tasks.js';
import { executionLogText, hostLabelsOf, LogAssembler } from '../service/logs.js';
import type { TaskFeed } from '../service/taskFeed.js';
import { ApiError } from './errors.js';
import type { ApiContext } from './routes.js';

export interface LogDeps {
  db: Db;
  /** Live followers share one reader per task; it also caps them. */
  feed: TaskFeed;
  /** A follow stream ends after this long even if its task has not (the client resumes with ?offset=). */
  followMaxMs?: number;
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
  const admission = deps.feed.admit(`user:${ctx.userId}`);
  if (!admission.ok) throw new ApiError(429, 'too_many_followers', admission.message);
  const { res } = ctx;
  const subscription = deps.feed.subscribe(task.id);
  try {
    const stream = openEventStream(res);
    const gone = stream.gone;
    const send = (event: string, data: unknown) => stream.send(event, JSON.stringify(data));
    await Promise.race([subscription.ready, new Promise((resolve) => gone.addEventListener('abort', resolve, { once: true }))]);
    let assembler: LogAssembler | null = null;
    let executionId: number | null = null;
    let skip = offset;
    /** Bytes of the log the client has (from `offset` on), so a timed-out stream says where to resume. */
    let position = 0;
    const endAt = Date.now() + (deps.followMaxMs ?? 60 * 60_000);
    let lastBeat = Date.now();
    while (!gone.aborted) {
      const state = subscription.state();
      if (state === 'missing') {
        await send('end', { status: task.status });
        break;
      }
      if (state && state.executionId !== null && state.executionId !== executionId) {
        executionId = state.executionId;
        assembler = new LogAssembler(await hostLabelsOf(deps.db, executionId));
      }
      let more = false;
      if (assembler && executionId !== null) {
        const read = await deps.feed.catchUp(subscription, executionId, assembler.lastChunkId);
        more = read.more;
        let text = assembler.add(read.chunks);
        if (text !== '') {
          const bytes = Buffer.from(text, 'utf8');
          position += bytes.length;
          if (skip > 0) {
            text = bytes.subarray(Math.min(skip, bytes.length)).toString('utf8');
            skip -= Math.min(skip, bytes.length);
          }
        }
        if (text !== '') await send('output', { text });
      }
      // The state was read before the output it came with: a task seen ended has all its output sent.
      if (!more && state && isTerminal(state.status)) {
        await send('end', { status: state.status });
        break;
      }
      if (Date.now() >= endAt) {
        await send('end', { status: state ? state.status : task.status, timeout: true, offset: Math.max(offset, position) });
        break;
      }
      if (Date.now() - lastBeat > 15_000) {
        res.write(': keep-alive\n\n');
        lastBeat = Date.now();
      }
      if (!more) await subscription.next(Math.min(15_000, Math.max(0, endAt - Date.now())), gone);
    }
  } finally {
    subscription.close();
    admission.release();
    res.end();
  }
}
