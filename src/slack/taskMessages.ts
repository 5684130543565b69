/**
 * Keeps a task's two Slack messages (the card in its channel, the review request in the
 * review channel) in step with Postgres. Each sync re-reads the task and redraws both, so a
 * failed or rate-limited call is simply retried later and the messages catch up; calls for
 * one task are serialised and collapse into one pending redraw.
 */
import type { Config } from '../config/config.js';
import type { Db } from '../store/db.js';
import { loadTaskView } from '../store/taskView.js';
import { setCardTs, setReviewTs } from '../store/tasks.js';
import { SlackRateLimited, SlackRefused, type SlackGateway } from './gateway.js';
import { renderReviewRequest } from './render/reviewRequest.js';
import { renderTaskCard } from './render/taskCard.js';

export interface SyncReport {
  /** Slack's error code when the card could not be posted or updated. */
  cardError: string | null;
  reviewError: string | null;
}

export interface MessagesLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

interface TaskSyncState {
  chain: Promise<unknown>;
  queued: Promise<SyncReport> | null;
  /** The newest sync asked for (queued or running), until it completes. */
  latest: Promise<SyncReport> | null;
  retryTimer: NodeJS.Timeout | null;
  attempts: number;
}

const MAX_RETRIES = 8;

export class TaskMessages {
  private readonly states = new Map<number, TaskSyncState>();
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly gateway: SlackGateway,
    private readonly log: MessagesLogger,
    private readonly retryBaseMs = 1000,
  ) {}

  sync(taskId: number): Promise<SyncReport> {
    let state = this.states.get(taskId);
    if (!state) {
      state = { chain: Promise.resolve(), queued: null, latest: null, retryTimer: null, attempts: 0 };
      this.states.set(taskId, state);
    }
    if (state.queued) return state.queued;
    const current = state;
    const queued = current.chain.then(() => {
      current.queued = null;
      return this.syncNow(taskId, current);
    });
    current.queued = queued;
    current.latest = queued;
    current.chain = queued
      .catch(() => undefined)
      .then(() => {
        if (current.latest === queued) current.latest = null;
        // Forget tasks with nothing pending, so the map does not grow with every task ever seen.
        if (!current.queued && !current.retryTimer && this.states.get(taskId) === current) this.states.delete(taskId);
      });
    return queued;
  }

  /** The report of the sync already under way for this task, else of a new one. */
  current(taskId: number): Promise<SyncReport> {
    return this.states.get(taskId)?.latest ?? this.sync(taskId);
  }

  /** Waits for every sync under way (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.states.values()].map((state) => state.chain));
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.states.values()) if (state.retryTimer) clearTimeout(state.retryTimer);
  }

  private async syncNow(taskId: number, state: TaskSyncState): Promise<SyncReport> {
    const report: SyncReport = { cardError: null, reviewError: null };
    const view = await loadTaskView(this.db, taskId);
    if (!view) return report;
    const { task } = view;
    const target = this.config.targets.get(task.target);
    const policy = target?.review ?? null;
    let retryAfterMs = 0;
    const failed = (error: unknown, what: string): string => {
      if (error instanceof SlackRateLimited) {
        retryAfterMs = Math.max(retryAfterMs, error.retryAfterMs);
        return 'ratelimited';
      }
      const code = error instanceof SlackRefused ? error.code : String(error);
      this.log.warn({ taskId, err: error }, `could not write the ${what} of task ${taskId} to Slack`);
      return code;
    };

    if (task.channelId) {
      const card = renderTaskCard(view, { targetDescription: target?.description ?? null, policy });
      try {
        if (task.cardTs === null) {
          const posted = await this.gateway.postMessage({ channel: task.channelId, ...card });
          await setCardTs(this.db, taskId, posted.ts);
        } else {
          await this.gateway.update({ channel: task.channelId, ts: task.cardTs, ...card });
        }
      } catch (error) {
        report.cardError = failed(error, 'card');
      }
    }

    if (task.reviewChannel && policy) {
      const { scriptClipped, ...request } = renderReviewRequest(view, policy);
      try {
        if (task.reviewTs === null) {
          const posted = await this.gateway.postMessage({ channel: task.reviewChannel, ...request });
          await setReviewTs(this.db, taskId, posted.ts);
          if (scriptClipped) {
            await this.gateway.uploadFile({
              channel: task.reviewChannel,
              threadTs: posted.ts,
              filename: `task-${taskId}-script.${task.type === 'python3' ? 'py' : task.type === 'node' ? 'js' : 'sh'}`,
              title: `Script of #${taskId}`,
              content: Buffer.from(task.script, 'utf8'),
              comment: `:page_facing_up: The whole script of #${taskId}, for review.`,
            });
          }
        } else {
          await this.gateway.update({ channel: task.reviewChannel, ts: task.reviewTs, ...request });
        }
      } catch (error) {
        report.reviewError = failed(error, 'review request');
      }
    }

    if (report.cardError || report.reviewError) this.scheduleRetry(taskId, state, retryAfterMs);
    else state.attempts = 0;
    return report;
  }

  /** Postgres already holds the truth; retrying the redraw later is all it takes to catch up. */
  private scheduleRetry(taskId: number, state: TaskSyncState, retryAfterMs: number): void {
    if (this.stopped || state.retryTimer || state.attempts >= MAX_RETRIES) return;
    state.attempts++;
    const delay = Math.max(retryAfterMs, this.retryBaseMs * 2 ** (state.attempts - 1));
    state.retryTimer = setTimeout(() => {
      state.retryTimer = null;
      void this.sync(taskId);
    }, delay);
    state.retryTimer.unref();
  }
}
