/**
 * Shows a run's output in its card's thread while it runs. Output is coalesced: at most one
 * Slack write per `flushMs` per thread, each either growing the current message (chat.update)
 * or starting the next one (chat.postMessage), always inside Slack's limits. When more arrives
 * than a thread should hold, the rest is skipped with a marker and the full log is uploaded as
 * a file at the end. Postgres holds the output regardless: this is only a view of it.
 */
import type { Db } from '../store/db.js';
import { getTask } from '../store/tasks.js';
import { executionLogText } from '../service/logs.js';
import { stepsOf } from '../store/executions.js';
import { recentOutput } from '../store/output.js';
import type { SlackMessage } from './render/blocks.js';
import { lastLines, renderHostSummary } from './render/hostSummary.js';
import type { OutputStream } from '../domain/task.js';
import type { RunObserver, StartedTask } from '../runner/observer.js';
import { SlackRateLimited, SlackRefused, type SlackGateway } from './gateway.js';
import {
  LOG_LIMIT_NOTICE,
  LOG_MESSAGE_CHARS,
  NO_OUTPUT_NOTICE,
  escapeLogText,
  fullLogComment,
  labelLines,
  logMessageText,
  splitToFit,
} from './render/threadLog.js';

export interface ThreadStreamerOptions {
  flushMs: number;
  /** Runs on more hosts than this show a per-host summary at the end instead of live output. */
  liveHostLimit: number;
  /** Thread messages per run before the streamer stops and waits for the final upload. */
  maxMessages: number;
  /** How long the end of a run waits for its card to be posted before giving up on the thread. */
  cardWaitMs: number;
  /** The task page's signed URL, linked from the uploaded log. */
  logUrl?: (taskId: number) => string;
  /** How long the end of a run's thread (last write, summary, uploaded log) is retried while Slack fails. */
  endRetryMs?: number;
}

export interface StreamerLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

interface RunThread {
  taskId: number;
  executionId: number;
  hosts: number;
  parent: { channel: string; ts: string } | null;
  pending: string;
  skippedChars: number;
  /** The message being grown; `header` is the first message's opening line (where the whole log is). */
  current: { ts: string; body: string; header: string } | null;
  messages: number;
  rawChars: number;
  lineStart: Map<string, boolean>;
  timer: NodeJS.Timeout | null;
  lastWriteAt: number;
  writing: Promise<void>;
  disabled: boolean;
  /** Set by runFinished: from then on only it writes, so the final writes keep the pace too. */
  finished: boolean;
  limitNoticePosted: boolean;
  /**
   * A run step's label (its qualified step id), every line of its output carries it, since the
   * steps of a run share the run card's thread; null for a task of its own; undefined until
   * known (output arriving before then waits in `early`).
   */
  label: string | null | undefined;
  early: Array<{ host: string | null; text: string }>;
  /** The run whose card's thread a run step's output goes to. */
  runId: number | null;
}

const MAX_PENDING_CHARS = 4 * LOG_MESSAGE_CHARS;

export class ThreadStreamer implements RunObserver {
  private readonly runs = new Map<number, RunThread>();
  /** End-of-run work (last write, upload) still under way, so shutdown can wait for it. */
  private readonly finishing = new Set<Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly gateway: SlackGateway,
    private readonly options: ThreadStreamerOptions,
    private readonly log: StreamerLogger,
  ) {}

  runStarted(task: StartedTask, executionId: number, hosts: number): void {
    const taskId = task.id;
    const runStep = task.runStep ?? null;
    this.runs.set(executionId, {
      taskId,
      executionId,
      hosts,
      parent: null,
      pending: '',
      skippedChars: 0,
      current: null,
      messages: 0,
      rawChars: 0,
      lineStart: new Map(),
      timer: null,
      lastWriteAt: 0,
      writing: Promise.resolve(),
      // A task of its own without a card (the API, a webhook, a schedule without a channel) has no thread to write to.
      disabled: !runStep && !task.channelId,
      finished: false,
      limitNoticePosted: false,
      // A task of its own is known at once; a run's step waits for its label (one small read).
      label: runStep ? undefined : null,
      early: [],
      runId: null,
    });
    if (runStep) void this.learnStep(executionId, taskId, runStep);
  }

  /** A run's step: its output is labelled with the step's id and goes to the run card's thread. */
  private async learnStep(executionId: number, taskId: number, runStep: { runId: number; stepId: number }): Promise<void> {
    let label = `step ${runStep.stepId}`;
    try {
      const step = (await this.db('run_steps').where({ id: runStep.stepId }).first('step_id')) as { step_id: string | null } | undefined;
      if (step?.step_id) label = step.step_id;
    } catch (error) {
      this.log.warn({ taskId, err: error }, `could not read the step id of task ${taskId}; its output is labelled by number`);
    }
    const run = this.runs.get(executionId);
    if (!run) return;
    run.label = label;
    run.runId = runStep.runId;
    const early = run.early;
    run.early = [];
    for (const chunk of early) this.output(taskId, executionId, chunk.host, 'stdout', chunk.text);
  }

  output(_taskId: number, executionId: number, host: string | null, _stream: OutputStream, text: string): void {
    const run = this.runs.get(executionId);
    if (!run || run.disabled || text === '') return;
    if (run.label === undefined) {
      run.early.push({ host, text });
      return;
    }
    run.rawChars += text.length;
    // Forty hosts interleaving lines is unreadable: those runs get a per-host summary at the end.
    if (run.hosts > this.options.liveHostLimit) return;
    let shown = text;
    // A run step's lines say which step (and host) they come from: `[deploy.a]`, `[deploy.a web-1]`.
    const label = run.label && host !== null ? `${run.label} ${host}` : (run.label ?? host);
    if (label !== null) {
      shown = labelLines(text, label, run.lineStart.get(label) ?? true);
      run.lineStart.set(label, text.endsWith('\n'));
    }
    const escaped = escapeLogText(shown);
    if (run.skippedChars > 0 && run.pending.length < MAX_PENDING_CHARS / 2) {
      run.pending += escapeLogText(`\n[… ${run.skippedChars} characters skipped here; the full log is attached at the end …]\n`);
      run.skippedChars = 0;
    }
    // Keep what fits in the backlog; more than that would never reach Slack at one write a second.
    const { head, rest } = splitToFit(escaped, MAX_PENDING_CHARS - run.pending.length);
    run.pending += head;
    run.skippedChars += rest.length;
    this.schedule(run);
  }

  runFinished(taskId: number, executionId: number): Promise<void> {
    const done = this.finish(taskId, executionId).catch((error) =>
      this.log.warn({ taskId, err: error }, `could not finish the output thread of task ${taskId}`),
    );
    this.finishing.add(done);
    void done.finally(() => this.finishing.delete(done));
    return done;
  }

  /** Waits for end-of-run work under way, at most `timeoutMs`. */
  async idle(timeoutMs: number): Promise<void> {
    await Promise.race([Promise.all([...this.finishing]), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  private async finish(taskId: number, executionId: number): Promise<void> {
    const run = this.runs.get(executionId);
    if (!run) return;
    run.finished = true;
    this.clearTimer(run);
    // Output that came before we knew whose it is is still waiting: let it in first.
    for (let waited = 0; run.label === undefined && waited < 5_000; waited += 50) await sleep(50);
    await run.writing;
    this.clearTimer(run);
    try {
      if (run.disabled) return;
      // A quick run can end before its card is posted (the card waits its turn in the channel).
      const parent = run.parent ?? (await this.waitForParent(run));
      if (!parent || run.disabled) return;
      // One last write for what fits; anything beyond goes in the uploaded file. Slack may be
      // failing right now: the end of the thread is retried until it lands (see deliver).
      const giveUpAt = Date.now() + (this.options.endRetryMs ?? 15 * 60_000);
      for (let attempt = 0; !(await this.writeOnce(run)) && Date.now() < giveUpAt; attempt++) await sleep(retryWait(attempt, run.lastWriteAt));
      const summaryOnly = run.hosts > this.options.liveHostLimit;
      const needsFile = summaryOnly || run.messages > 1 || run.skippedChars > 0 || run.limitNoticePosted || run.pending !== '';
      if (run.hosts > 1) {
        const summary = await this.hostSummary(run);
        await this.deliver(giveUpAt, () => this.gateway.postMessage({ channel: parent.channel, threadTs: parent.ts, ...summary }));
      }
      const step = run.label ? `[${run.label}] ` : '';
      if (run.rawChars === 0) {
        await this.deliver(giveUpAt, () =>
          this.gateway.postMessage({ channel: parent.channel, threadTs: parent.ts, text: `${step ? escapeLogText(step) : ''}${NO_OUTPUT_NOTICE}` }),
        );
      } else if (needsFile) {
        const text = await executionLogText(this.db, executionId);
        await this.deliver(giveUpAt, () =>
          this.gateway.uploadFile({
            channel: parent.channel,
            threadTs: parent.ts,
            filename: run.label && run.runId !== null ? `run-${run.runId}-${run.label.replace(/[^A-Za-z0-9_.-]/g, '_')}.log` : `task-${taskId}.log`,
            title: `Output of ${step}#${taskId}`,
            content: Buffer.from(text, 'utf8'),
            comment: fullLogComment(taskId, Buffer.byteLength(text, 'utf8'), countLines(text), this.options.logUrl?.(taskId) ?? null),
          }),
        );
      }
    } finally {
      this.runs.delete(executionId);
    }
  }

  /**
   * One end-of-run write, retried while Slack fails (5xx, resets, 429 after its Retry-After)
   * until `giveUpAt`; a refusal (channel gone) is final. A retried write that Slack did take
   * but answered with an error shows twice: better than not at all.
   */
  private async deliver(giveUpAt: number, write: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await write();
        return;
      } catch (error) {
        if (error instanceof SlackRefused || Date.now() >= giveUpAt) throw error;
        await sleep(error instanceof SlackRateLimited ? error.retryAfterMs : retryWait(attempt, 0));
      }
    }
  }

  private async hostSummary(run: RunThread): Promise<SlackMessage> {
    const steps = await stepsOf(this.db, run.executionId);
    const tails = new Map<number, string>();
    for (const step of steps.filter((s) => s.phase === 'failed' || s.phase === 'killed').slice(0, 10)) {
      tails.set(step.id, lastLines(await recentOutput(this.db, run.executionId, step.id, 16 * 1024), 10));
    }
    return renderHostSummary(run.taskId, steps, tails);
  }

  private clearTimer(run: RunThread): void {
    if (run.timer) clearTimeout(run.timer);
    run.timer = null;
  }

  private async waitForParent(run: RunThread): Promise<{ channel: string; ts: string } | null> {
    const deadline = Date.now() + this.options.cardWaitMs;
    for (;;) {
      const parent = await this.resolveParent(run);
      if (parent || run.disabled || Date.now() > deadline) return parent;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private schedule(run: RunThread): void {
    if (run.timer || run.disabled || run.finished) return;
    const wait = Math.max(0, run.lastWriteAt + this.options.flushMs - Date.now());
    run.timer = setTimeout(() => {
      run.timer = null;
      run.writing = run.writing
        .then(() => this.writeOnce(run))
        .catch((error) => this.log.warn({ taskId: run.taskId, err: error }, `writing output of task ${run.taskId} to Slack failed`))
        .then(() => {
          if (run.pending !== '') this.schedule(run);
        });
    }, wait);
  }

  private async pace(run: RunThread): Promise<void> {
    const wait = run.lastWriteAt + this.options.flushMs - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }

  /**
   * One Slack write, at least flushMs after the previous one landed: grow the current message, or
   * start the next one. False when Slack failed it for now (the text stays pending).
   */
  private async writeOnce(run: RunThread): Promise<boolean> {
    if (run.pending === '' || run.disabled) return true;
    try {
      await this.pace(run);
      const parent = run.parent ?? (await this.resolveParent(run));
      if (!parent) return true;
      const room = run.current ? LOG_MESSAGE_CHARS - run.current.header.length - run.current.body.length : 0;
      const grow = run.current !== null ? splitToFit(run.pending, room) : { head: '', rest: run.pending };
      if (run.current && grow.head !== '') {
        const body = run.current.body + grow.head;
        await this.gateway.update({ channel: parent.channel, ts: run.current.ts, text: run.current.header + logMessageText(body) }, 'log');
        run.lastWriteAt = Date.now();
        run.current.body = body;
        run.pending = run.pending.slice(grow.head.length);
        return true;
      }
      if (run.messages >= this.options.maxMessages) {
        run.skippedChars += run.pending.length;
        run.pending = '';
        if (!run.limitNoticePosted) {
          run.limitNoticePosted = true;
          await this.gateway.postMessage({ channel: parent.channel, threadTs: parent.ts, text: LOG_LIMIT_NOTICE });
          run.lastWriteAt = Date.now();
        }
        return true;
      }
      // The thread's first line says where the whole log is (the task page, live while it runs).
      const step = run.label ? `\`[${escapeLogText(run.label)}]\` ` : '';
      const header =
        run.messages === 0 && this.options.logUrl ? `:page_facing_up: ${step}The whole log, live: <${this.options.logUrl(run.taskId)}|task page>\n` : step;
      const next = splitToFit(run.pending, LOG_MESSAGE_CHARS - header.length);
      const posted = await this.gateway.postMessage({ channel: parent.channel, threadTs: parent.ts, text: header + logMessageText(next.head) });
      // Measured from when the write landed: a post may have waited for its turn in the channel.
      run.lastWriteAt = Date.now();
      run.current = { ts: posted.ts, body: next.head, header };
      run.messages++;
      run.pending = run.pending.slice(next.head.length);
      return true;
    } catch (error) {
      if (error instanceof SlackRateLimited) {
        run.lastWriteAt = Date.now() + error.retryAfterMs - this.options.flushMs;
        return false;
      }
      if (!(error instanceof SlackRefused)) {
        // Our side (the database, the network) or Slack's (5xx): try again at the next write.
        this.log.warn({ taskId: run.taskId, err: error }, `writing output of task ${run.taskId} to Slack failed`);
        run.lastWriteAt = Date.now();
        return false;
      }
      // A refusal (channel gone, bot removed) will not fix itself: stop streaming, keep storing.
      run.disabled = true;
      this.log.warn({ taskId: run.taskId, err: error }, `stopped streaming the output of task ${run.taskId} to Slack`);
      return true;
    }
  }

  /** The thread hangs off the card; until the card is posted there is nowhere to write. */
  private async resolveParent(run: RunThread): Promise<{ channel: string; ts: string } | null> {
    if (run.runId !== null) {
      // A run's step: its output goes to the run card's thread (a run without a card has none).
      const card = (await this.db('runs').where({ id: run.runId }).first('channel_id', 'card_ts')) as
        | { channel_id: string | null; card_ts: string | null }
        | undefined;
      if (!card?.channel_id) run.disabled = true;
      else if (card.card_ts) run.parent = { channel: card.channel_id, ts: card.card_ts };
      return run.parent;
    }
    const task = await getTask(this.db, run.taskId);
    // A task asked for outside Slack (the API) has no card, so no thread: nothing to wait for.
    if (!task?.channelId) run.disabled = true;
    else if (task.cardTs) run.parent = { channel: task.channelId, ts: task.cardTs };
    return run.parent;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Backoff for end-of-run retries: 1 s doubling to 10 s, or until a rate limit's end (`notBefore`). */
const retryWait = (attempt: number, notBefore: number): number => Math.max(Math.min(10_000, 1000 * 2 ** attempt), notBefore - Date.now());

const countLines = (text: string): number => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
