/** Schedule rows (migrations/007_schedules.ts) and their mapper; all schedule SQL but the firing's lives here. */
import type { Knex } from 'knex';
import type { CatchUpMode, NotifyMode, OverlapMode, Schedule, ScheduleStatus } from '../domain/schedule.js';
import type { ReviewDecision, Verdict } from '../domain/review.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { Queryable } from './db.js';
import { allDmsSent, type DmLedger } from './slackMessages.js';

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
  review_script_key?: string | null;
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

/** Where a schedule's review DMs of one round are kept (an edit starts a new round, DMed again). */
export function scheduleReviewLedger(scheduleId: number, round: number): DmLedger {
  return { table: 'schedule_review_dms', key: { schedule_id: scheduleId, review_round: round } };
}

/** Marks the round's DMs done once every recipient has had theirs; true when they all have. */
export async function finishScheduleDms(db: Queryable, scheduleId: number, round: number, users: readonly string[]): Promise<boolean> {
  if (!(await allDmsSent(db, scheduleReviewLedger(scheduleId, round), users))) return false;
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

// ---------------------------------------------------------------- lists (API, App Home)

export interface ScheduleFilter {
  /** These statuses; absent: every status but `removed`. */
  status?: readonly ScheduleStatus[];
  target?: string;
  /** Only these targets (an empty list matches nothing). */
  targets?: readonly string[];
  author?: string;
  /** Not this author. */
  notAuthor?: string;
  /** Only ids below this (the cursor). */
  beforeId?: number;
  limit: number;
}

// biome-ignore lint/suspicious/noExplicitAny: one filter for knex query builders over any table and result
function applyScheduleFilter(query: Knex.QueryBuilder<any, any>, filter: Omit<ScheduleFilter, 'limit'>): void {
  if (filter.status && filter.status.length > 0) query.whereIn('status', [...filter.status]);
  else query.whereNot({ status: 'removed' });
  if (filter.target) query.where({ target: filter.target });
  if (filter.targets) query.whereIn('target', [...filter.targets]);
  if (filter.author) query.where({ author: filter.author });
  if (filter.notAuthor) query.whereNot({ author: filter.notAuthor });
  if (filter.beforeId !== undefined) query.where('id', '<', filter.beforeId);
}

/** What deciding who sees a schedule needs of its row, and no more. */
export interface ScheduleSubjectRow {
  id: number;
  author: string;
  target: string;
  channelId: string | null;
  originChannel: string | null;
}

/** Newest first: the subjects of the schedules matching `filter` (a narrow scan for a visibility filter). */
export async function scheduleSubjects(db: Queryable, filter: ScheduleFilter): Promise<ScheduleSubjectRow[]> {
  const query = db<ScheduleRow>('schedules').orderBy('id', 'desc').limit(filter.limit).select('id', 'author', 'target', 'channel_id', 'origin_channel');
  applyScheduleFilter(query, filter);
  const rows = (await query) as Array<Pick<ScheduleRow, 'id' | 'author' | 'target' | 'channel_id' | 'origin_channel'>>;
  return rows.map((row) => ({ id: Number(row.id), author: row.author, target: row.target, channelId: row.channel_id, originChannel: row.origin_channel }));
}

/** Whole schedules by id, newest first. */
export async function schedulesByIds(db: Queryable, ids: readonly number[]): Promise<Schedule[]> {
  if (ids.length === 0) return [];
  const rows = await db<ScheduleRow>('schedules')
    .whereIn('id', [...ids])
    .orderBy('id', 'desc');
  return rows.map(toSchedule);
}

/** A schedule as App Home shows it: a bounded head of its script instead of all of it. */
export interface ScheduleSummary
  extends Pick<
    Schedule,
    | 'id'
    | 'status'
    | 'author'
    | 'target'
    | 'cron'
    | 'tz'
    | 'type'
    | 'message'
    | 'contentVersion'
    | 'reviewRound'
    | 'channelId'
    | 'originChannel'
    | 'statusReason'
  > {
  /** The script's first SCHEDULE_SUMMARY_CHARS characters. */
  script: string;
  /** True when the script is longer than `script` shows. */
  scriptCut: boolean;
}

/** Enough for App Home's review section (it shows up to 1200 characters). */
export const SCHEDULE_SUMMARY_CHARS = 1200;

type SummaryRow = Pick<
  ScheduleRow,
  | 'id'
  | 'status'
  | 'author'
  | 'target'
  | 'cron'
  | 'tz'
  | 'type'
  | 'message'
  | 'content_version'
  | 'review_round'
  | 'channel_id'
  | 'origin_channel'
  | 'status_reason'
> & {
  script_head: string;
};

/** Summaries matching `filter`, newest first (or oldest first), with whether more match. */
export async function scheduleSummaries(
  db: Queryable,
  filter: ScheduleFilter,
  order: 'newest' | 'oldest' = 'newest',
): Promise<{ schedules: ScheduleSummary[]; more: boolean }> {
  const query = db<ScheduleRow>('schedules')
    .select(
      'id',
      'status',
      'author',
      'target',
      'cron',
      'tz',
      'type',
      'message',
      'content_version',
      'review_round',
      'channel_id',
      'origin_channel',
      'status_reason',
      // One character more than is kept tells whether the script goes on.
      db.raw('left(script, ?) AS script_head', [SCHEDULE_SUMMARY_CHARS + 1]),
    )
    .orderBy('id', order === 'newest' ? 'desc' : 'asc')
    .limit(filter.limit + 1);
  applyScheduleFilter(query, filter);
  const rows = (await query) as unknown as SummaryRow[];
  return {
    schedules: rows.slice(0, filter.limit).map((row) => {
      const chars = [...row.script_head];
      const scriptCut = chars.length > SCHEDULE_SUMMARY_CHARS;
      return {
        id: Number(row.id),
        status: row.status,
        author: row.author,
        target: row.target,
        cron: row.cron,
        tz: row.tz,
        type: row.type,
        message: row.message,
        contentVersion: row.content_version,
        reviewRound: Number(row.review_round),
        channelId: row.channel_id,
        originChannel: row.origin_channel,
        statusReason: row.status_reason,
        script: scriptCut ? chars.slice(0, SCHEDULE_SUMMARY_CHARS).join('') : row.script_head,
        scriptCut,
      };
    }),
    more: rows.length > filter.limit,
  };
}

/** How many schedules match `filter`, counting at most `cap`. */
export async function countSchedules(db: Queryable, filter: Omit<ScheduleFilter, 'limit'>, cap: number): Promise<number> {
  const inner = db('schedules').select('id').limit(cap);
  applyScheduleFilter(inner, filter);
  const row = (await db.from(inner.as('matching')).count<{ count: string | number }[]>('* as count').first()) as { count: string | number } | undefined;
  return Number(row?.count ?? 0);
}

// ---------------------------------------------------------------- the whole script in the review thread

/** Which request and version the thread's whole script belongs to. */
export const reviewScriptKey = (reviewTs: string, contentVersion: string): string => `${reviewTs}:${contentVersion}`;

/** Whether this request's thread already has this version's whole script. */
export async function reviewScriptPosted(db: Queryable, scheduleId: number, key: string): Promise<boolean> {
  const row = await db('schedules').where({ id: scheduleId }).first('review_script_key');
  return row?.review_script_key === key;
}

export async function recordReviewScriptPosted(db: Queryable, scheduleId: number, key: string): Promise<void> {
  await db('schedules').where({ id: scheduleId }).update({ review_script_key: key });
}
