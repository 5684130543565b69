/**
 * The use cases on a schedule: add, review (once, with the same rules as a task), list, pause,
 * resume, remove. A schedule fires only while `active`; it becomes active when its reviewers
 * approve it (at once on a target without review). What it runs (target, script, type) never
 * changes after review: a different script is a new schedule, reviewed again.
 */
import type { Config } from '../config/config.js';
import { isApproved, mayOperate, mayReview, unreachableGroups } from '../domain/review.js';
import { scheduleRef, type Schedule, type ScheduleAdd, type ScheduleStatus } from '../domain/schedule.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { getSchedule, getScheduleForUpdate, scheduleDecisions, toSchedule, type ScheduleRow } from '../store/schedules.js';
import { refuse, type Outcome } from './outcome.js';
import type { TaskService } from './taskService.js';

export interface AddScheduleInput extends Omit<ScheduleAdd, 'action'> {
  author: string;
  /** Where the command was typed (results go there when neither --channel nor the target's channel is set). */
  originChannel: string | null;
  /** Idempotency key (the Slack trigger_id): the same key returns the same schedule. */
  sourceKey: string | null;
}

const STATUS_WORDS: Readonly<Record<ScheduleStatus, string>> = {
  'pending-review': 'waiting for review',
  active: 'active',
  paused: 'paused',
  rejected: 'rejected',
  removed: 'removed',
};

export type ScheduleListener = (scheduleId: number) => void;

export class ScheduleService {
  private readonly listeners: ScheduleListener[] = [];

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly tasks: Pick<TaskService, 'resolvedPolicy'>,
    /** The scheduler's clock: a schedule fires from the first fire time after it became active. */
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Told (in this process) after any change to a schedule: its review request is redrawn, the scheduler looks again. */
  onChange(listener: ScheduleListener): void {
    this.listeners.push(listener);
  }

  get(id: number): Promise<Schedule | null> {
    return getSchedule(this.db, id);
  }

  /** Where the results of a schedule go: its channel, else its target's, else where it was asked for. */
  resultChannel(schedule: Schedule): string | null {
    return schedule.channelId ?? this.config.targets.get(schedule.target)?.channel ?? schedule.originChannel;
  }

  decisions(id: number) {
    return scheduleDecisions(this.db, id);
  }

  async add(input: AddScheduleInput): Promise<Outcome<{ schedule: Schedule; created: boolean }>> {
    const target = this.config.targets.get(input.target);
    if (!target) {
      const known = [...this.config.targets.keys()].map((name) => `\`${name}\``).join(', ');
      return refuse('unknown_target', `There is no target \`${input.target}\`. ${known === '' ? 'No targets are configured yet.' : `Targets: ${known}.`}`);
    }
    const policy = await this.tasks.resolvedPolicy(target.name);
    if (policy && unreachableGroups(policy, input.author).length > 0) {
      return refuse('unreachable_review', `Your schedule on \`${target.name}\` could never be approved: a review group would need approvals from people other than you, and has too few.`);
    }
    const now = this.now();
    const result = await this.db.transaction(async (trx) => {
      const [row] = await trx<ScheduleRow>('schedules')
        .insert({
          status: policy ? 'pending-review' : 'active',
          author: input.author,
          target: target.name,
          cron: input.cron,
          tz: input.tz,
          type: input.type ?? target.type,
          script: input.script,
          message: input.message,
          channel_id: input.channel,
          origin_channel: input.originChannel,
          notify: input.notify,
          overlap: input.overlap,
          catch_up: input.catchUp,
          source_key: input.sourceKey,
          review_channel: policy?.channel ?? null,
          approved_at: policy ? null : now,
          fired_through: policy ? null : now,
        })
        .onConflict('source_key')
        .ignore()
        .returning('*');
      if (!row) {
        const existing = await trx<ScheduleRow>('schedules').where({ source_key: input.sourceKey }).first();
        if (!existing) throw new Error('schedule vanished after a conflict');
        return { schedule: toSchedule(existing), created: false };
      }
      const schedule = toSchedule(row);
      await appendEvent(trx, {
        taskId: null,
        type: 'schedule.created',
        actor: input.author,
        data: { schedule: schedule.id, target: target.name, cron: input.cron, tz: input.tz, reviewed: policy !== null, overlap: input.overlap, catchUp: input.catchUp, notify: input.notify },
      });
      if (!policy) await appendEvent(trx, { taskId: null, type: 'schedule.active', actor: null, data: { schedule: schedule.id, reason: 'target has no review' } });
      return { schedule, created: true };
    });
    if (result.created) this.changed(result.schedule.id);
    return { ok: true, ...result };
  }

  async approve(id: number, userId: string): Promise<Outcome<{ schedule: Schedule }>> {
    return this.review(id, userId, 'approve', null);
  }

  async reject(id: number, userId: string, reason: string | null): Promise<Outcome<{ schedule: Schedule }>> {
    return this.review(id, userId, 'reject', reason);
  }

  /** One decision per reviewer; approved once every group is satisfied (the author never counts). */
  private async review(id: number, userId: string, verdict: 'approve' | 'reject', reason: string | null): Promise<Outcome<{ schedule: Schedule }>> {
    const before = await getSchedule(this.db, id);
    if (!before) return refuse('not_found', `There is no schedule ${scheduleRef(id)}.`);
    // Slack is asked (for user group members) before the row is locked.
    const policy = await this.tasks.resolvedPolicy(before.target);
    const ref = scheduleRef(id);
    if (!policy) return refuse('no_review', `${ref} runs on \`${before.target}\`, which has no review.`);
    const now = this.now();
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ schedule: Schedule }>> => {
      const schedule = await getScheduleForUpdate(trx, id);
      if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
      const allowed = mayReview(policy, schedule.author, userId, ref);
      if (!allowed.ok) return allowed;
      if (schedule.status !== 'pending-review') return refuse('not_pending', `${ref} is ${STATUS_WORDS[schedule.status]}; it can no longer be reviewed.`);
      const inserted = await trx('schedule_reviews').insert({ schedule_id: id, user_id: userId, verdict, reason }).onConflict(['schedule_id', 'user_id']).ignore().returning('id');
      if (inserted.length === 0) return refuse('already_decided', `You already reviewed ${ref}.`);
      await appendEvent(trx, { taskId: null, type: verdict === 'approve' ? 'schedule.review.approved' : 'schedule.review.rejected', actor: userId, data: { schedule: id, ...(reason ? { reason } : {}) } });
      if (verdict === 'reject') {
        return { ok: true, schedule: await this.setStatus(trx, schedule, 'rejected', userId, { reason }) };
      }
      const decisions = await scheduleDecisions(trx, id);
      if (!isApproved(policy, schedule.author, decisions)) return { ok: true, schedule };
      const approvers = decisions.filter((d) => d.verdict === 'approve').map((d) => d.userId);
      return { ok: true, schedule: await this.setStatus(trx, schedule, 'active', userId, { approvedBy: approvers }, { approved_at: now, fired_through: now }) };
    });
    if (outcome.ok) this.changed(id);
    return outcome;
  }

  /** May `userId` review this schedule now? Asked before the reject modal opens. */
  async checkMayReview(id: number, userId: string): Promise<Outcome<{ schedule: Schedule }>> {
    const schedule = await getSchedule(this.db, id);
    const ref = scheduleRef(id);
    if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
    const policy = await this.tasks.resolvedPolicy(schedule.target);
    if (!policy) return refuse('no_review', `${ref} runs on \`${schedule.target}\`, which has no review.`);
    const allowed = mayReview(policy, schedule.author, userId, ref);
    if (!allowed.ok) return allowed;
    if (schedule.status !== 'pending-review') return refuse('not_pending', `${ref} is ${STATUS_WORDS[schedule.status]}; it can no longer be reviewed.`);
    return { ok: true, schedule };
  }

  async pause(id: number, userId: string): Promise<Outcome<{ schedule: Schedule }>> {
    return this.operate(id, userId, 'pause', ['active'], 'paused');
  }

  /** Firings that fell while it was paused are not caught up: it fires from the next time on. */
  async resume(id: number, userId: string): Promise<Outcome<{ schedule: Schedule }>> {
    return this.operate(id, userId, 'resume', ['paused'], 'active', { fired_through: this.now() });
  }

  async remove(id: number, userId: string): Promise<Outcome<{ schedule: Schedule }>> {
    return this.operate(id, userId, 'remove', ['pending-review', 'active', 'paused', 'rejected'], 'removed');
  }

  /** Schedules not removed, newest first. */
  async list(limit = 50): Promise<{ schedules: Schedule[]; more: boolean }> {
    const rows = await this.db<ScheduleRow>('schedules').whereNot({ status: 'removed' }).orderBy('id', 'desc').limit(limit + 1);
    return { schedules: rows.slice(0, limit).map(toSchedule), more: rows.length > limit };
  }

  /** The last firings of a schedule with their task's status. */
  async firings(id: number, limit = 5): Promise<Array<{ fireAt: Date; outcome: string; taskId: number | null; status: string | null }>> {
    const rows: Array<{ fire_at: Date; outcome: string; task_id: string | null; status: string | null }> = await this.db('schedule_firings as f')
      .leftJoin('tasks as t', 't.id', 'f.task_id')
      .where('f.schedule_id', id)
      .orderBy('f.fire_at', 'desc')
      .limit(limit)
      .select('f.fire_at', 'f.outcome', 'f.task_id', 't.status');
    return rows.map((row) => ({ fireAt: row.fire_at, outcome: row.outcome, taskId: row.task_id === null ? null : Number(row.task_id), status: row.status }));
  }

  async recordReviewPosted(id: number, ts: string): Promise<void> {
    await this.db('schedules').where({ id }).update({ review_ts: ts, review_post_claimed_at: null });
  }

  /** The right to post a schedule's review request: true for one caller across processes until it records or releases it. */
  async claimReviewPost(id: number): Promise<boolean> {
    const rows = await this.db('schedules')
      .where({ id })
      .whereNull('review_ts')
      .where((q) => q.whereNull('review_post_claimed_at').orWhere('review_post_claimed_at', '<', this.db.raw("now() - interval '2 minutes'")))
      .update({ review_post_claimed_at: this.db.fn.now() }, ['id']);
    return rows.length > 0;
  }

  async releaseReviewPost(id: number): Promise<void> {
    await this.db('schedules').where({ id }).whereNull('review_ts').update({ review_post_claimed_at: null });
  }

  /** Schedules waiting for review whose request is not posted yet (a failed post, a crash). */
  async unpostedReviews(limit = 20): Promise<number[]> {
    const ids: Array<string | number> = await this.db('schedules').where({ status: 'pending-review' }).whereNull('review_ts').whereNotNull('review_channel').orderBy('id').limit(limit).pluck('id');
    return ids.map(Number);
  }

  private async operate(id: number, userId: string, action: string, from: ScheduleStatus[], to: ScheduleStatus, set: Partial<ScheduleRow> = {}): Promise<Outcome<{ schedule: Schedule }>> {
    const ref = scheduleRef(id);
    const before = await getSchedule(this.db, id);
    if (!before) return refuse('not_found', `There is no schedule ${ref}.`);
    const policy = userId === before.author ? null : await this.tasks.resolvedPolicy(before.target);
    const allowed = userId === before.author ? ({ ok: true } as const) : mayOperate(policy, before.author, userId, action, ref);
    if (!allowed.ok) return allowed;
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ schedule: Schedule }>> => {
      const schedule = await getScheduleForUpdate(trx, id);
      if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
      if (!from.includes(schedule.status)) return refuse('wrong_status', `${ref} is ${STATUS_WORDS[schedule.status]}, so it cannot be ${action === 'pause' ? 'paused' : action === 'resume' ? 'resumed' : 'removed'}.`);
      return { ok: true, schedule: await this.setStatus(trx, schedule, to, userId, {}, set) };
    });
    if (outcome.ok) this.changed(id);
    return outcome;
  }

  private async setStatus(trx: Queryable, schedule: Schedule, to: ScheduleStatus, actor: string | null, data: Record<string, unknown>, set: Partial<ScheduleRow> = {}): Promise<Schedule> {
    const [row] = await trx<ScheduleRow>('schedules')
      .where({ id: schedule.id, status: schedule.status })
      .update({ ...set, status: to, status_changed_at: trx.fn.now() as unknown as Date }, '*');
    if (!row) throw new Error(`schedule ${schedule.id} changed under its row lock`);
    await appendEvent(trx, { taskId: null, type: `schedule.${to}`, actor, data: { schedule: schedule.id, from: schedule.status, ...data } });
    return toSchedule(row);
  }

  private changed(id: number): void {
    for (const listener of this.listeners) listener(id);
  }
}
