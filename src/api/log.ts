/**
 * GET /api/v1/tasks/{id}/log: the latest run's stored output (already masked when stored) as
 * text, a byte range of it (`Range` or `?offset=`), or a live Server-Sent Events stream. A stream
 * follows the run whichever replica runs it, through the process's shared TaskFeed (one reader per
 * task, woken by NOTIFY: no polling per connection); followers are capped per user and in total
 * (429 beyond), a stream ends when its task ends or after `followMaxMs` (an `end` event with
 * `timeout: true` and the offset to resume from), and when its reader may no longer see the task
 * (token revoked, access withdrawn: checked every `recheckMs`; `end` with `revoked: true`).
 *
 * Reads are bounded whatever the log's size: its layout comes from Postgres without the text
 * (RunLog), a range or an offset reads only the chunks that hold it, and the bytes are streamed in
 * batches with backpressure. Reads of more than LARGE_READ_BYTES take one of the user's few
 * download slots (429 beyond).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Response } from 'express';
import { openEventStream } from '../http/eventStream.js';
import { taskSubject } from '../domain/access.js';
import { isTerminal } from '../domain/lifecycle.js';
import type { Task } from '../domain/task.js';
import type { Access } from '../service/access.js';
import type { Db } from '../store/db.js';
import { findApiToken } from '../store/apiTokens.js';
import { bearerToken } from './router.js';
import { latestExecution } from '../store/executions.js';
import { getTask } from '../store/tasks.js';
import { RunLog, type LogAssembler } from '../service/logs.js';
import type { TaskFeed } from '../service/taskFeed.js';
import { ApiError } from './errors.js';
import type { ApiContext } from './routes.js';

export interface LogDeps {
  db: Db;
  /** Live followers share one reader per task; it also caps followers and downloads. */
  feed: TaskFeed;
  /** Who may see a task, asked again while a stream is open. */
  access: Access;
  /** A follow stream ends after this long even if its task has not (the client resumes with ?offset=). */
  followMaxMs?: number;
  /** How often an open stream checks that its reader may still see the task. */
  recheckMs?: number;
}

/** A read larger than this is a download: it takes one of the user's download slots. */
export const LARGE_READ_BYTES = 1024 * 1024;
export const STREAM_RECHECK_MS = 30_000;

export async function handleLog(
  deps: LogDeps,
  ctx: ApiContext,
  task: Task,
  query: { offset?: number | undefined; follow?: '0' | '1' | undefined },
): Promise<void> {
  if (query.follow === '1') return followLog(deps, ctx, task, query.offset ?? 0);
  const execution = await latestExecution(deps.db, task.id);
  const log = execution ? await RunLog.open(deps.db, execution.id) : null;
  const { res } = ctx;
  const wanted = parseRangeHeader(ctx.req.get('range'));
  const layout = log
    ? await log.layout(wanted && 'suffix' in wanted ? { suffix: wanted.suffix } : { from: wanted?.start ?? query.offset ?? 0 })
    : { size: 0, lastId: 0, at: null };
  const size = layout.size;
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('X-Log-Size', String(size));
  res.setHeader('X-Task-Status', task.status);
  res.type('text/plain; charset=utf-8');
  const range = wanted === null ? null : resolveRange(wanted, size);
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    throw new ApiError(416, 'range_not_satisfiable', `The log has ${size} bytes.`);
  }
  const offset = query.offset ?? 0;
  if (!range && offset > size) throw new ApiError(416, 'range_not_satisfiable', `offset ${offset} is past the end of the log (${size} bytes).`);
  const from = range ? range.start : offset;
  const to = range ? range.end + 1 : size;
  let release: () => void = () => {};
  if (to - from > LARGE_READ_BYTES) {
    const slot = deps.feed.admitDownload(`user:${ctx.userId}`);
    if (!slot.ok) throw new ApiError(429, 'too_many_downloads', slot.message);
    release = slot.release;
  }
  try {
    if (range) res.status(206).setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    else res.status(200);
    await sendBytes(res, to - from, log && layout.at ? log.bytes(layout.at, from, to) : null);
  } finally {
    release();
  }
}

/**
 * Streams `length` bytes with backpressure: a slow reader slows only its own response. The log
 * only grows, so the bytes counted are there; should a read fail halfway, the response is cut
 * short (its Content-Length tells the client).
 */
export async function sendBytes(res: Response, length: number, bytes: AsyncIterable<Buffer> | null): Promise<void> {
  res.setHeader('Content-Length', String(length));
  if (!bytes || length === 0) {
    res.end();
    return;
  }
  await pipeline(Readable.from(bytes), res);
}

type WantedRange = { start: number; end: number | null } | { suffix: number };

/** `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else (several ranges, other units) is ignored, as HTTP allows. */
function parseRangeHeader(header: string | undefined): WantedRange | null {
  const match = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') return { suffix: Number(match[2]) };
  return { start: Number(match[1]), end: match[2] === '' ? null : Number(match[2]) };
}

function resolveRange(wanted: WantedRange, size: number): { start: number; end: number } | 'unsatisfiable' {
  if ('suffix' in wanted) {
    if (wanted.suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - wanted.suffix), end: size - 1 };
  }
  const end = wanted.end === null ? size - 1 : Math.min(wanted.end, size - 1);
  if (wanted.start >= size || end < wanted.start) return 'unsatisfiable';
  return { start: wanted.start, end };
}

/**
 * Whether the reader of an open stream may still see the task: its token is still valid and its
 * user still passes the access rule (as the task stands now).
 */
async function stillAllowed(deps: LogDeps, ctx: ApiContext, taskId: number): Promise<boolean> {
  const token = bearerToken(ctx.req);
  const found = token ? await findApiToken(deps.db, token) : null;
  if (!found || found.userId !== ctx.userId) return false;
  const task = await getTask(deps.db, taskId);
  return task !== null && (await deps.access.maySee(ctx.userId, taskSubject(task)));
}

async function followLog(deps: LogDeps, ctx: ApiContext, task: Task, offset: number): Promise<void> {
  const admission = deps.feed.admit(`user:${ctx.userId}`, ctx.req.socket.remoteAddress);
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
    /** Bytes of the current run's log still to skip before sending (`offset` falls inside a chunk). */
    let skip = 0;
    /** Where in the log the client is, so a timed-out stream says where to resume. */
    let position = offset;
    const endAt = Date.now() + (deps.followMaxMs ?? 60 * 60_000);
    const recheckMs = deps.recheckMs ?? STREAM_RECHECK_MS;
    let checkAt = Date.now() + recheckMs;
    let lastBeat = Date.now();
    while (!gone.aborted) {
      if (Date.now() >= checkAt) {
        checkAt = Date.now() + recheckMs;
        if (!(await stillAllowed(deps, ctx, task.id).catch(() => true))) {
          await send('end', {
            status: subscription.state() === 'missing' ? task.status : ((subscription.state() as { status?: string } | null)?.status ?? task.status),
            revoked: true,
          });
          break;
        }
      }
      const state = subscription.state();
      if (state === 'missing') {
        await send('end', { status: task.status });
        break;
      }
      if (state && state.executionId !== null && state.executionId !== executionId) {
        const first = executionId === null;
        executionId = state.executionId;
        const log = await RunLog.open(deps.db, executionId);
        // The first run followed starts at `offset`, read from the chunk that holds it; a later
        // run (a re-run while following) is sent from its start.
        const layout = first && offset > 0 ? await log.layout({ from: offset }) : null;
        // Past the end so far: carry on after the last chunk, skipping what is still to come before `offset`.
        const at = layout ? (layout.at ?? layout.end) : null;
        assembler = log.assemblerAt(at);
        skip = at ? offset - at.start : 0;
        if (!first) position = 0;
      }
      let more = false;
      if (assembler && executionId !== null) {
        const read = await deps.feed.catchUp(subscription, executionId, assembler.lastChunkId);
        more = read.more;
        let text = assembler.add(read.chunks);
        if (text !== '' && skip > 0) {
          const bytes = Buffer.from(text, 'utf8');
          text = bytes.subarray(Math.min(skip, bytes.length)).toString('utf8');
          skip -= Math.min(skip, bytes.length);
        }
        if (text !== '') {
          position += Buffer.byteLength(text, 'utf8');
          await send('output', { text });
        }
      }
      // The state was read before the output it came with: a task seen ended has all its output sent.
      if (!more && state && isTerminal(state.status)) {
        await send('end', { status: state.status });
        break;
      }
      if (Date.now() >= endAt) {
        await send('end', { status: state ? state.status : task.status, timeout: true, offset: position });
        break;
      }
      if (Date.now() - lastBeat > 15_000) {
        res.write(': keep-alive\n\n');
        lastBeat = Date.now();
      }
      if (!more) await subscription.next(Math.max(0, Math.min(15_000, endAt - Date.now(), checkAt - Date.now())), gone);
    }
  } finally {
    subscription.close();
    admission.release();
    res.end();
  }
}
