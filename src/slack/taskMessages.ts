/**
 * Keeps a task's two Slack messages (the card in its channel, the review request in the
 * review channel) in step with Postgres. Each redraw re-reads the task and renders it whole,
 * so a failed or rate-limited call is simply made again later:
 *
 * - calls for one task are serialised in this process and collapse into one pending redraw;
 * - posting is claimed in Postgres, so two processes never post the same message twice;
 * - each message records the view_version it shows, so a redraw that lands after a newer one
 *   (from another process) is noticed and redone, and a reconciler finds every message that is
 *   behind (after a Slack outage, a crash, a late /invite) and redraws it.
 */
import type { Config } from '../config/config.js';
import type { Task } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { loadTaskView } from '../store/taskView.js';
import {
  claimMessagePost,
  markReviewScriptPosted,
  recordMessagePosted,
  recordMessageRendered,
  releaseMessagePost,
  tasksWithMessagesBehind,
  type TaskMessageKind,
} from '../store/tasks.js';
import { SlackRateLimited, SlackRefused, type SlackGateway } from './gateway.js';
import type { SlackMessage } from './render/blocks.js';
import { renderReviewRequest } from './render/reviewRequest.js';
import { renderTaskCard } from './render/taskCard.js';

export interface SyncReport {
  /** Slack's error code when the card could not be posted or updated. */
  cardError: string | null;
  reviewError: string | null;
}

export interface MessagesLogger {
  warn(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

export interface TaskMessagesOptions {
  /** First retry after a failed call; doubles each time. */
  retryBaseMs: number;
  /** How often the reconciler looks for messages behind their task. */
  reconcileMs: number;
  /** The task page's signed URL, linked from the card. */
  logUrl?: (taskId: number) => string;
}

interface TaskSyncState {
  chain: Promise<unknown>;
  queued: Promise<SyncReport> | null;
  /** The newest sync asked for (queued or running), until it completes. */
  latest: Promise<SyncReport> | null;
}

interface Failure {
  attempts: number;
  nextAt: number;
  timer: NodeJS.Timeout | null;
}

const MAX_BACKOFF_MS = 10 * 60_000;

export class TaskMessages {
  private readonly states = new Map<number, TaskSyncState>();
  private readonly failures = new Map<number, Failure>();
  private reconciler: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly gateway: SlackGateway,
    private readonly log: MessagesLogger,
    private readonly options: TaskMessagesOptions,
  ) {}

  /** Starts the reconciler (and runs it once now: messages left behind before a restart catch up). */
  start(): void {
    const tick = () => void this.reconcile().catch((error) => this.log.error({ err: error }, 'reconciling Slack messages failed'));
    this.reconciler = setInterval(tick, this.options.reconcileMs);
    this.reconciler.unref();
    tick();
  }

  sync(taskId: number): Promise<SyncReport> {
    let state = this.states.get(taskId);
    if (!state) {
      state = { chain: Promise.resolve(), queued: null, latest: null };
      this.states.set(taskId, state);
    }
    if (state.queued) return state.queued;
    const current = state;
    const queued = current.chain.then(() => {
      current.queued = null;
      return this.syncNow(taskId);
    });
    current.queued = queued;
    current.latest = queued;
    current.chain = queued
      .catch((error) => this.log.error({ err: error, taskId }, `redrawing the Slack messages of task ${taskId} failed`))
      .then(() => {
        if (current.latest === queued) current.latest = null;
        // Forget idle tasks, so the map does not grow with every task ever seen.
        if (!current.queued && this.states.get(taskId) === current) this.states.delete(taskId);
      });
    return queued;
  }

  /** The report of the redraw already under way for this task, else of a new one. */
  current(taskId: number): Promise<SyncReport> {
    return this.states.get(taskId)?.latest ?? this.sync(taskId);
  }

  /** Waits for the redraws under way, at most `timeoutMs` (what is left, the reconciler redoes later). */
  async idle(timeoutMs: number): Promise<void> {
    const all = Promise.all([...this.states.values()].map((state) => state.chain));
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  stop(): void {
    this.stopped = true;
    if (this.reconciler) clearInterval(this.reconciler);
    for (const failure of this.failures.values()) if (failure.timer) clearTimeout(failure.timer);
  }

  /** Redraws every message that is behind its task, except those waiting out a backoff. */
  async reconcile(): Promise<void> {
    const now = Date.now();
    for (const taskId of await tasksWithMessagesBehind(this.db, 100)) {
      const failure = this.failures.get(taskId);
      if (failure && (failure.timer || failure.nextAt > now)) continue;
      await this.sync(taskId).catch(() => undefined);
    }
  }

  private async syncNow(taskId: number): Promise<SyncReport> {
    const report: SyncReport = { cardError: null, reviewError: null };
    if (this.stopped) return report;
    const view = await loadTaskView(this.db, taskId);
    if (!view) return report;
    const { task } = view;
    const target = this.config.targets.get(task.target);
    const policy = target?.review ?? null;
    let retryAfterMs = 0;
    let redo = false;
    const failed = (error: unknown, what: string): string => {
      if (error instanceof SlackRateLimited) {
        retryAfterMs = Math.max(retryAfterMs, error.retryAfterMs);
        return 'ratelimited';
      }
      this.log.warn({ taskId, err: error }, `could not write the ${what} of task ${taskId} to Slack`);
      return error instanceof SlackRefused ? error.code : String(error);
    };

    // The two messages live in different channels, each with its own pace: neither waits for the other.
    const showCard = async () => {
      if (!task.channelId) return;
      const card = renderTaskCard(view, { targetDescription: target?.description ?? null, policy, logUrl: this.options.logUrl?.(view.task.id) ?? null });
      try {
        redo ||= (await this.show(task, 'card', task.channelId, task.cardTs, card)).outcome === 'stale';
      } catch (error) {
        report.cardError = failed(error, 'card');
      }
    };
    const showReview = async () => {
      if (!task.reviewChannel || !policy) return;
      const { scriptClipped, ...request } = renderReviewRequest(view, policy);
      try {
        const shown = await this.show(task, 'review', task.reviewChannel, task.reviewTs, request);
        redo ||= shown.outcome === 'stale';
        // Reviewers must be able to read everything they approve: a clipped script goes to the thread whole.
        if (scriptClipped && !task.reviewScriptPosted && shown.ts) {
          await this.gateway.uploadFile({
            channel: task.reviewChannel,
            threadTs: shown.ts,
            filename: `task-${taskId}-script.${task.type === 'python3' ? 'py' : task.type === 'node' ? 'js' : 'sh'}`,
            title: `Script of #${taskId}`,
            content: Buffer.from(task.script, 'utf8'),
            comment: `:page_facing_up: The whole script of #${taskId}, for review.`,
          });
          await markReviewScriptPosted(this.db, taskId);
        }
      } catch (error) {
        report.reviewError = failed(error, 'review request');
      }
    };
    await Promise.all([showCard(), showReview()]);

    if (report.cardError || report.reviewError) this.scheduleRetry(taskId, retryAfterMs);
    else this.clearFailure(taskId);
    // A redraw from another process landed after ours was rendered: ours may now show an older state.
    if (redo && !this.stopped) void this.sync(taskId);
    return report;
  }

  /**
   * Posts the message if it was never posted (claiming the post first), else updates it.
   * `stale`: the message turned out to show a newer version than this redraw, which must be
   * redone. `elsewhere`: another process holds the claim to post it; the reconciler follows up.
   */
  private async show(
    task: Task,
    kind: TaskMessageKind,
    channel: string,
    ts: string | null,
    message: SlackMessage,
  ): Promise<{ outcome: 'shown' | 'stale' | 'elsewhere'; ts: string | null }> {
    let shownTs = ts;
    if (shownTs === null) {
      if (!(await claimMessagePost(this.db, task.id, kind))) return { outcome: 'elsewhere', ts: null };
      try {
        shownTs = (await this.gateway.postMessage({ channel, ...message })).ts;
        await recordMessagePosted(this.db, task.id, kind, shownTs);
      } catch (error) {
        await releaseMessagePost(this.db, task.id, kind);
        throw error;
      }
    } else {
      await this.gateway.update({ channel, ts: shownTs, ...message }, 'view');
    }
    const fresh = await recordMessageRendered(this.db, task.id, kind, task.viewVersion);
    return { outcome: fresh ? 'shown' : 'stale', ts: shownTs };
  }

  /** Postgres already holds the truth: retrying the redraw later is all it takes to catch up. */
  private scheduleRetry(taskId: number, retryAfterMs: number): void {
    if (this.stopped) return;
    const failure = this.failures.get(taskId) ?? { attempts: 0, nextAt: 0, timer: null };
    this.failures.set(taskId, failure);
    if (failure.timer) return;
    failure.attempts++;
    const delay = Math.min(MAX_BACKOFF_MS, Math.max(retryAfterMs, this.options.retryBaseMs * 2 ** (failure.attempts - 1)));
    failure.nextAt = Date.now() + delay;
    // Quick retries by timer; past a few, the reconciler takes over at the backoff's pace.
    if (failure.attempts <= 6) {
      failure.timer = setTimeout(() => {
        failure.timer = null;
        void this.sync(taskId);
      }, delay);
      failure.timer.unref();
    }
  }

  private clearFailure(taskId: number): void {
    const failure = this.failures.get(taskId);
    if (failure?.timer) clearTimeout(failure.timer);
    this.failures.delete(taskId);
  }
}
