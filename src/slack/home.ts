/**
 * The App Home tab, drawn per user from Postgres: published when the user opens it, and again
 * when one of the tasks it shows changes (their own, one they may review, or one running they
 * may see) or one of its schedules does (their own, or one of a target they review), at most
 * once per `minIntervalMs` per user. Who has opened Home is kept in Postgres
 * so every replica redraws it.
 *
 * Reads are bounded: a redraw reads summaries (a script's head, never all of it) with limits,
 * "waiting for my review" selects the pending tasks of the targets the user reviews, and a task
 * change reads only the columns that decide whose Home it concerns.
 */
import type { Logger } from '../log.js';
import { taskSubject } from '../domain/access.js';
import type { TaskStatus } from '../domain/lifecycle.js';
import type { Db } from '../store/db.js';
import type { TaskQueries } from '../service/taskQueries.js';
import type { ScheduleQueries } from '../service/scheduleQueries.js';
import type { Viewer } from '../service/access.js';
import type { SlackGateway } from './gateway.js';
import { renderHome } from './render/homeView.js';
import type { HomeRunbooks } from './homeRunbooks.js';

export interface HomeOptions {
  minIntervalMs: number;
}

/** What Home shows of each list. */
const LIMITS = { pending: 10, running: 10, mine: 15, schedulesToReview: 5, mySchedules: 10, waitingRuns: 8, startable: 10, myRuns: 10 } as const;
/** Home users redrawn for one task change, at most (the most recently active first). */
const MAX_HOME_USERS = 1000;
/** How long the list of recent Home users is kept before it is read again. */
const RECENT_USERS_MS = 5_000;

interface ChangedTask {
  id: number;
  author: string;
  target: string;
  channelId: string | null;
  status: TaskStatus;
  startedAt: Date | null;
}

export class HomePublisher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastPublished = new Map<string, number>();
  private readonly notices = new Map<string, string>();
  /** recentUsers, read at most once per RECENT_USERS_MS: every task change asks for it. */
  private recent: { users: Promise<string[]>; at: number } | null = null;

  constructor(
    private readonly db: Db,
    private readonly gateway: SlackGateway,
    private readonly queries: TaskQueries,
    private readonly log: Logger,
    private readonly options: HomeOptions,
    /** Schedules: mine, and those waiting for my review. Without it Home shows tasks only. */
    private readonly schedules: ScheduleQueries | null = null,
    /** Runbooks I can start and runs waiting for me (issue 11). Without it Home shows no runbooks. */
    private readonly runbooks: HomeRunbooks | null = null,
  ) {}

  /** The user opened the Home tab: remember them and draw it now. */
  async opened(userId: string): Promise<void> {
    await this.db('home_users').insert({ user_id: userId }).onConflict('user_id').merge({ opened_at: this.db.fn.now() });
    this.recent = null;
    await this.publish(userId);
  }

  /** Draws Home now, with an optional notice at the top (the answer to a click there). */
  async publish(userId: string, notice?: string): Promise<void> {
    if (notice !== undefined) this.notices.set(userId, notice);
    const viewer = this.queries.viewer(userId);
    const noSchedules = { schedules: [], total: 0, more: false };
    const [pending, running, mine, schedulesToReview, mySchedules, waitingRuns, startable, myRuns] = await Promise.all([
      this.queries.pendingFor(userId, LIMITS.pending, viewer),
      this.queries.list('running', userId, LIMITS.running, viewer).then((r) => r.tasks),
      this.queries.list('mine', userId, LIMITS.mine, viewer).then((r) => r.tasks),
      this.schedules ? this.schedules.pendingFor(userId, LIMITS.schedulesToReview, viewer) : noSchedules,
      this.schedules ? this.schedules.mine(userId, LIMITS.mySchedules) : noSchedules,
      this.runbooks ? this.runbooks.waitingFor(userId, LIMITS.waitingRuns) : { runs: [], total: 0 },
      this.runbooks ? this.runbooks.startable(LIMITS.startable) : { runbooks: [], total: 0 },
      this.runbooks ? this.runbooks.mine(userId, LIMITS.myRuns) : [],
    ]);
    const view = renderHome({
      pendingMyReview: pending.tasks,
      pendingCount: pending.total,
      running,
      mine,
      notice: this.notices.get(userId) ?? null,
      schedulesToReview: schedulesToReview.schedules,
      schedulesToReviewCount: schedulesToReview.total,
      mySchedules: mySchedules.schedules,
      waitingRuns: waitingRuns.runs,
      waitingRunsCount: waitingRuns.total,
      startable: startable.runbooks,
      startableCount: startable.total,
      myRuns,
    });
    this.lastPublished.set(userId, Date.now());
    await this.gateway.publishHome(userId, view);
  }

  /** A task changed: redraw Home for the users who use it and whom the task concerns. */
  async taskChanged(taskId: number): Promise<void> {
    // Nobody to redraw for (no recent Home user, or each has a redraw coming): the task is not read.
    const users = (await this.recentUsers()).filter((userId) => !this.timers.has(userId));
    if (users.length === 0) return;
    const row = (await this.db('tasks').where({ id: taskId }).first('id', 'author', 'target', 'channel_id', 'status', 'started_at')) as
      | { id: number; author: string; target: string; channel_id: string | null; status: TaskStatus; started_at: Date | null }
      | undefined;
    if (!row) return;
    const task: ChangedTask = { id: row.id, author: row.author, target: row.target, channelId: row.channel_id, status: row.status, startedAt: row.started_at };
    for (const userId of users) {
      if (this.timers.has(userId)) continue; // a redraw is coming anyway
      if (await this.concerns(task, this.queries.viewer(userId))) this.schedule(userId);
    }
  }

  /** A schedule changed: redraw Home for its author and the reviewers of its target (it may have joined or left their list). */
  async scheduleChanged(scheduleId: number): Promise<void> {
    if (!this.schedules) return;
    const row = (await this.db('schedules').where({ id: scheduleId }).first('author', 'target')) as { author: string; target: string } | undefined;
    if (!row) return;
    const users = await this.recentUsers();
    for (const userId of users) {
      if (this.timers.has(userId)) continue;
      if (userId === row.author || (await this.queries.viewer(userId).target(row.target)).reviewer) this.schedule(userId);
    }
  }

  /** A run changed: redraw Home for its creator and those it asks (its reviewers, its steps' approvers and input givers). */
  async runChanged(runId: number): Promise<void> {
    if (!this.runbooks) return;
    const users = (await this.recentUsers()).filter((userId) => !this.timers.has(userId));
    for (const userId of await this.runbooks.concerned(runId, users)) this.schedule(userId);
  }

  /**
   * Only people who looked at Home lately: a tab opened once a year ago is not kept live. Read
   * at most once per RECENT_USERS_MS (an open here reads it again at once; one on another
   * replica is seen here within RECENT_USERS_MS), so a burst of task changes costs one read.
   */
  private recentUsers(): Promise<string[]> {
    if (this.recent && Date.now() - this.recent.at < RECENT_USERS_MS) return this.recent.users;
    // Resolved once into a promise: a knex builder kept and awaited again would query again.
    const users = Promise.resolve(
      this.db('home_users')
        .where('opened_at', '>', this.db.raw("now() - interval '7 days'"))
        .orderBy('opened_at', 'desc')
        .limit(MAX_HOME_USERS)
        .pluck('user_id'),
    ) as Promise<string[]>;
    const entry = { users, at: Date.now() };
    this.recent = entry;
    // A failed read is not kept: the next change asks again.
    users.catch(() => {
      if (this.recent === entry) this.recent = null;
    });
    return users;
  }

  stop(): void {
    this.timers.forEach(clearTimeout);
    this.timers.clear();
  }

  /**
   * Home shows the user's own tasks, what runs now (that they may see), and what waits for
   * their review: a task concerns them if it is theirs, is (or just stopped) running and they
   * may see it, or is on a target they review (it may have just left their review list).
   */
  private async concerns(task: ChangedTask, viewer: Viewer): Promise<boolean> {
    if (task.author === viewer.userId) return true;
    if ((await viewer.target(task.target)).reviewer) return true;
    if (task.startedAt !== null || task.status === 'ready') return viewer.maySee(taskSubject(task));
    return false;
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
