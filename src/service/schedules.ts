/**
 * The use cases on a schedule: add, review (with the same rules as a task), edit, list, pause,
 * resume, remove, and the expiry of reviews left pending. A schedule fires only while `active`;
 * it becomes active when its reviewers approve it (at once on a target without review).
 *
 * What a review approves is the schedule's content version (target, type, script, message):
 * Approve buttons carry it, and a click on an older version is refused. An edit of the cron,
 * zone, channel or result options applies at once (audited); an edit of what runs starts a new
 * review round (earlier decisions stop counting) and the schedule fires nothing until approved.
 * Every status change goes through `setStatus`: guarded on the expected status, with its event.
 */
import type { Knex } from 'knex';
import type { Config } from '../config/config.js';
import { expiryMessage, isApproved, mayOperate, mayReview, reviewExpiresAt, stuckGroups, type ReviewPolicy } from '../domain/review.js';
import {
  checkCron,
  scheduleContentVersion,
  scheduleRef,
  scheduleSubject,
  type Schedule,
  type ScheduleAdd,
  type ScheduleEdit,
  type ScheduleStatus,
} from '../domain/schedule.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import {
  finishScheduleDms,
  getSchedule,
  getScheduleForUpdate,
  recordReviewScriptPosted,
  reviewScriptPosted,
  scheduleReviewLedger,
  scheduleDecisions,
  schedulesWithDmsMissing,
  toSchedule,
  type ScheduleRow,
} from '../store/schedules.js';
import { claimDms, dmsToSend, recordDmSent, releaseDm } from '../store/slackMessages.js';
import { refuse, type Outcome } from './outcome.js';
import type { ResolvedPolicy, Reviewers } from './reviewers.js';

export interface AddScheduleInput extends Omit<ScheduleAdd, 'action'> {
  author: string;
  /** Where the command was typed (results go there when neither --channel nor the target's channel is set). */
  originChannel: string | null;
  /** Idempotency key (the Slack trigger_id): the same key returns the same schedule. */
  sourceKey: string | null;
}

export type EditScheduleInput = Omit<ScheduleEdit, 'action' | 'id'>;

export interface EditResult {
  schedule: Schedule;
  /** Fields that changed, by name. */
  changed: string[];
  /** What it runs changed, and its target has review: it waits for a new approval. */
  reviewAgain: boolean;
}

export const STATUS_WORDS: Readonly<Record<ScheduleStatus, string>> = {
  'pending-review': 'waiting for review',
  active: 'active',
  paused: 'paused',
  rejected: 'rejected',
  removed: 'removed',
};

/** The answer to an Approve click drawn before the schedule last changed. */
export const STALE_APPROVAL = 'changed since this request was drawn; the request now shows the new version. Read it again before approving.';

export type ScheduleListener = (scheduleId: number) => void;

/** How schedules start runbooks (RunbookService behind it; src/app.ts wires it). */
export interface RunbookScheduling {
  /** May `author` schedule this runbook with these values (it exists, lists `schedule` in triggeredBy, the values fit)? */
  check(reference: string, values: Readonly<Record<string, string>>, author: string): Promise<Outcome<object>>;
  /** Starts the firing's run in the firing's transaction; its id, or why it could not start. */
  start(trx: Knex.Transaction, schedule: Schedule, fireAt: Date): Promise<{ ok: true; runId: number } | { ok: false; reason: string }>;
}

export class ScheduleService {
  private readonly listeners: ScheduleListener[] = [];
  private runbookScheduling: RunbookScheduling | null = null;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly reviewers: Pick<Reviewers, 'resolve'>,
    /** The scheduler's clock: a schedule fires from the first fire time after it became active. */
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Lets schedules start runbooks (`--runbook`). */
  useRunbooks(scheduling: RunbookScheduling): void {
    this.runbookScheduling = scheduling;
  }

  get runbooks(): RunbookScheduling | null {
    return this.runbookScheduling;
  }

  /** Told (in this process) after any change to a schedule: its review request is redrawn, the scheduler looks again. */
  onChange(listener: ScheduleListener): void {
    this.listeners.push(listener);
  }

  get(id: number): Promise<Schedule | null> {
    return getSchedule(this.db, id);
  }

  /** The target's review policy with its user groups' members, as they are now; null: no review. */
  async resolve(targetName: string): Promise<ResolvedPolicy | null> {
    const policy = this.config.targets.get(targetName)?.review ?? null;
    return policy ? this.reviewers.resolve(policy) : null;
  }

  async resolvedPolicy(targetName: string): Promise<ReviewPolicy | null> {
    return (await this.resolve(targetName))?.policy ?? null;
  }

  /** Where the results of a schedule go: its channel, else its target's, else where it was asked for. */
  resultChannel(schedule: Pick<Schedule, 'channelId' | 'target' | 'originChannel'>): string | null {
    return schedule.channelId ?? this.config.targets.get(schedule.target)?.channel ?? schedule.originChannel;
  }

  /** The decisions of its current review round. */
  decisions(schedule: Pick<Schedule, 'id' | 'reviewRound'>) {
    return scheduleDecisions(this.db, schedule);
  }

  async add(input: AddScheduleInput): Promise<Outcome<{ schedule: Schedule; created: boolean }>> {
    // A runbook schedule (`--runbook`) needs no review of its own: each firing starts a run,
    // reviewed where the runbook's targets need it (RunbookScheduling, set by the app).
    const runbook = input.runbook ?? null;
    if (runbook !== null) {
      if (!this.runbookScheduling) return refuse('no_runbooks', 'Runbooks cannot be scheduled here.');
      const allowed = await this.runbookScheduling.check(runbook, input.arguments ?? {}, input.author);
      if (!allowed.ok) return allowed;
    }
    const target = runbook !== null ? null : this.config.targets.get(input.target);
    if (runbook === null && !target) return this.unknownTarget(input.target);
    // Slack's parser checked it already; the API's callers have only this check.
    const checked = checkCron(input.cron, input.tz, this.now());
    if (!checked.ok) return refuse('bad_cron', checked.error);
    const resolved = target ? await this.resolve(target.name) : null;
    const policy = resolved?.policy ?? null;
    if (resolved && stuckGroups(resolved.policy, resolved.unknown, input.author).length > 0) {
      return refuse(
        'unreachable_review',
        `Your schedule on \`${input.target}\` could never be approved: a review group would need approvals from people other than you, and has too few.`,
      );
    }
    const now = this.now();
    const type = input.type ?? target?.type ?? 'bash';
    const targetName = target?.name ?? input.target;
    const result = await this.db.transaction(async (trx) => {
      const [row] = await trx<ScheduleRow>('schedules')
        .insert({
          status: policy ? 'pending-review' : 'active',
          author: input.author,
          target: targetName,
          cron: input.cron,
          tz: input.tz,
          type,
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
          content_version: scheduleContentVersion({ target: targetName, type, script: input.script, message: input.message }),
          review_requested_at: policy ? (trx.fn.now() as unknown as Date) : null,
          ...(runbook !== null ? { runbook, arguments: JSON.stringify(input.arguments ?? {}) as unknown as Record<string, string> } : {}),
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
        subject: scheduleSubject(schedule.id),
        type: 'schedule.created',
        actor: input.author,
        data: {
          schedule: schedule.id,
          target: targetName,
          ...(runbook !== null ? { runbook, arguments: input.arguments ?? {} } : {}),
          cron: input.cron,
          tz: input.tz,
          reviewed: policy !== null,
          overlap: input.overlap,
          catchUp: input.catchUp,
          notify: input.notify,
          contentVersion: schedule.contentVersion,
        },
      });
      if (!policy)
        await appendEvent(trx, {
          taskId: null,
          subject: scheduleSubject(schedule.id),
          type: 'schedule.active',
          actor: null,
          data: {
            schedule: schedule.id,
            reason: runbook !== null ? "each firing's run is reviewed where its runbook's targets need it" : 'target has no review',
          },
        });
      return { schedule, created: true };
    });
    if (result.created) this.changed(result.schedule.id);
    return { ok: true, ...result };
  }

  /**
   * Approves the version the reviewer saw (`version`: the content version their button carried;
   * null for callers that show the schedule as it is now, such as tests).
   */
  async approve(id: number, userId: string, version: string | null = null): Promise<Outcome<{ schedule: Schedule }>> {
    return this.review(id, userId, 'approve', null, version);
  }

  async reject(id: number, userId: string, reason: string | null): Promise<Outcome<{ schedule: Schedule }>> {
    return this.review(id, userId, 'reject', reason, null);
  }

  /** One decision per reviewer and round; approved once every group is satisfied (the author never counts). */
  private async review(
    id: number,
    userId: string,
    verdict: 'approve' | 'reject',
    reason: string | null,
    version: string | null,
  ): Promise<Outcome<{ schedule: Schedule }>> {
    const before = await getSchedule(this.db, id);
    if (!before) return refuse('not_found', `There is no schedule ${scheduleRef(id)}.`);
    // Slack is asked (for user group members) before the row is locked.
    const policy = await this.resolvedPolicy(before.target);
    const ref = scheduleRef(id);
    if (!policy) return refuse('no_review', `${ref} runs on \`${before.target}\`, which has no review.`);
    const now = this.now();
    let redraw = false;
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ schedule: Schedule }>> => {
      const schedule = await getScheduleForUpdate(trx, id);
      if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
      const allowed = mayReview(policy, schedule.author, userId, ref);
      if (!allowed.ok) return allowed;
      if (schedule.status !== 'pending-review') return refuse('not_pending', `${ref} is ${STATUS_WORDS[schedule.status]}; it can no longer be reviewed.`);
      if (schedule.target !== before.target) return refuse('changed', `${ref} ${STALE_APPROVAL}`);
      if (verdict === 'approve' && version !== null && version !== schedule.contentVersion) {
        redraw = true;
        return refuse('stale_version', `${ref} ${STALE_APPROVAL}`);
      }
      if (await this.reviewExpired(trx, schedule, policy)) return refuse('expired', `The review of ${ref} has expired; it can no longer be approved.`);
      const inserted = await trx('schedule_reviews')
        .insert({ schedule_id: id, user_id: userId, verdict, reason, review_round: schedule.reviewRound, content_version: schedule.contentVersion })
        .onConflict(['schedule_id', 'review_round', 'user_id'])
        .ignore()
        .returning('id');
      if (inserted.length === 0) return refuse('already_decided', `You already reviewed ${ref}.`);
      await appendEvent(trx, {
        taskId: null,
        subject: scheduleSubject(id),
        type: verdict === 'approve' ? 'schedule.review.approved' : 'schedule.review.rejected',
        actor: userId,
        data: { schedule: id, contentVersion: schedule.contentVersion, round: schedule.reviewRound, ...(reason ? { reason } : {}) },
      });
      if (verdict === 'reject') {
        return { ok: true, schedule: await this.setStatus(trx, schedule, 'rejected', userId, { reason }, { status_reason: null }) };
      }
      const decisions = await scheduleDecisions(trx, schedule);
      if (!isApproved(policy, schedule.author, decisions)) return { ok: true, schedule };
      const approvers = decisions.filter((d) => d.verdict === 'approve').map((d) => d.userId);
      return {
        ok: true,
        schedule: await this.setStatus(
          trx,
          schedule,
          'active',
          userId,
          { approvedBy: approvers, contentVersion: schedule.contentVersion },
          { approved_at: now, fired_through: now, status_reason: null },
        ),
      };
    });
    if (outcome.ok || redraw) this.changed(id);
    return outcome;
  }

  /** May `userId` review this schedule now? Asked before the reject modal opens. */
  async checkMayReview(id: number, userId: string): Promise<Outcome<{ schedule: Schedule }>> {
    const schedule = await getSchedule(this.db, id);
    const ref = scheduleRef(id);
    if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
    const policy = await this.resolvedPolicy(schedule.target);
    if (!policy) return refuse('no_review', `${ref} runs on \`${schedule.target}\`, which has no review.`);
    const allowed = mayReview(policy, schedule.author, userId, ref);
    if (!allowed.ok) return allowed;
    if (schedule.status !== 'pending-review') return refuse('not_pending', `${ref} is ${STATUS_WORDS[schedule.status]}; it can no longer be reviewed.`);
    return { ok: true, schedule };
  }

  /**
   * Changes a schedule. Only its author may: a changed script is theirs to answer for, and a
   * reviewer who rewrote it could then approve their own words. Cron, zone, channel and result
   * options apply at once; a change of target, type, script or message is reviewed again.
   */
  async edit(id: number, userId: string, input: EditScheduleInput): Promise<Outcome<EditResult>> {
    const ref = scheduleRef(id);
    const before = await getSchedule(this.db, id);
    if (!before) return refuse('not_found', `There is no schedule ${ref}.`);
    if (userId !== before.author) return refuse('not_allowed', `Only its author can edit ${ref}.`);
    if (before.status === 'removed') return refuse('wrong_status', `${ref} is removed; add a new schedule instead.`);
    if (before.runbook)
      return refuse('not_editable', `${ref} starts the runbook \`${before.runbook}\`: remove it and add it again with the new cron, options or values.`);
    const targetName = input.target ?? before.target;
    const target = this.config.targets.get(targetName);
    if (!target) return this.unknownTarget(targetName);
    const cron = input.cron ?? before.cron;
    const tz = input.tz ?? before.tz;
    if (input.cron !== null || input.tz !== null) {
      const checked = checkCron(cron, tz, this.now());
      if (!checked.ok) return refuse('bad_cron', checked.error);
    }
    const resolved = await this.resolve(target.name);
    const policy = resolved?.policy ?? null;
    if (input.target !== null && resolved && stuckGroups(resolved.policy, resolved.unknown, before.author).length > 0) {
      return refuse(
        'unreachable_review',
        `${ref} could never be approved on \`${target.name}\`: a review group would need approvals from people other than you, and has too few.`,
      );
    }
    const now = this.now();
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<EditResult>> => {
      const schedule = await getScheduleForUpdate(trx, id);
      if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
      if (schedule.status === 'removed') return refuse('wrong_status', `${ref} is removed; add a new schedule instead.`);
      // Types follow the target when the script does not name one, as at add.
      const type = input.type ?? (input.target !== null && input.target !== schedule.target ? target.type : schedule.type);
      const next = {
        target: target.name,
        type,
        script: input.script ?? schedule.script,
        message: input.message ?? schedule.message,
        cron,
        tz,
        channelId: input.channel ?? schedule.channelId,
        notify: input.notify ?? schedule.notify,
        overlap: input.overlap ?? schedule.overlap,
        catchUp: input.catchUp ?? schedule.catchUp,
      };
      const changes: Record<string, { from: unknown; to: unknown }> = {};
      for (const key of Object.keys(next) as Array<keyof typeof next>) {
        if (next[key] !== schedule[key]) changes[key] = { from: schedule[key], to: next[key] };
      }
      // The scripts themselves stay in the schedule's rows and reviews; the audit names them by version.
      const contentVersion = scheduleContentVersion(next);
      if ('script' in changes) changes.script = { from: `${schedule.script.length} characters`, to: `${next.script.length} characters` };
      const changed = Object.keys(changes);
      if (changed.length === 0) return refuse('no_change', `${ref} already looks like that; nothing changed.`);
      const contentChanged = contentVersion !== schedule.contentVersion;
      const reviewAgain = contentChanged && policy !== null;
      const set: Partial<ScheduleRow> = {
        target: next.target,
        type: next.type,
        script: next.script,
        message: next.message,
        cron: next.cron,
        tz: next.tz,
        channel_id: next.channelId,
        notify: next.notify,
        overlap: next.overlap,
        catch_up: next.catchUp,
        content_version: contentVersion,
      };
      // A new cron starts from now: fire times of the new cron that fell before the edit are not "missed".
      if ('cron' in changes || 'tz' in changes) set.fired_through = now;
      if (contentChanged) set.review_round = schedule.reviewRound + 1;
      await appendEvent(trx, {
        taskId: null,
        subject: scheduleSubject(id),
        type: 'schedule.edited',
        actor: userId,
        data: { schedule: id, changes, contentVersion: { from: schedule.contentVersion, to: contentVersion }, reviewAgain },
      });
      let updated: Schedule;
      if (reviewAgain) {
        updated = await this.requestReview(trx, schedule, policy, userId, { reason: 'edited', changed }, set, null);
      } else {
        if (contentChanged && schedule.status === 'active') set.approved_at = now; // a target without review: the edit is its own approval
        const [row] = await trx<ScheduleRow>('schedules').where({ id, status: schedule.status }).update(set, '*');
        if (!row) throw new Error(`schedule ${id} changed under its row lock`);
        updated = toSchedule(row);
      }
      return { ok: true, schedule: updated, changed, reviewAgain };
    });
    if (outcome.ok) this.changed(id);
    return outcome;
  }

  /**
   * Sends a schedule (back) to review in the caller's transaction: pending-review, a new request
   * in the target's review channel (a request still open is redrawn in place), DMs for the round,
   * and the review's expiry counted from now. `statusReason` is shown on the request.
   */
  async requestReview(
    trx: Queryable,
    schedule: Schedule,
    policy: ReviewPolicy,
    actor: string | null,
    data: Record<string, unknown>,
    set: Partial<ScheduleRow>,
    statusReason: string | null,
  ): Promise<Schedule> {
    const reopen = schedule.status === 'pending-review' && schedule.reviewChannel === policy.channel;
    const fields: Partial<ScheduleRow> = {
      ...set,
      review_channel: policy.channel,
      review_requested_at: trx.fn.now() as unknown as Date,
      status_reason: statusReason,
      ...(reopen ? {} : { review_ts: null, review_post_claimed_at: null }),
    };
    if (schedule.status === 'pending-review') {
      const [row] = await trx<ScheduleRow>('schedules').where({ id: schedule.id, status: 'pending-review' }).update(fields, '*');
      if (!row) throw new Error(`schedule ${schedule.id} changed under its row lock`);
      return toSchedule(row);
    }
    return this.setStatus(trx, schedule, 'pending-review', actor, data, fields);
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

  /**
   * Rejects every schedule whose review has waited longer than its target's `review.expiresAfter`
   * (measured by Postgres's clock from when the review was asked for); returns their ids. Every
   * replica may sweep: the guarded transition lets one of them, or a last approval, win.
   */
  async expireReviews(batch = 100): Promise<number[]> {
    const expired: number[] = [];
    for (const target of this.config.targets.values()) {
      const policy = target.review;
      if (!policy?.expiresAfter) continue;
      const due: Array<string | number> = await this.db('schedules')
        .where({ status: 'pending-review', target: target.name })
        .where('review_requested_at', '<=', this.db.raw('now() - make_interval(secs => ?)', [policy.expiresAfter.ms / 1000]))
        .orderBy('id')
        .limit(batch)
        .pluck('id');
      for (const id of due.map(Number)) {
        const done = await this.db.transaction(async (trx) => {
          const schedule = await getScheduleForUpdate(trx, id);
          if (schedule?.status !== 'pending-review' || schedule.target !== target.name) return false;
          if (!(await this.reviewExpired(trx, schedule, policy))) return false; // asked again meanwhile
          await this.setStatus(
            trx,
            schedule,
            'rejected',
            null,
            { reason: 'expired', after: policy.expiresAfter?.text },
            { status_reason: expiryMessage(policy) },
          );
          return true;
        });
        if (!done) continue;
        expired.push(id);
        this.changed(id);
      }
    }
    return expired;
  }

  /** Schedules not removed, newest first. */
  async list(limit = 50): Promise<{ schedules: Schedule[]; more: boolean }> {
    const rows = await this.db<ScheduleRow>('schedules')
      .whereNot({ status: 'removed' })
      .orderBy('id', 'desc')
      .limit(limit + 1);
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
    const ids: Array<string | number> = await this.db('schedules')
      .where({ status: 'pending-review' })
      .whereNull('review_ts')
      .whereNotNull('review_channel')
      .orderBy('id')
      .limit(limit)
      .pluck('id');
    return ids.map(Number);
  }

  // ------------------------------------------------------------ the whole script in the request's thread

  /** Whether the request `key` names (request and version) has had its script taken care of. */
  reviewScriptPosted(id: number, key: string): Promise<boolean> {
    return reviewScriptPosted(this.db, id, key);
  }

  recordReviewScriptPosted(id: number, key: string): Promise<void> {
    return recordReviewScriptPosted(this.db, id, key);
  }

  /** Schedules waiting for review whose posted request was not yet seen to need (or have) its whole script in the thread. */
  async wholeScriptsMissing(limit = 20): Promise<number[]> {
    const ids: Array<string | number> = await this.db('schedules')
      .where({ status: 'pending-review' })
      .whereNotNull('review_ts')
      .whereRaw("review_script_key IS DISTINCT FROM review_ts || ':' || content_version")
      .orderBy('id')
      .limit(limit)
      .pluck('id');
    return ids.map(Number);
  }

  // ------------------------------------------------------------ review DMs (one per reviewer and round)

  /** Targets with a `dm: true` review group. */
  dmTargets(): string[] {
    return [...this.config.targets.values()].filter((target) => target.review?.groups.some((group) => group.dm)).map((target) => target.name);
  }

  /** Claims the DMs of this round nobody sent or is sending: the users the caller must DM now. */
  claimReviewDms(schedule: Pick<Schedule, 'id' | 'reviewRound'>, users: readonly string[]): Promise<string[]> {
    return users.length === 0 ? Promise.resolve([]) : claimDms(this.db, scheduleReviewLedger(schedule.id, schedule.reviewRound), users);
  }

  /** The recipients of this round's DMs nobody has sent or is sending: each is claimed when its turn to be sent comes. */
  reviewDmsToSend(schedule: Pick<Schedule, 'id' | 'reviewRound'>, users: readonly string[]): Promise<string[]> {
    return users.length === 0 ? Promise.resolve([]) : dmsToSend(this.db, scheduleReviewLedger(schedule.id, schedule.reviewRound), users);
  }

  async recordReviewDm(schedule: Pick<Schedule, 'id' | 'reviewRound'>, userId: string, channel: string): Promise<void> {
    await this.db.transaction(async (trx) => {
      await recordDmSent(trx, scheduleReviewLedger(schedule.id, schedule.reviewRound), userId, channel);
      await appendEvent(trx, {
        taskId: null,
        subject: scheduleSubject(schedule.id),
        type: 'schedule.review.dm-sent',
        actor: null,
        data: { schedule: schedule.id, round: schedule.reviewRound, user: userId, channel },
      });
    });
  }

  releaseReviewDm(schedule: Pick<Schedule, 'id' | 'reviewRound'>, userId: string): Promise<void> {
    return releaseDm(this.db, scheduleReviewLedger(schedule.id, schedule.reviewRound), userId);
  }

  /** True (and recorded) once every recipient has had this round's DM. */
  finishReviewDms(schedule: Pick<Schedule, 'id' | 'reviewRound'>, users: readonly string[]): Promise<boolean> {
    return finishScheduleDms(this.db, schedule.id, schedule.reviewRound, users);
  }

  /** Schedules waiting for review whose DMs of the current round are not all sent. */
  reviewDmsMissing(limit = 20): Promise<number[]> {
    return schedulesWithDmsMissing(this.db, this.dmTargets(), limit);
  }

  /** Tells this process's listeners (Slack views, the scheduler) that a schedule changed. */
  changed(id: number): void {
    for (const listener of this.listeners) listener(id);
  }

  private async operate(
    id: number,
    userId: string,
    action: string,
    from: ScheduleStatus[],
    to: ScheduleStatus,
    set: Partial<ScheduleRow> = {},
  ): Promise<Outcome<{ schedule: Schedule }>> {
    const ref = scheduleRef(id);
    const before = await getSchedule(this.db, id);
    if (!before) return refuse('not_found', `There is no schedule ${ref}.`);
    const policy = userId === before.author ? null : await this.resolvedPolicy(before.target);
    const allowed = userId === before.author ? ({ ok: true } as const) : mayOperate(policy, before.author, userId, action, ref);
    if (!allowed.ok) return allowed;
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ schedule: Schedule }>> => {
      const schedule = await getScheduleForUpdate(trx, id);
      if (!schedule) return refuse('not_found', `There is no schedule ${ref}.`);
      if (!from.includes(schedule.status))
        return refuse(
          'wrong_status',
          `${ref} is ${STATUS_WORDS[schedule.status]}, so it cannot be ${action === 'pause' ? 'paused' : action === 'resume' ? 'resumed' : 'removed'}.`,
        );
      return { ok: true, schedule: await this.setStatus(trx, schedule, to, userId, {}, set) };
    });
    if (outcome.ok) this.changed(id);
    return outcome;
  }

  /** The one place a schedule's status changes: guarded on the status it was seen in, with its audit event. */
  async setStatus(
    trx: Queryable,
    schedule: Schedule,
    to: ScheduleStatus,
    actor: string | null,
    data: Record<string, unknown>,
    set: Partial<ScheduleRow> = {},
  ): Promise<Schedule> {
    const [row] = await trx<ScheduleRow>('schedules')
      .where({ id: schedule.id, status: schedule.status })
      .update({ ...set, status: to, status_changed_at: trx.fn.now() as unknown as Date }, '*');
    if (!row) throw new Error(`schedule ${schedule.id} changed under its row lock`);
    await appendEvent(trx, {
      taskId: null,
      subject: scheduleSubject(schedule.id),
      type: `schedule.${to}`,
      actor,
      data: { schedule: schedule.id, from: schedule.status, ...data },
    });
    return toSchedule(row);
  }

  /** A review past its deadline is over even before the sweep marks it (the database's clock decides). */
  private async reviewExpired(trx: Queryable, schedule: Schedule, policy: ReviewPolicy): Promise<boolean> {
    const expiresAt = schedule.reviewRequestedAt ? reviewExpiresAt(policy, schedule.reviewRequestedAt) : null;
    if (!expiresAt) return false;
    const row = (await trx.raw('SELECT now() AS now')) as { rows: Array<{ now: Date }> };
    return expiresAt.getTime() <= (row.rows[0]?.now ?? new Date()).getTime();
  }

  private unknownTarget(name: string) {
    const known = [...this.config.targets.keys()].map((target) => `\`${target}\``).join(', ');
    return refuse('unknown_target', `There is no target \`${name}\`. ${known === '' ? 'No targets are configured yet.' : `Targets: ${known}.`}`);
  }
}
