/**
 * GET /tasks/:id/stream: a task's page kept current over Server-Sent Events. Postgres is polled
 * (every replica can serve any page, and a poll of two indexed reads is cheap) and three events
 * are sent:
 *
 *   output  new output as HTML (escaped, ANSI colours as spans), `id:` the last chunk id in it
 *   status  StatusSummary JSON, whenever the task's viewVersion changes
 *   end     the task is over and all its output was sent; the server then closes
 *
 * The page rendered the output up to chunk `after`; the stream replays those chunks into its
 * LogAssembler and ANSI renderer without sending them, so host labels and colours carry on
 * exactly where the page stopped. A reconnecting EventSource resumes from its Last-Event-ID.
 */
import type { Response } from 'express';
import { isTerminal } from '../domain/lifecycle.js';
import { hostLabel } from '../domain/plan.js';
import type { Logger } from '../log.js';
import { chunksAfter, LogAssembler } from '../service/logs.js';
import type { Db } from '../store/db.js';
import { loadTaskView } from '../store/taskView.js';
import { createAnsiRenderer, type AnsiRenderer } from './ansi.js';
import { renderHead, statusSummary } from './logPage.js';

export interface StreamOptions {
  pollMs: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  heartbeatMs: number;
  /**
   * A stream ends after this long (the browser's EventSource reconnects where it stopped, and
   * the link is checked again): a tab left open on a task that waits for days holds no query loop.
   */
  maxMs: number;
}

const BATCH = 500;

/** The state of one connection: what it has sent, and the renderers that continue from there. */
class Follower {
  private executionId: number | null = null;
  private assembler: LogAssembler | null = null;
  private ansi: AnsiRenderer = createAnsiRenderer();
  private viewVersion = -1;
  private head = '';

  constructor(
    private readonly db: Db,
    private readonly taskId: number,
    /** Chunks up to this id are already on the page. */
    private readonly after: number,
    private readonly send: (event: string, data: string, id?: number) => Promise<void>,
  ) {}

  /** One poll; true once the task is over and everything was sent. */
  async poll(): Promise<boolean> {
    const view = await loadTaskView(this.db, this.taskId);
    if (!view) return true;
    const { execution } = view;
    if (execution && execution.id !== this.executionId) {
      // Steps are created with the run, so the labels are complete from its first sight.
      this.executionId = execution.id;
      this.assembler = new LogAssembler(new Map(execution.steps.map((step) => [step.id, hostLabel(step)])));
      this.ansi = createAnsiRenderer();
    }
    // Read after the view: output stored before a terminal status is then certainly seen below.
    if (this.assembler && this.executionId !== null) await this.drain(this.assembler, this.executionId);
    if (view.task.viewVersion !== this.viewVersion) {
      this.viewVersion = view.task.viewVersion;
      const head = renderHead(view.task);
      // Message and script rarely change (only edits before review): sent only when they did.
      const summary = { ...statusSummary(view), ...(head !== this.head ? { head } : {}) };
      this.head = head;
      await this.send('status', JSON.stringify(summary));
    }
    return isTerminal(view.task.status);
  }

  private async drain(assembler: LogAssembler, executionId: number): Promise<void> {
    for (;;) {
      const chunks = await chunksAfter(this.db, executionId, assembler.lastChunkId, BATCH);
      const seen = chunks.filter((chunk) => chunk.id <= this.after);
      const fresh = chunks.filter((chunk) => chunk.id > this.after);
      if (seen.length > 0) this.ansi.render(assembler.add(seen));
      if (fresh.length > 0) {
        const html = this.ansi.render(assembler.add(fresh));
        if (html !== '') await this.send('output', JSON.stringify(html), assembler.lastChunkId);
      }
      if (chunks.length < BATCH) return;
    }
  }
}

export async function streamTask(db: Db, log: Logger, taskId: number, after: number, res: Response, options: StreamOptions): Promise<void> {
  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    // nginx and friends would otherwise hold the events back to fill their buffers.
    'X-Accel-Buffering': 'no',
    Connection: 'keep-alive',
  });
  res.flushHeaders();

  let closed = false;
  // Everything waiting (the poll timer, a write waiting for drain) ends at once when the client goes.
  const waiters = new Set<() => void>();
  const wait = (arm: (done: () => void) => () => void): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = () => {
        waiters.delete(done);
        disarm();
        resolve();
      };
      const disarm = arm(done);
      waiters.add(done);
    });
  res.on('close', () => {
    closed = true;
    for (const done of [...waiters]) done();
  });
  // A slow reader only slows its own stream: the next poll waits for the socket to drain.
  const write = async (text: string): Promise<void> => {
    if (closed || res.write(text)) return;
    await wait((done) => {
      res.once('drain', done);
      return () => res.off('drain', done);
    });
  };
  const send = (event: string, data: string, id?: number) => write(`event: ${event}\n${id !== undefined ? `id: ${id}\n` : ''}data: ${data}\n\n`);
  const heartbeat = setInterval(() => void write(': keepalive\n\n'), options.heartbeatMs);

  const follower = new Follower(db, taskId, after, send);
  const endAt = Date.now() + options.maxMs;
  try {
    while (!closed && Date.now() < endAt) {
      let done = false;
      try {
        done = await follower.poll();
      } catch (error) {
        // A database hiccup: keep the connection and try again at the next poll.
        log.warn({ err: error, taskId }, 'task stream poll failed');
      }
      if (done) {
        await send('end', '{}');
        break;
      }
      await wait((done) => {
        const timer = setTimeout(done, options.pollMs);
        return () => clearTimeout(timer);
      });
    }
  } finally {
    clearInterval(heartbeat);
    if (!closed) res.end();
  }
}
