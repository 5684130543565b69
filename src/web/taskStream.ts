/**
 * GET /tasks/:id/stream: a task's page kept current over Server-Sent Events. Every replica can
 * serve any page: the stream follows the task through the process's shared TaskFeed (one reader
 * per task, woken by NOTIFY when output is stored or the task changes; no polling per
 * connection). Three events are sent:
 *
 *   output  new output as HTML (escaped, ANSI colours as spans), `id:` the last chunk id in it
 *   status  StatusSummary JSON, whenever the task's viewVersion changes
 *   end     the task is over and all its output was sent; the server then closes
 *
 * The page rendered the last PAGE_TAIL_BYTES of the output, up to chunk `after` (RunLog.tail);
 * the stream renders that same tail into its ANSI renderer without sending it and carries its
 * LogAssembler on after `after`, so host labels and colours go on where the page stopped, and it
 * never reads more than that tail of what came before. A reconnecting EventSource resumes from
 * its Last-Event-ID.
 *
 * A stream ends after `maxMs`, and as soon as its reader may no longer see the task (a revoked or
 * expired link, a revoked token, withdrawn access), checked every `recheckMs`.
 */
import type { Response } from 'express';
import { openEventStream } from '../http/eventStream.js';
import { isTerminal } from '../domain/lifecycle.js';
import { hostLabel } from '../domain/plan.js';
import type { Logger } from '../log.js';
import { LogAssembler, RunLog } from '../service/logs.js';
import type { FeedSubscription, TaskFeed } from '../service/taskFeed.js';
import type { Db } from '../store/db.js';
import { loadTaskView } from '../store/taskView.js';
import { createAnsiRenderer, type AnsiRenderer } from './ansi.js';
import { peopleOf, renderHead, statusSummary, type Names } from './logPage.js';

/** Output the page shows (its last part); the rest is in the download. */
export const PAGE_TAIL_BYTES = 256 * 1024;

export interface StreamOptions {
  /** The process's shared reader of followed tasks; it also caps followers. */
  feed: TaskFeed;
  /** Who follows, for the per-user cap (an API token's user, or the signed link). */
  who: string;
  /** The client's address, for the per-address cap. */
  address: string;
  /** Whether the reader may still see the task; asked every `recheckMs`. */
  stillAllowed: () => Promise<boolean>;
  recheckMs: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  heartbeatMs: number;
  /**
   * A stream ends after this long (the browser's EventSource reconnects where it stopped, and
   * the link is checked again): a tab left open on a task that waits for days holds nothing.
   */
  maxMs: number;
  /** People's names for the ids the page shows (a bounded wait); without it, ids. */
  names?: (ids: string[]) => Promise<Names>;
}

/** The state of one connection: what it has sent, and the renderers that continue from there. */
class Follower {
  private executionId: number | null = null;
  private assembler: LogAssembler | null = null;
  private ansi: AnsiRenderer = createAnsiRenderer();
  private viewVersion = -1;
  private seenExecution: number | null = null;
  private head = '';

  constructor(
    private readonly db: Db,
    private readonly taskId: number,
    /** Chunks up to this id are already on the page. */
    private readonly after: number,
    private readonly feed: TaskFeed,
    private readonly subscription: FeedSubscription,
    private readonly send: (event: string, data: string, id?: number) => Promise<void>,
    private readonly names?: (ids: string[]) => Promise<Names>,
  ) {}

  /** Sends what changed since the last step; true once the task is over and everything was sent. */
  async step(): Promise<boolean> {
    const state = this.subscription.state();
    if (state === 'missing') return true;
    if (state === null) return false;
    // The whole view (reviews, steps) is read only when the feed says it changed.
    if (state.viewVersion !== this.viewVersion || state.executionId !== this.seenExecution) {
      const view = await loadTaskView(this.db, this.taskId);
      if (!view) return true;
      const { execution } = view;
      if (execution && execution.id !== this.executionId) {
        // Steps are created with the run, so the labels are complete from its first sight.
        const first = this.executionId === null;
        this.executionId = execution.id;
        this.ansi = createAnsiRenderer();
        this.assembler =
          first && this.after > 0
            ? await this.replayPageTail(execution.id)
            : new LogAssembler(new Map(execution.steps.map((step) => [step.id, hostLabel(step)])));
      }
      this.seenExecution = state.executionId;
      if (view.task.viewVersion !== this.viewVersion) {
        this.viewVersion = view.task.viewVersion;
        const names = this.names ? await this.names(peopleOf(view)) : undefined;
        const head = renderHead(view.task, names);
        // Message and script rarely change (only edits before review): sent only when they did.
        const summary = { ...statusSummary(view, new Date(), names), ...(head !== this.head ? { head } : {}) };
        this.head = head;
        await this.send('status', JSON.stringify(summary));
      }
    }
    if (this.assembler && this.executionId !== null) await this.drain(this.assembler, this.executionId);
    // The feed read the state before the output it holds: a task seen ended has all its output sent.
    return isTerminal(state.status) && this.executionId === state.executionId;
  }

  /**
   * The page showed the last PAGE_TAIL_BYTES up to chunk `after`: render the same text (a bounded
   * read), so what follows is labelled and coloured as the page would, and go on after `after`.
   */
  private async replayPageTail(executionId: number): Promise<LogAssembler> {
    const log = await RunLog.open(this.db, executionId);
    const tail = await log.tail(PAGE_TAIL_BYTES, this.after);
    this.ansi.render(tail.text);
    const assembler = log.assemblerAt(tail.next);
    assembler.lastChunkId = Math.max(assembler.lastChunkId, this.after);
    return assembler;
  }

  private async drain(assembler: LogAssembler, executionId: number): Promise<void> {
    for (;;) {
      const { chunks, more } = await this.feed.catchUp(this.subscription, executionId, assembler.lastChunkId);
      if (chunks.length > 0) {
        const html = this.ansi.render(assembler.add(chunks));
        if (html !== '') await this.send('output', JSON.stringify(html), assembler.lastChunkId);
      }
      if (!more) return;
    }
  }
}

export async function streamTask(db: Db, log: Logger, taskId: number, after: number, res: Response, options: StreamOptions): Promise<void> {
  const admission = options.feed.admit(options.who, options.address);
  if (!admission.ok) {
    res.status(429).type('text').send(admission.message);
    return;
  }
  const { gone, write, send } = openEventStream(res);
  const heartbeat = setInterval(() => void write(': keepalive\n\n'), options.heartbeatMs);

  const subscription = options.feed.subscribe(taskId);
  const follower = new Follower(db, taskId, after, options.feed, subscription, send, options.names);
  const endAt = Date.now() + options.maxMs;
  let checkAt = Date.now() + options.recheckMs;
  try {
    await Promise.race([subscription.ready, new Promise((resolve) => gone.addEventListener('abort', resolve, { once: true }))]);
    while (!gone.aborted && Date.now() < endAt) {
      if (Date.now() >= checkAt) {
        checkAt = Date.now() + options.recheckMs;
        // A database hiccup is no answer: the next check asks again.
        if (!(await options.stillAllowed().catch(() => true))) {
          await send('end', JSON.stringify({ revoked: true }));
          break;
        }
      }
      let done = false;
      try {
        done = await follower.step();
      } catch (error) {
        // A database hiccup: keep the connection and try again at the next change or poll.
        log.warn({ err: error, taskId }, 'task stream step failed');
      }
      if (done) {
        await send('end', '{}');
        break;
      }
      await subscription.next(Math.max(0, Math.min(endAt, checkAt) - Date.now()), gone);
    }
  } finally {
    clearInterval(heartbeat);
    subscription.close();
    admission.release();
    if (!gone.aborted) res.end();
  }
}
