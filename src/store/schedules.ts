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

/** fired: a task was made; queued: waits for the previous run (overlap: queue); dropped: its schedule stopped first. */
export type FiringOutcome = 'fired' | 'queued' | 'skipped-overlap' | 'skipped-missed' | 'dropped';

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

export async function scheduleDecisions(db: Queryable, scheduleId: number): Promise<ReviewDecision[]> {
  const rows: Array<{ user_id: string; verdict: Verdict; reason: string | null; created_at: Date }> = await db('schedule_reviews')
    .where({ schedule_id: scheduleId })
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
  return Number(row?.count ?? 0);
}
