/**
 * Expires reviews left pending too long (`review.expiresAfter` on a target): the task becomes
 * `rejected` with no actor, the audit says { reason: 'expired' }, and its card and review
 * request say why. Every replica runs a sweep; the guarded transition (pending-review ->
 * rejected, under the task's row lock) lets exactly one of them, or a reviewer's last click,
 * win. Ages are measured by Postgres's clock, so replicas with skewed clocks agree.
 *
 * Schedule reviews expire the same way, counted from when their current review was asked for
 * (an edit or an approval that stopped holding asks again); ScheduleService does the transition.
 */
import type { Config } from '../config/config.js';
import { expiryMessage } from '../domain/review.js';
import type { Db } from '../store/db.js';
import { transitionTask } from '../store/tasks.js';
import type { Bus } from './bus.js';

export interface ReviewExpiryOptions {
  /** How often to look for expired reviews. */
  intervalMs: number;
  /** At most this many tasks expired per target per sweep (the next sweep takes the rest). */
  batch?: number;
  /** Expires schedule reviews too (and redraws their requests); absent: only tasks. */
  schedules?: { expireReviews(batch?: number): Promise<number[]> } | null;
  /** Expires runs' reviews too (RunService.expireReviews, which wakes their views); absent: not runs. */
  runs?: { expireReviews(batch?: number): Promise<number[]> } | null;
}

export interface ReviewExpiryLogger {
  info(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

export const DEFAULT_REVIEW_EXPIRY_INTERVAL_MS = 60_000;

export class ReviewExpiry {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly log: ReviewExpiryLogger,
    private readonly options: ReviewExpiryOptions = { intervalMs: DEFAULT_REVIEW_EXPIRY_INTERVAL_MS },
  ) {}

  /** Sweeps now and then every interval; does nothing when no target has `expiresAfter`. */
  start(): void {
    if (this.timer || !this.anyTargetExpires()) return;
    const tick = () => {
      if (this.running) return; // a slow sweep is not overtaken by the next one
      this.running = this.sweep()
        .catch((error) => this.log.error({ err: error }, 'expiring pending reviews failed'))
        .finally(() => {
          this.running = null;
        });
    };
    this.timer = setInterval(tick, this.options.intervalMs);
    this.timer.unref();
    tick();
  }

  /** Stops sweeping and waits for a sweep under way. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Expires every review older than its target allows; returns the ids of the tasks this call rejected. */
  async sweep(): Promise<number[]> {
    const tasks = await this.sweepTasks();
    const schedules = (await this.options.schedules?.expireReviews(this.options.batch ?? 100)) ?? [];
    for (const id of schedules) this.log.info({ scheduleId: id }, `the review of schedule S${id} expired`);
    const runs = (await this.options.runs?.expireReviews(this.options.batch ?? 100)) ?? [];
    for (const id of runs) this.log.info({ runId: id }, `the review of run ${id} expired`);
    return tasks;
  }

  private async sweepTasks(): Promise<number[]> {
    const expired: number[] = [];
    for (const target of this.config.targets.values()) {
      const policy = target.review;
      if (!policy?.expiresAfter) continue;
      const due: number[] = await this.db('tasks')
        .where({ status: 'pending-review', target: target.name })
        // Entered pending-review (status_changed_at) at least expiresAfter ago.
        .where('status_changed_at', '<=', this.db.raw('now() - make_interval(secs => ?)', [policy.expiresAfter.ms / 1000]))
        .orderBy('id')
        .limit(this.options.batch ?? 100)
        .pluck('id');
      for (const taskId of due) {
        const rejected = await transitionTask(this.db, {
          taskId,
          from: 'pending-review',
          to: 'rejected',
          actor: null,
          data: { reason: 'expired', after: policy.expiresAfter.text },
          set: { failure_message: expiryMessage(policy) },
        });
        // null: a reviewer's click or another replica got there first.
        if (!rejected) continue;
        expired.push(taskId);
        this.log.info({ taskId, target: target.name }, `the review of task ${taskId} expired after ${policy.expiresAfter.text}`);
        this.bus.emit('task-changed', taskId);
      }
    }
    return expired;
  }

  private anyTargetExpires(): boolean {
    return [...this.config.targets.values()].some((target) => target.review?.expiresAfter);
  }
}
