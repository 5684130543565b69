/**
 * The App Home tab, drawn per user from Postgres: published when the user opens it, and again
 * when one of the tasks it shows changes (their own, or one they may review), at most once per
 * `minIntervalMs` per user. Who has opened Home is kept in Postgres so every replica redraws it.
 */
import type { Logger } from '../log.js';
import type { Task } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { getTask } from '../store/tasks.js';
import type { TaskQueries } from '../service/taskQueries.js';
import type { SlackGateway } from './gateway.js';
import { renderHome } from './render/homeView.js';

export interface HomeOptions {
  minIntervalMs: number;
}

export class HomePublisher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastPublished = new Map<string, number>();
  private readonly notices = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly gateway: SlackGateway,
    private readonly queries: TaskQueries,
    private readonly log: Logger,
    private readonly options: HomeOptions,
  ) {}

  /** The user opened the Home tab: remember them and draw it now. */
  async opened(userId: string): Promise<void> {
    await this.db('home_users').insert({ user_id: userId }).onConflict('user_id').merge({ opened_at: this.db.fn.now() });
    await this.publish(userId);
  }

  /** Draws Home now, with an optional notice at the top (the answer to a click there). */
  async publish(userId: string, notice?: string): Promise<void> {
    if (notice !== undefined) this.notices.set(userId, notice);
    const [pendingMyReview, running, mine] = await Promise.all([
      this.queries.pendingFor(userId),
      this.queries.list('running', userId, 10).then((r) => r.tasks),
      this.queries.list('mine', userId, 15).then((r) => r.tasks),
    ]);
    const view = renderHome({ pendingMyReview, running, mine, notice: this.notices.get(userId) ?? null });
    this.lastPublished.set(userId, Date.now());
    await this.gateway.publishHome(userId, view);
  }

  /** A task changed: redraw Home for its author and possible reviewers who use Home. */
  async taskChanged(taskId: number): Promise<void> {
    const task = await getTask(this.db, taskId);
    if (!task) return;
    // Only people who looked at Home lately: a tab opened once a year ago is not kept live.
    const users = (await this.db('home_users').where('opened_at', '>', this.db.raw("now() - interval '7 days'")).pluck('user_id')) as string[];
    for (const userId of users) {
      if (await this.concerns(task, userId)) this.schedule(userId);
    }
  }

  stop(): void {
    this.timers.forEach(clearTimeout);
    this.timers.clear();
  }

  /**
   * Home shows the user's own tasks, what everyone runs now, and what waits for their review:
   * a task concerns them if it is theirs, is (or just stopped) running, or is one they review.
   */
  private async concerns(task: Task, userId: string): Promise<boolean> {
    if (task.author === userId) return true;
    if (task.startedAt !== null || task.status === 'ready') return true;
    return this.queries.mayReview(task, userId);
  }

  /** Coalesces redraws: at most one per minIntervalMs per user, the last one always happens. */
  private schedule(userId: string): void {
    if (this.timers.has(userId)) return;
    const wait = Math.max(0, (this.lastPublished.get(userId) ?? 0) + this.options.minIntervalMs - Date.now());
    this.timers.set(
      userId,
      setTimeout(() => {
        this.timers.delete(userId);
        this.notices.delete(userId);
        void this.publish(userId).catch((error) => this.log.warn({ err: error, userId }, 'redrawing App Home failed'));
      }, wait),
    );
  }
}
