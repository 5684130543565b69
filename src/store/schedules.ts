/** Schedule rows (migrations/007_schedules.ts) and their mapper; all schedule SQL but the firing's lives here. */
import type { CatchUpMode, NotifyMode, OverlapMode, Schedule, ScheduleStatus } from '../domain/schedule.js';
import type { ReviewDecision, Verdict } from '../domain/review.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { Queryable } from './db.js';

export interface ScheduleRow {
  id: number | string;
  created_at: Date;
  status: ScheduleStatus;
  author: string;
  target: string;
  cron: string;
  tz: string;
  type: ScriptType;
  script: string;
  message: string | null;
  channel_id: string | null;
  origin_channel: string | null;
  notify: NotifyMode;
  overlap: OverlapMode;
  catch_up: CatchUpMode;
  source_key: string | null;
  review_channel: string | null;
  review_ts: string | null;
  review_post_claimed_at?: Date | null;
  approved_at: Date | null;
  fired_through: Date | null;
  status_changed_at: Date;
  content_version: string;
  review_round: number;
  review_requested_at: Date | null;
  status_reason: string | null;
  review_dms_round?: number | null;
  /** Migration 014: a schedule that starts a runbook, with its argument values. */
  runbook?: string | null;
  arguments?: Record<string, string> | null;
}

export interface FiringRow {
  schedule_id: number | string;
  fire_at: Date;
  decided_at: Date;
  outcome: FiringOutcome;
  task_id: number | string | null;
  catch_up: boolean;
  notified_at: Date | null;
}

/**
 * fired: a task was made; queued: waits for the previous run (overlap: queue); dropped: its
 * schedule stopped first; skipped-unapproved: its approval no longer held (the schedule went back
 * to review); skipped-unverified: Slack could not say whether it held (nothing ran, nothing changed).
 */
export type FiringOutcome = 'fired' | 'queued' | 'skipped-overlap' | 'skipped-missed' | 'skipped-unapproved' | 'skipped-unverified' | 'dropped';

export function toSchedule(row: ScheduleRow): Schedule {
  return {
    id: Number(row.id),
    createdAt: row.created_at,
    status: row.status,
    author: row.author,
    target: row.target,
    cron: row.cron,
    tz: row.tz,
    type: row.type,
    script: row.script,
    message: row.message,
    channelId: row.channel_id,
    originChannel: row.origin_channel,
    notify: row.notify,
    overlap: row.overlap,
    catchUp: row.catch_up,
    reviewChannel: row.review_channel,
    reviewTs: row.review_ts,
    approvedAt: row.approved_at,
    firedThrough: row.fired_through,
    contentVersion: row.content_version,
    reviewRound: Number(row.review_round),
    reviewRequestedAt: row.review_requested_at,
    statusReason: row.status_reason,
    runbook: row.runbook ?? null,
    arguments: row.arguments ?? null,
  };
}

export async function getSchedule(db: Queryable, id: number): Promise<Schedule | null> {
  if (!Number.isSafeInteger(id)) return null;
  const row = await db<ScheduleRow>('schedules').where({ id }).first();
  return row ? toSchedule(row) : null;
}

export async function getScheduleForUpdate(db: Queryable, id: number): Promise<Schedule | null> {
  const row = await db<ScheduleRow>('schedules').where({ id }).forUpdate().first();
  return row ? toSchedule(row) : null;
}

/** The decisions of the schedule's current review round (earlier rounds reviewed other content). */
export async function scheduleDecisions(db: Queryable, schedule: Pick<Schedule, 'id' | 'reviewRound'>): Promise<ReviewDecision[]> {
  const rows: Array<{ user_id: string; verdict: Verdict; reason: string | null; created_at: Date }> = await db('schedule_reviews')
    .where({ schedule_id: schedule.id, review_round: schedule.reviewRound })
    .orderBy('id');
  return rows.map((row) => ({ userId: row.user_id, verdict: row.verdict, reason: row.reason, at: row.created_at }));
}

/** The schedule's tasks not finished yet (its previous run, for `overlap`). */
export async function unfinishedRuns(db: Queryable, scheduleId: number): Promise<number> {
  const [row] = await db('schedule_firings as f')
    .join('tasks as t', 't.id', 'f.task_id')
    .where('f.schedule_id', scheduleId)
    .whereIn('t.status', ['created', 'pending-review', 'approved', 'ready', 'running'])
    .count<{ count: string }[]>('* as count');
  // A runbook schedule's firings are runs (migration 014).
  const [runs] = await db('schedule_firings as f')
    .join('runs as r', 'r.id', 'f.run_id')
    .where('f.schedule_id', scheduleId)
    .whereIn('r.status', ['created', 'pending-review', 'approved', 'ready', 'running'])
    .count<{ count: string }[]>('* as count');
  return Number(row?.count ?? 0) + Number(runs?.count ?? 0);
}

// ---------------------------------------------------------------- review DMs

/** Claims the DMs of this round that nobody has sent or is sending: the users this caller must DM. */
export async function claimScheduleDms(db: Queryable, scheduleId: number, round: number, users: readonly string[]): Promise<string[]> {
  const result = await db.raw(
    `INSERT INTO schedule_review_dms (schedule_id, review_round, user_id)
     SELECT ?, ?, unnest(?::text[])
     ON CONFLICT (schedule_id, review_round, user_id) DO UPDATE SET claimed_at = now()
       WHERE schedule_review_dms.sent_at IS NULL AND schedule_review_dms.claimed_at < now() - interval '2 minutes'
     RETURNING user_id`,
    [scheduleId, round, [...users]],
  );
  return (result.rows as Array<{ user_id: string }>).map((row) => row.user_id);
}

export async function recordScheduleDmSent(db: Queryable, scheduleId: number, round: number, userId: string, channel: string): Promise<void> {
  await db('schedule_review_dms').where({ schedule_id: scheduleId, review_round: round, user_id: userId }).update({ sent_at: db.fn.now(), channel_id: channel });
}

export async function releaseScheduleDm(db: Queryable, scheduleId: number, round: number, userId: string): Promise<void> {
  await db('schedule_review_dms').where({ schedule_id: scheduleId, review_round: round, user_id: userId }).whereNull('sent_at').delete();
}

/** Marks the round's DMs done once every recipient has had theirs; true when they all have. */
export async function finishScheduleDms(db: Queryable, scheduleId: number, round: number, users: readonly string[]): Promise<boolean> {
  const sent: string[] = await db('schedule_review_dms').where({ schedule_id: scheduleId, review_round: round }).whereNotNull('sent_at').whereIn('user_id', [...users]).pluck('user_id');
  if (!users.every((userId) => sent.includes(userId))) return false;
  await db('schedules').where({ id: scheduleId, review_round: round }).update({ review_dms_round: round });
  return true;
}

/** Schedules waiting for review, on these targets, whose request is posted and whose DMs of this round are not all sent. */
export async function schedulesWithDmsMissing(db: Queryable, targets: readonly string[], limit: number): Promise<number[]> {
  if (targets.length === 0) return [];
  const ids: Array<string | number> = await db('schedules')
    .where({ status: 'pending-review' })
    .whereIn('target', [...targets])
    .whereNotNull('review_ts')
    .where((q) => q.whereNull('review_dms_round').orWhereRaw('review_dms_round <> review_round'))
    .orderBy('id')
    .limit(limit)
    .pluck('id');
  return ids.map(Number);
}
