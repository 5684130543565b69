/**
 * Fires active schedules on node-cron. Every replica runs one; nobody leads.
 *
 * - Each active schedule is a node-cron task (`distributed: true`) in every process. At each fire
 *   time node-cron asks its run coordinator, keyed by the schedule and the fire time, whether
 *   this process should run the firing. Our coordinator answers from Postgres: in one
 *   transaction it takes the schedule's row lock, inserts the firing key in `schedule_firings`
 *   (primary key: schedule, fire time; ON CONFLICT DO NOTHING) and, when its insert lands,
 *   decides the firing and makes its task in the same commit. So each firing happens exactly once
 *   across processes, crashes included: a crash before the commit leaves nothing (the fire time
 *   is still due for the catch-up below), and after it the task is `ready` in Postgres, where any
 *   runner claims it. No firing is ever "claimed but undecided", so node-cron's lease (ttlMs) has
 *   nothing to guard. node-cron then runs the task's job: telling this process's runner and views.
 * - A housekeeping pass every `pollMs` (and when woken) keeps the node-cron tasks in step with
 *   the schedules table, decides the most recent fire time that no process took (downtime, a beat
 *   node-cron missed, a database error during one) through the same transaction, starts queued
 *   firings and posts results. Fire times younger than `handoffMs` are left to node-cron's timers.
 * - Only the most recent due fire time is considered: earlier ones (downtime) are recorded as
 *   missed in the audit, never run as a backlog. The latest one, if it is older than
 *   `lateToleranceMs`, was missed too: `catchUp: run` runs it once, `skip` records it skipped.
 * - At each firing the schedule's approval is checked against its target's policy as it is now
 *   (user group members resolved): when it no longer holds (review added to the target, an
 *   approver left a group, more approvals required), the firing is skipped and the schedule goes
 *   back to review (pending-review, a new request), with the reason in the audit trail. When Slack
 *   cannot say who is in a user group, the firing is skipped and nothing else changes.
 * - `overlap`: while a previous firing's task is unfinished, `skip` records the firing as
 *   skipped, `allow` fires anyway, `queue` records it `queued` (at most `maxQueued`); a queued
 *   firing gets its task as soon as the schedule has no unfinished task.
 * - The task is made `ready` directly: the schedule's approval covers it, and the audit event
 *   says which approval (`task.created` / `task.ready` data: schedule, approvedAt, approvedBy).
 * - When a fired task ends, one process (the one whose claim on `notified_at` lands) posts its
 *   result to the schedule's channel.
 *
 * The clock is injected (`now`): tests call `tick()` on a scheduler that was never started, and
 * it decides every fire time due by that clock, without node-cron's timers.
 */
import { createTask, type Logger as CronLogger, type RunCoordinator, type ScheduledTask } from 'node-cron';
import type { Config } from '../config/config.js';
import { cronVariants } from '../domain/cron.js';
import { approvalStanding, dueFireTimes, firesAt, fireTimesBetween, nextFireTimes, scheduleRef, scheduleSubject, type Schedule } from '../domain/schedule.js';
import type { Task } from '../domain/task.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { latestExecution } from '../store/executions.js';
import { getSchedule, getScheduleForUpdate, scheduleDecisions, toSchedule, unfinishedRuns, type FiringOutcome, type ScheduleRow } from '../store/schedules.js';
import { getTask, insertTask, transitionTask } from '../store/tasks.js';
import { executionLogText } from './logs.js';
import type { Bus } from './bus.js';
import type { ResolvedPolicy } from './reviewers.js';
import type { ScheduleService } from './schedules.js';

export interface SchedulerLogger {
  info(context: Record<string, unknown>, message: string): void;
  warn(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

/** Posts a firing's result; throws when Slack refused or is unreachable. */
export type ResultPoster = (args: { channel: string; schedule: Schedule; task: Task; fireAt: Date; tail: string[]; logUrl: string | null }) => Promise<void>;

export interface SchedulerOptions {
  now?: () => Date;
  /** How often the housekeeping pass runs (also how soon a new schedule, a queued firing or a finished run is noticed). */
  pollMs?: number;
  /** A fire time found later than this after it fell was missed (downtime): `catchUp` decides. */
  lateToleranceMs?: number;
  maxQueued?: number;
  /** Where results go; null: nothing is posted (no Slack). */
  post?: ResultPoster | null;
  logUrl?: (taskId: number) => string;
  /** Results of tasks that ended longer ago than this are not posted any more. */
  notifyWindowMs?: number;
  /** Once started, fire times younger than this are node-cron's to fire; the housekeeping pass takes older ones. */
  handoffMs?: number;
}

export interface Decision {
  scheduleId: number;
  fireAt: Date;
  outcome: FiringOutcome;
  taskId: number | null;
}

export interface TickReport {
  fired: number[];
  decided: Decision[];
  notified: number[];
}

const UNFINISHED = ['created', 'pending-review', 'approved', 'ready', 'running'];
const CRON_TASK_PREFIX = 'schedule-';

export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private again = false;
  private stopped = true;
  /** This process's node-cron task per active schedule, with the cron it was made from. */
  private readonly cronTasks = new Map<number, { cron: string; tz: string; tasks: ScheduledTask[] }>();
  /** Firings decided by the coordinator, waiting for node-cron to run their job. */
  private readonly decided = new Map<string, { decision: Decision; task: Task | null }>();
  /** Coordinator decisions under way (stop waits for them). */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Schedules whose stored cron node-cron refuses (written under another parser), by `cron\0tz`: logged once, skipped until edited. */
  private readonly unparsable = new Map<number, string>();
  private readonly coordinator: RunCoordinator;
  private readonly cronLogger: CronLogger;
  private readonly now: () => Date;
  private readonly pollMs: number;
  private readonly lateToleranceMs: number;
  private readonly maxQueued: number;
  private handoffMs = 0;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly schedules: Pick<ScheduleService, 'resolve' | 'requestReview' | 'changed' | 'runbooks'>,
    private readonly log: SchedulerLogger,
    private readonly options: SchedulerOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.pollMs = options.pollMs ?? 1000;
    this.lateToleranceMs = options.lateToleranceMs ?? 60_000;
    this.maxQueued = options.maxQueued ?? 5;
    this.coordinator = { shouldRun: (key) => this.claim(key) };
    this.cronLogger = {
      info: (message) => this.log.info({ component: 'node-cron' }, message),
      warn: (message) => this.log.warn({ component: 'node-cron' }, message),
      error: (message, err) => this.log.error({ component: 'node-cron', err: err ?? message }, String(message instanceof Error ? message.message : message)),
      debug: () => undefined,
    };
  }

  /** Schedules each active schedule on node-cron, and runs the housekeeping pass now and every `pollMs`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.handoffMs = this.options.handoffMs ?? 2000;
    this.loop();
  }

  /** Looks again soon (a schedule was approved, edited, resumed, or a task of one ended). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const { tasks } of this.cronTasks.values()) for (const task of tasks) await task.destroy();
    this.cronTasks.clear();
    await this.running;
    await Promise.allSettled([...this.inFlight]);
  }

  private loop(): void {
    this.running = this.tick()
      .catch((error) => {
        this.log.error({ err: error }, 'a scheduler pass failed');
        return null;
      })
      .then(() => {
        this.running = null;
        if (this.stopped) return;
        const wait = this.again ? 0 : this.pollMs;
        this.again = false;
        this.timer = setTimeout(() => {
          this.timer = null;
          this.loop();
        }, wait);
        this.timer.unref();
      });
  }

  /** One housekeeping pass: node-cron tasks in step, fire what no process fired, start queued firings, post finished results. */
  async tick(): Promise<TickReport> {
    const report: TickReport = { fired: [], decided: [], notified: [] };
    const rows: ScheduleRow[] = await this.db<ScheduleRow>('schedules').where({ status: 'active' }).orderBy('id');
    const active = rows.map(toSchedule);
    if (!this.stopped) this.syncCronTasks(active);
    const now = this.now();
    const horizon = new Date(now.getTime() - this.handoffMs);
    for (const schedule of active) {
      if (this.isUnparsable(schedule)) continue;
      try {
        const since = schedule.firedThrough ?? schedule.approvedAt ?? schedule.createdAt;
        const next = nextFireTimes(schedule.cron, schedule.tz, since, 1)[0];
        if (!next || next.getTime() > horizon.getTime()) continue;
        const due = dueFireTimes(schedule.cron, schedule.tz, since, horizon);
        if (!due.latest) continue;
        const decided = await this.decide(schedule.id, due.latest, now);
        if (decided) this.announce(decided.decision, decided.task, report);
      } catch (error) {
        this.log.error({ err: error, scheduleId: schedule.id }, `firing schedule ${scheduleRef(schedule.id)} failed`);
      }
    }
    await this.startQueued(report);
    await this.postResults(report);
    return report;
  }

  // ---------------------------------------------------------------- node-cron

  private syncCronTasks(active: readonly Schedule[]): void {
    const wanted = new Map(active.map((schedule) => [schedule.id, schedule]));
    for (const [id, entry] of this.cronTasks) {
      const schedule = wanted.get(id);
      if (schedule && schedule.cron === entry.cron && schedule.tz === entry.tz) continue;
      for (const task of entry.tasks) void task.destroy();
      this.cronTasks.delete(id);
    }
    for (const schedule of active) {
      if (this.cronTasks.has(schedule.id) || this.isUnparsable(schedule)) continue;
      const tasks: ScheduledTask[] = [];
      try {
        // Usually one task; two when both day fields are restricted (classic cron's "either day"
        // rule, src/domain/cron.ts). Both share the schedule's name, so a day matching both is one
        // firing key, decided once.
        for (const variant of cronVariants(schedule.cron)) {
          const task = createTask(variant, (context) => this.runJob(schedule.id, context.date), {
            name: `${CRON_TASK_PREFIX}${schedule.id}`,
            timezone: schedule.tz,
            distributed: true,
            runCoordinator: this.coordinator,
            // node-cron still runs a beat this late (it never runs one past the next fire time).
            missedExecutionTolerance: this.lateToleranceMs,
            suppressMissedWarning: true,
            unref: true,
            logger: this.cronLogger,
          });
          tasks.push(task);
          // A beat node-cron gave up on is the housekeeping pass's to decide, with the catch-up rules.
          task.on('execution:missed', () => this.wake());
        }
        for (const task of tasks) void task.start();
        this.cronTasks.set(schedule.id, { cron: schedule.cron, tz: schedule.tz, tasks });
      } catch (error) {
        for (const task of tasks) void task.destroy();
        this.unparsable.set(schedule.id, `${schedule.cron}\u0000${schedule.tz}`);
        this.log.error(
          { err: error, scheduleId: schedule.id, cron: schedule.cron, tz: schedule.tz },
          `node-cron cannot schedule ${scheduleRef(schedule.id)}: it will not fire until its cron is edited`,
        );
      }
    }
  }

  /** A schedule whose cron node-cron refused, unless it was edited since. */
  private isUnparsable(schedule: Schedule): boolean {
    const refused = this.unparsable.get(schedule.id);
    if (refused === undefined) return false;
    if (refused === `${schedule.cron}\u0000${schedule.tz}`) return true;
    this.unparsable.delete(schedule.id);
    return false;
  }

  /** The run coordinator: decides the firing named by node-cron's key; true when this process did. */
  private claim(key: string): Promise<boolean> {
    const match = new RegExp(`^${CRON_TASK_PREFIX}(\\d+):(.+)$`).exec(key);
    const fireAt = new Date(match?.[2] ?? '');
    if (!match || Number.isNaN(fireAt.getTime())) return Promise.resolve(false);
    const work = this.decide(Number(match[1]), fireAt, this.now()).then((decided) => {
      if (!decided) return false;
      // node-cron runs the job right after this answer; the bound only guards against a job that never came.
      if (this.decided.size >= 1000) this.decided.delete(this.decided.keys().next().value as string);
      this.decided.set(key, decided);
      return true;
    });
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work)).catch(() => undefined);
    return work;
  }

  /** node-cron's job for a firing this process decided: tell the runner and the views here. */
  private runJob(scheduleId: number, fireAt: Date): void {
    const key = `${CRON_TASK_PREFIX}${scheduleId}:${fireAt.toISOString()}`;
    const decided = this.decided.get(key);
    if (!decided) return;
    this.decided.delete(key);
    this.announce(decided.decision, decided.task, null);
  }

  // ---------------------------------------------------------------- the firing's one transaction

  /**
   * Decides one fire time of one schedule, exactly once across processes: the transaction whose
   * insert of the firing key lands makes the task (or records why not) in the same commit.
   * Null when the fire time is not this process's to decide (taken, not active, not a fire time).
   */
  async decide(scheduleId: number, fireAt: Date, now: Date): Promise<{ decision: Decision; task: Task | null } | null> {
    const seen = await getSchedule(this.db, scheduleId);
    if (seen?.status !== 'active') return null;
    if (seen.firedThrough && seen.firedThrough.getTime() >= fireAt.getTime()) return null;
    // A beat from a cron that was edited away since this process scheduled it.
    if (!firesAt(seen.cron, seen.tz, fireAt)) return null;
    // Slack is asked (for user group members) before the row is locked.
    const resolved = this.config.targets.has(seen.target) ? await this.schedules.resolve(seen.target) : null;
    let sentBack = false;
    const decided = await this.db.transaction(async (trx) => {
      const schedule = await getScheduleForUpdate(trx, scheduleId);
      if (schedule?.status !== 'active') return null;
      if (schedule.target !== seen.target || schedule.cron !== seen.cron || schedule.tz !== seen.tz) return null;
      const since = schedule.firedThrough ?? schedule.approvedAt ?? schedule.createdAt;
      if (since.getTime() >= fireAt.getTime()) return null;
      // The firing key: whoever inserts it decides this fire time; anyone else finds it taken.
      const claimed = await trx('schedule_firings')
        .insert({ schedule_id: schedule.id, fire_at: fireAt, outcome: 'fired' })
        .onConflict(['schedule_id', 'fire_at'])
        .ignore()
        .returning('fire_at');
      if (claimed.length === 0) return null;
      await trx('schedules').where({ id: schedule.id }).update({ fired_through: fireAt });
      const earlier = fireTimesBetween(schedule.cron, schedule.tz, since, fireAt, 100);
      if (earlier.count > 0) {
        await appendEvent(trx, {
          taskId: null,
          subject: scheduleSubject(schedule.id),
          type: 'schedule.missed',
          actor: null,
          data: { schedule: schedule.id, count: earlier.count, atLeast: earlier.more, before: fireAt.toISOString() },
        });
      }
      const missed = now.getTime() - fireAt.getTime() > this.lateToleranceMs;
      let outcome: FiringOutcome;
      let reason: string | null = null;
      if (!schedule.runbook && !this.config.targets.has(schedule.target))
        outcome = 'dropped'; // its target left the config
      else if (missed && schedule.catchUp === 'skip') outcome = 'skipped-missed';
      else {
        const standing = await this.standing(trx, schedule, resolved);
        if (!standing.holds) {
          outcome = standing.verifiable ? 'skipped-unapproved' : 'skipped-unverified';
          reason = standing.reason;
          if (standing.verifiable && resolved) {
            await this.schedules.requestReview(
              trx,
              schedule,
              resolved.policy,
              null,
              { reason: 'approval-no-longer-holds', detail: standing.reason, fireAt: fireAt.toISOString() },
              {},
              standing.reason,
            );
            sentBack = true;
          }
        } else if (schedule.overlap === 'allow' || (await unfinishedRuns(trx, schedule.id)) === 0) outcome = 'fired';
        else if (schedule.overlap === 'queue') {
          const [row] = await trx('schedule_firings').where({ schedule_id: schedule.id, outcome: 'queued' }).count<{ count: string }[]>('* as count');
          outcome = Number(row?.count ?? 0) < this.maxQueued ? 'queued' : 'skipped-overlap';
        } else outcome = 'skipped-overlap';
      }
      let task: Task | null = null;
      let runId: number | null = null;
      if (outcome === 'fired' && schedule.runbook) {
        // A runbook schedule's firing is a run, reviewed where its targets need it.
        const started = this.schedules.runbooks
          ? await this.schedules.runbooks.start(trx, schedule, fireAt)
          : { ok: false as const, reason: 'runbooks cannot be scheduled here' };
        if (started.ok) runId = started.runId;
        else {
          outcome = 'dropped';
          reason = started.reason;
        }
      } else if (outcome === 'fired') task = await this.createTask(trx, schedule, fireAt, missed);
      await trx('schedule_firings')
        .where({ schedule_id: schedule.id, fire_at: fireAt })
        .update({ outcome, task_id: task?.id ?? null, run_id: runId, catch_up: missed });
      if (outcome !== 'fired') {
        await appendEvent(trx, {
          taskId: null,
          subject: scheduleSubject(schedule.id),
          type: `schedule.firing.${outcome}`,
          actor: null,
          data: { schedule: schedule.id, fireAt: fireAt.toISOString(), ...(reason ? { reason } : {}) },
        });
      }
      return { decision: { scheduleId: schedule.id, fireAt, outcome, taskId: task?.id ?? null }, task };
    });
    if (!decided) return null;
    const { decision } = decided;
    this.log[decision.outcome === 'skipped-unapproved' || decision.outcome === 'skipped-unverified' ? 'warn' : 'info'](
      { scheduleId: decision.scheduleId, fireAt: fireAt.toISOString(), outcome: decision.outcome, taskId: decision.taskId },
      `schedule ${scheduleRef(decision.scheduleId)} ${decision.outcome}`,
    );
    if (sentBack) this.schedules.changed(scheduleId);
    return decided;
  }

  /** The schedule's approval under its target's policy as it is now (null policy: no review needed). */
  private async standing(trx: Queryable, schedule: Schedule, resolved: ResolvedPolicy | null) {
    if (!resolved) return approvalStanding(null, schedule.author, []);
    return approvalStanding(resolved.policy, schedule.author, await scheduleDecisions(trx, schedule), resolved.unknown);
  }

  /** A pre-approved task: created and made ready in the caller's transaction, with the approval it runs under. */
  private async createTask(trx: Queryable, schedule: Schedule, fireAt: Date, catchUp: boolean): Promise<Task> {
    const approvers: string[] = await trx('schedule_reviews')
      .where({ schedule_id: schedule.id, review_round: schedule.reviewRound, verdict: 'approve' })
      .orderBy('id')
      .pluck('user_id');
    const approval = {
      schedule: schedule.id,
      fireAt: fireAt.toISOString(),
      approvedAt: schedule.approvedAt?.toISOString() ?? null,
      approvedBy: approvers,
      reviewed: approvers.length > 0,
      contentVersion: schedule.contentVersion,
      ...(catchUp ? { catchUp: true } : {}),
    };
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
    await appendEvent(trx, {
      taskId: inserted.task.id,
      subject: scheduleSubject(schedule.id),
      type: 'task.created',
      actor: schedule.author,
      data: { target: schedule.target, type: schedule.type, source: 'schedule', ...approval },
    });
    const ready = await transitionTask(trx, {
      taskId: inserted.task.id,
      from: 'created',
      to: 'ready',
      actor: null,
      data: { coveredBy: 'schedule-approval', ...approval },
    });
    return ready ?? inserted.task;
  }

  private announce(decision: Decision, task: Task | null, report: TickReport | null): void {
    report?.decided.push(decision);
    if (!task) return;
    report?.fired.push(task.id);
    this.bus.emit('task-changed', task.id);
    if (task.status === 'ready') this.bus.emit('task-ready', task.id);
  }

  /** `overlap: queue`: the oldest queued firing of each schedule whose previous run has ended gets its task, if its approval still holds. */
  private async startQueued(report: TickReport): Promise<void> {
    const ids: Array<string | number> = await this.db('schedule_firings').where({ outcome: 'queued' }).distinct('schedule_id').pluck('schedule_id');
    for (const id of ids.map(Number)) {
      const seen = await getSchedule(this.db, id);
      const resolved = seen && this.config.targets.has(seen.target) ? await this.schedules.resolve(seen.target) : null;
      let sentBack = false;
      const started = await this.db.transaction(async (trx) => {
        const schedule = await getScheduleForUpdate(trx, id);
        if (!schedule) return null;
        const drop = async (outcome: FiringOutcome) => trx('schedule_firings').where({ schedule_id: id, outcome: 'queued' }).update({ outcome });
        if (schedule.status !== 'active' || (!schedule.runbook && !this.config.targets.has(schedule.target))) {
          await drop('dropped');
          return null;
        }
        if ((await unfinishedRuns(trx, id)) > 0) return null;
        const next = await trx('schedule_firings').where({ schedule_id: id, outcome: 'queued' }).orderBy('fire_at').first('fire_at', 'catch_up');
        if (!next) return null;
        if (schedule.target !== seen?.target) return null; // edited meanwhile: the next pass looks again
        const standing = await this.standing(trx, schedule, resolved);
        if (!standing.holds) {
          if (!standing.verifiable || !resolved) return null; // Slack cannot say now: wait
          await drop('skipped-unapproved');
          await appendEvent(trx, {
            taskId: null,
            subject: scheduleSubject(id),
            type: 'schedule.firing.skipped-unapproved',
            actor: null,
            data: { schedule: id, fireAt: (next.fire_at as Date).toISOString(), reason: standing.reason, queued: true },
          });
          await this.schedules.requestReview(
            trx,
            schedule,
            resolved.policy,
            null,
            { reason: 'approval-no-longer-holds', detail: standing.reason },
            {},
            standing.reason,
          );
          sentBack = true;
          return null;
        }
        if (schedule.runbook) {
          const run = this.schedules.runbooks
            ? await this.schedules.runbooks.start(trx, schedule, next.fire_at as Date)
            : { ok: false as const, reason: 'runbooks cannot be scheduled here' };
          await trx('schedule_firings')
            .where({ schedule_id: id, fire_at: next.fire_at })
            .update(run.ok ? { outcome: 'fired', run_id: run.runId } : { outcome: 'dropped' });
          return null;
        }
        const task = await this.createTask(trx, schedule, next.fire_at as Date, Boolean(next.catch_up));
        await trx('schedule_firings').where({ schedule_id: id, fire_at: next.fire_at }).update({ outcome: 'fired', task_id: task.id });
        return { task, fireAt: next.fire_at as Date };
      });
      if (sentBack) this.schedules.changed(id);
      if (started) this.announce({ scheduleId: id, fireAt: started.fireAt, outcome: 'fired', taskId: started.task.id }, started.task, report);
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
        // Rate limits are retried at the next pass; Slack's refusals (not_in_channel...) are not.
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
