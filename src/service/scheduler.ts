/**
 * Fires active schedules. Every replica runs one; nobody leads. Each due fire time is decided
 * in one transaction that takes the schedule's row lock and inserts its row in
 * `schedule_firings` (primary key: schedule, fire time) with ON CONFLICT DO NOTHING: the one
 * transaction whose insert lands makes the task, in the same commit, so each firing happens
 * exactly once across processes, crashes included (a crash before the commit leaves nothing,
 * and the fire time is still due for whoever ticks next).
 *
 * - Only the most recent due fire time is considered: earlier ones (downtime) are recorded as
 *   missed in the audit, never run as a backlog. The latest one, if it is older than
 *   `lateToleranceMs`, was missed too: `catchUp: run` runs it once, `skip` records it skipped.
 * - `overlap`: while a previous firing's task is unfinished, `skip` records the firing as
 *   skipped, `allow` fires anyway, `queue` records it `queued` (at most `maxQueued`); a queued
 *   firing gets its task as soon as the schedule has no unfinished task (checked every tick
 *   under the same row lock, so two replicas cannot both start one).
 * - The task is made `ready` directly: the schedule's approval covers it, and the audit event
 *   says which approval (`task.created` / `task.ready` data: schedule, approvedAt, approvedBy).
 * - When a fired task ends, one process (the one whose claim on `notified_at` lands) posts its
 *   result to the schedule's channel.
 *
 * The clock is injected (`now`), so tests drive firings without waiting.
 */
import type { Config } from '../config/config.js';
import { dueFireTimes, nextFireTimes, scheduleRef, type Schedule } from '../domain/schedule.js';
import type { Task } from '../domain/task.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { latestExecution } from '../store/executions.js';
import { getScheduleForUpdate, toSchedule, unfinishedRuns, type FiringOutcome, type ScheduleRow } from '../store/schedules.js';
import { getTask, insertTask, transitionTask } from '../store/tasks.js';
import { executionLogText } from './logs.js';
import type { Bus } from './bus.js';

export interface SchedulerLogger {
  info(context: Record<string, unknown>, message: string): void;
  warn(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

/** Posts a firing's result; throws when Slack refused or is unreachable. */
export type ResultPoster = (args: { channel: string; schedule: Schedule; task: Task; fireAt: Date; tail: string[]; logUrl: string | null }) => Promise<void>;

export interface SchedulerOptions {
  now?: () => Date;
  /** Longest sleep between ticks (also how soon a new schedule, a queued firing or a finished run is noticed). */
  pollMs?: number;
  /** A fire time found later than this after it fell was missed (downtime): `catchUp` decides. */
  lateToleranceMs?: number;
  maxQueued?: number;
  /** Where results go; null: nothing is posted (no Slack). */
  post?: ResultPoster | null;
  logUrl?: (taskId: number) => string;
  /** Results of tasks that ended longer ago than this are not posted any more. */
  notifyWindowMs?: number;
}

export interface TickReport {
  fired: number[];
  decided: Array<{ scheduleId: number; fireAt: Date; outcome: FiringOutcome; taskId: number | null }>;
  notified: number[];
}

const UNFINISHED = ['created', 'pending-review', 'approved', 'ready', 'running'];

export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = true;
  private readonly now: () => Date;
  private readonly pollMs: number;
  private readonly lateToleranceMs: number;
  private readonly maxQueued: number;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly log: SchedulerLogger,
    private readonly options: SchedulerOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.pollMs = options.pollMs ?? 1000;
    this.lateToleranceMs = options.lateToleranceMs ?? 60_000;
    this.maxQueued = options.maxQueued ?? 5;
  }

  /** Ticks now, then at each schedule's next fire time (at the latest every `pollMs`). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop();
  }

  /** Looks again soon (a schedule was approved, resumed, or a task of one ended). */
  wake(): void {
    if (this.stopped || this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private loop(): void {
    this.running = this.tick()
      .catch((error) => {
        this.log.error({ err: error }, 'a scheduler tick failed');
        return null;
      })
      .then((report) => {
        this.running = null;
        if (this.stopped) return;
        const wait = report ? this.msToNextFire(report.nextFire) : this.pollMs;
        this.timer = setTimeout(() => {
          this.timer = null;
          this.loop();
        }, wait);
        this.timer.unref();
      });
  }

  private msToNextFire(nextFire: Date | null): number {
    if (!nextFire) return this.pollMs;
    // A couple of ms past the fire time, so the tick finds it due.
    return Math.max(0, Math.min(this.pollMs, nextFire.getTime() - this.now().getTime() + 2));
  }

  /** One pass: fire what is due, start queued firings whose turn came, post finished results. */
  async tick(): Promise<TickReport & { nextFire: Date | null }> {
    const report: TickReport = { fired: [], decided: [], notified: [] };
    const now = this.now();
    const rows = await this.db<ScheduleRow>('schedules').where({ status: 'active' }).orderBy('id');
    let nextFire: Date | null = null;
    for (const schedule of rows.map(toSchedule)) {
      try {
        await this.fireDue(schedule, now, report);
        const next = nextFireTimes(schedule.cron, schedule.tz, now, 1)[0];
        if (next && (!nextFire || next < nextFire)) nextFire = next;
      } catch (error) {
        this.log.error({ err: error, scheduleId: schedule.id }, `firing schedule ${scheduleRef(schedule.id)} failed`);
      }
    }
    await this.startQueued(report);
    await this.postResults(report);
    return { ...report, nextFire };
  }

  private async fireDue(seen: Schedule, now: Date, report: TickReport): Promise<void> {
    const since = seen.firedThrough ?? seen.approvedAt ?? seen.createdAt;
    const due = dueFireTimes(seen.cron, seen.tz, since, now);
    if (!due.latest) return;
    const fireAt = due.latest;
    const decided = await this.db.transaction(async (trx) => {
      const schedule = await getScheduleForUpdate(trx, seen.id);
      if (!schedule || schedule.status !== 'active') return null;
      if (schedule.firedThrough && schedule.firedThrough.getTime() >= fireAt.getTime()) return null;
      await trx('schedules').where({ id: schedule.id }).update({ fired_through: fireAt });
      // The firing key: whoever inserts it decides this fire time; anyone else finds it taken.
      const claimed = await trx('schedule_firings').insert({ schedule_id: schedule.id, fire_at: fireAt, outcome: 'fired' }).onConflict(['schedule_id', 'fire_at']).ignore().returning('fire_at');
      if (claimed.length === 0) return null;
      const missed = now.getTime() - fireAt.getTime() > this.lateToleranceMs;
      if (due.earlier > 0 || due.moreEarlier) {
        await appendEvent(trx, { taskId: null, type: 'schedule.missed', actor: null, data: { schedule: schedule.id, count: due.earlier, atLeast: due.moreEarlier, before: fireAt.toISOString() } });
      }
      let outcome: FiringOutcome;
      if (!this.config.targets.has(schedule.target)) outcome = 'dropped'; // its target left the config
      else if (missed && schedule.catchUp === 'skip') outcome = 'skipped-missed';
      else if (schedule.overlap === 'allow' || (await unfinishedRuns(trx, schedule.id)) === 0) outcome = 'fired';
      else if (schedule.overlap === 'queue') {
        const [row] = await trx('schedule_firings').where({ schedule_id: schedule.id, outcome: 'queued' }).count<{ count: string }[]>('* as count');
        outcome = Number(row?.count ?? 0) < this.maxQueued ? 'queued' : 'skipped-overlap';
      } else outcome = 'skipped-overlap';
      let task: Task | null = null;
      if (outcome === 'fired') task = await this.createTask(trx, schedule, fireAt, missed);
      await trx('schedule_firings')
        .where({ schedule_id: schedule.id, fire_at: fireAt })
        .update({ outcome, task_id: task?.id ?? null, catch_up: missed });
      if (outcome !== 'fired') {
        await appendEvent(trx, { taskId: null, type: `schedule.firing.${outcome}`, actor: null, data: { schedule: schedule.id, fireAt: fireAt.toISOString() } });
      }
      return { scheduleId: schedule.id, fireAt, outcome, taskId: task?.id ?? null, task };
    });
    if (!decided) return;
    report.decided.push({ scheduleId: decided.scheduleId, fireAt: decided.fireAt, outcome: decided.outcome, taskId: decided.taskId });
    if (decided.task) this.announce(decided.task, report);
    this.log.info({ scheduleId: decided.scheduleId, fireAt: fireAt.toISOString(), outcome: decided.outcome, taskId: decided.taskId }, `schedule ${scheduleRef(decided.scheduleId)} ${decided.outcome}`);
  }

  /** A pre-approved task: created and made ready in the caller's transaction, with the approval it runs under. */
  private async createTask(trx: Queryable, schedule: Schedule, fireAt: Date, catchUp: boolean): Promise<Task> {
    const approvers: string[] = await trx('schedule_reviews').where({ schedule_id: schedule.id, verdict: 'approve' }).orderBy('id').pluck('user_id');
    const approval = { schedule: schedule.id, fireAt: fireAt.toISOString(), approvedAt: schedule.approvedAt?.toISOString() ?? null, approvedBy: approvers, reviewed: approvers.length > 0, ...(catchUp ? { catchUp: true } : {}) };
    const inserted = await insertTask(trx, {
      author: schedule.author,
      target: schedule.target,
      type: schedule.type,
      script: schedule.script,
      message: schedule.message ?? `scheduled by ${scheduleRef(schedule.id)}`,
      source: 'schedule',
      sourceKey: `schedule:${schedule.id}:${fireAt.toISOString()}`,
      // No card and no review request: the result goes to the schedule's channel.
      channelId: null,
      reviewChannel: null,
    });
    if (!inserted.created) return inserted.task;
    await appendEvent(trx, { taskId: inserted.task.id, type: 'task.created', actor: schedule.author, data: { target: schedule.target, type: schedule.type, source: 'schedule', ...approval } });
    const ready = await transitionTask(trx, { taskId: inserted.task.id, from: 'created', to: 'ready', actor: null, data: { coveredBy: 'schedule-approval', ...approval } });
    return ready ?? inserted.task;
  }

  private announce(task: Task, report: TickReport): void {
    report.fired.push(task.id);
    this.bus.emit('task-changed', task.id);
    if (task.status === 'ready') this.bus.emit('task-ready', task.id);
  }

  /** `overlap: queue`: the oldest queued firing of each schedule whose previous run has ended gets its task. */
  private async startQueued(report: TickReport): Promise<void> {
    const ids: Array<string | number> = await this.db('schedule_firings').where({ outcome: 'queued' }).distinct('schedule_id').pluck('schedule_id');
    for (const id of ids.map(Number)) {
      const started = await this.db.transaction(async (trx) => {
        const schedule = await getScheduleForUpdate(trx, id);
        if (!schedule) return null;
        if (schedule.status !== 'active') {
          await trx('schedule_firings').where({ schedule_id: id, outcome: 'queued' }).update({ outcome: 'dropped' });
          return null;
        }
        if ((await unfinishedRuns(trx, id)) > 0) return null;
        const next = await trx('schedule_firings').where({ schedule_id: id, outcome: 'queued' }).orderBy('fire_at').first('fire_at', 'catch_up');
        if (!next) return null;
        const task = await this.createTask(trx, schedule, next.fire_at as Date, Boolean(next.catch_up));
        await trx('schedule_firings').where({ schedule_id: id, fire_at: next.fire_at }).update({ outcome: 'fired', task_id: task.id });
        return task;
      });
      if (started) this.announce(started, report);
    }
  }

  /** Posts the result of each fired task that ended; one process per firing (the claim on notified_at). */
  private async postResults(report: TickReport): Promise<void> {
    const windowMs = this.options.notifyWindowMs ?? 24 * 3600_000;
    const done: Array<{ schedule_id: string; fire_at: Date; task_id: string }> = await this.db('schedule_firings as f')
      .join('tasks as t', 't.id', 'f.task_id')
      .whereNull('f.notified_at')
      .whereNotIn('t.status', UNFINISHED)
      .where('f.decided_at', '>', this.db.raw('now() - make_interval(secs => ?)', [windowMs / 1000]))
      .orderBy('f.fire_at')
      .limit(50)
      .select('f.schedule_id', 'f.fire_at', 'f.task_id');
    for (const firing of done) {
      const claimed = await this.db('schedule_firings')
        .where({ schedule_id: firing.schedule_id, fire_at: firing.fire_at })
        .whereNull('notified_at')
        .update({ notified_at: this.db.fn.now() }, ['task_id']);
      if (claimed.length === 0) continue;
      const taskId = Number(firing.task_id);
      try {
        const [scheduleRow, task] = await Promise.all([this.db<ScheduleRow>('schedules').where({ id: firing.schedule_id }).first(), getTask(this.db, taskId)]);
        if (!scheduleRow || !task) continue;
        const schedule = toSchedule(scheduleRow);
        if (schedule.notify === 'failure' && task.status === 'success') continue;
        const channel = schedule.channelId ?? this.config.targets.get(schedule.target)?.channel ?? schedule.originChannel;
        if (!channel || !this.options.post) continue;
        let tail: string[] = [];
        if (task.status !== 'success') {
          const execution = await latestExecution(this.db, taskId);
          if (execution) tail = lastLinesOf(await executionLogText(this.db, execution.id), 10);
        }
        await this.options.post({ channel, schedule, task, fireAt: firing.fire_at, tail, logUrl: this.options.logUrl ? this.options.logUrl(taskId) : null });
        report.notified.push(taskId);
      } catch (error) {
        const rateLimited = (error as { name?: string }).name === 'SlackRateLimited' || /rate/i.test(String((error as Error).message));
        this.log.warn({ err: error, taskId }, `posting the result of scheduled task #${taskId} failed${rateLimited ? '; will retry' : ''}`);
        // Rate limits are retried at the next tick; Slack's refusals (not_in_channel...) are not.
        if (rateLimited) await this.db('schedule_firings').where({ schedule_id: firing.schedule_id, fire_at: firing.fire_at }).update({ notified_at: null });
      }
    }
  }
}

function lastLinesOf(log: string, count: number): string[] {
  return log
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-count)
    .map((line) => (line.length > 300 ? `${line.slice(0, 300)}…` : line));
}
