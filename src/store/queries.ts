/**
 * Read-side queries for the API and the Slack views: tasks and audit events with filters and
 * keyset pagination (newest first; the cursor is the last id seen, so pages stay stable while
 * rows are added). Who may see what is decided above (src/service/taskQueries.ts); these
 * functions read what it needs to decide (an access subject per row) and then only the rows
 * and columns a page shows: a list never carries 64 KiB scripts it does not display.
 */
import type { Knex } from 'knex';
import type { TaskStatus } from '../domain/lifecycle.js';
import type { Task } from '../domain/task.js';
import type { Queryable } from './db.js';
import type { EventRow } from './events.js';
import { toTask, type TaskRow } from './rows.js';

export interface TaskFilter {
  status?: readonly TaskStatus[];
  target?: string;
  /** Only these targets (an empty list matches nothing). */
  targets?: readonly string[];
  author?: string;
  /** Not this author. */
  notAuthor?: string;
  since?: Date;
  /** Only tasks with ids below this (the cursor). */
  beforeId?: number;
  limit: number;
}

// biome-ignore lint/suspicious/noExplicitAny: one filter for knex query builders over any table and result
function applyTaskFilter(query: Knex.QueryBuilder<any, any>, filter: Omit<TaskFilter, 'limit'>): void {
  if (filter.status && filter.status.length > 0) query.whereIn('status', [...filter.status]);
  if (filter.target) query.where({ target: filter.target });
  if (filter.targets) query.whereIn('target', [...filter.targets]);
  if (filter.author) query.where({ author: filter.author });
  if (filter.notAuthor) query.whereNot({ author: filter.notAuthor });
  if (filter.since) query.where('created_at', '>=', filter.since);
  if (filter.beforeId !== undefined) query.where('id', '<', filter.beforeId);
}

const tasksTable = (db: Queryable) => db<TaskRow>('tasks');

/** What deciding who sees a task needs of its row, and no more. */
export interface TaskSubjectRow {
  id: number;
  author: string;
  target: string;
  channelId: string | null;
}

/** Newest first: the subjects of the tasks matching `filter` (a narrow scan for a visibility filter). */
export async function taskSubjects(db: Queryable, filter: TaskFilter): Promise<TaskSubjectRow[]> {
  const query = tasksTable(db).orderBy('id', 'desc').limit(filter.limit).select('id', 'author', 'target', 'channel_id');
  applyTaskFilter(query, filter);
  const rows = (await query) as Array<Pick<TaskRow, 'id' | 'author' | 'target' | 'channel_id'>>;
  return rows.map((row) => ({ id: row.id, author: row.author, target: row.target, channelId: row.channel_id }));
}

/** Whole tasks by id, newest first. */
export async function tasksByIds(db: Queryable, ids: readonly number[]): Promise<Task[]> {
  if (ids.length === 0) return [];
  const rows = await tasksTable(db)
    .whereIn('id', [...ids])
    .orderBy('id', 'desc');
  return rows.map(toTask);
}

/** A task as lists and App Home show it: a bounded head of its script instead of all of it. */
export interface TaskSummary
  extends Pick<
    Task,
    | 'id'
    | 'status'
    | 'target'
    | 'author'
    | 'message'
    | 'channelId'
    | 'createdAt'
    | 'startedAt'
    | 'finishedAt'
    | 'contentVersion'
    | 'arguments'
    | 'type'
    | 'recipe'
  > {
  /** The script's first SUMMARY_SCRIPT_CHARS characters. */
  script: string;
  /** True when the script is longer than `script` shows. */
  scriptCut: boolean;
}

/** Enough for App Home's review section (it shows up to 1200 characters) and a list's first line. */
export const SUMMARY_SCRIPT_CHARS = 1200;

type SummaryRow = Pick<
  TaskRow,
  | 'id'
  | 'status'
  | 'target'
  | 'author'
  | 'message'
  | 'channel_id'
  | 'created_at'
  | 'started_at'
  | 'finished_at'
  | 'content_version'
  | 'arguments'
  | 'type'
  | 'recipe_name'
  | 'recipe_hash'
> & { script_head: string };

function summaryQuery(db: Queryable) {
  return tasksTable(db).select(
    'id',
    'status',
    'target',
    'author',
    'message',
    'channel_id',
    'created_at',
    'started_at',
    'finished_at',
    // Home's Approve button names the version, beside everything it covers (type, recipe); a recipe's arguments keep it off Home.
    'content_version',
    'arguments',
    'type',
    'recipe_name',
    'recipe_hash',
    // One character more than is kept tells whether the script goes on.
    db.raw('left(script, ?) AS script_head', [SUMMARY_SCRIPT_CHARS + 1]),
  );
}

function toSummary(row: SummaryRow): TaskSummary {
  const chars = [...row.script_head];
  const scriptCut = chars.length > SUMMARY_SCRIPT_CHARS;
  return {
    id: row.id,
    status: row.status,
    target: row.target,
    author: row.author,
    message: row.message,
    channelId: row.channel_id,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    contentVersion: row.content_version,
    arguments: row.arguments ?? null,
    type: row.type,
    recipe: row.recipe_name !== null && row.recipe_hash !== null ? { name: row.recipe_name, hash: row.recipe_hash } : null,
    script: scriptCut ? chars.slice(0, SUMMARY_SCRIPT_CHARS).join('') : row.script_head,
    scriptCut,
  };
}

/** Summaries matching `filter`, newest first (or oldest first), with whether more match. */
export async function taskSummaries(
  db: Queryable,
  filter: TaskFilter,
  order: 'newest' | 'oldest' = 'newest',
): Promise<{ tasks: TaskSummary[]; more: boolean }> {
  const query = summaryQuery(db)
    .orderBy('id', order === 'newest' ? 'desc' : 'asc')
    .limit(filter.limit + 1);
  applyTaskFilter(query, filter);
  const rows = (await query) as unknown as SummaryRow[];
  return { tasks: rows.slice(0, filter.limit).map(toSummary), more: rows.length > filter.limit };
}

/** Summaries by id, newest first. */
export async function summariesByIds(db: Queryable, ids: readonly number[]): Promise<TaskSummary[]> {
  if (ids.length === 0) return [];
  const rows = (await summaryQuery(db)
    .whereIn('id', [...ids])
    .orderBy('id', 'desc')) as unknown as SummaryRow[];
  return rows.map(toSummary);
}

/** How many tasks match `filter`, counting at most `cap` (a header needs "12", not a scan of millions). */
export async function countTasks(db: Queryable, filter: Omit<TaskFilter, 'limit'>, cap: number): Promise<number> {
  const inner = tasksTable(db).select('id').limit(cap);
  applyTaskFilter(inner, filter);
  const row = (await db.from(inner.as('matching')).count<{ count: string | number }[]>('* as count').first()) as { count: string | number } | undefined;
  return Number(row?.count ?? 0);
}

export interface EventFilter {
  taskId?: number;
  actor?: string;
  type?: string;
  since?: Date;
  beforeId?: number;
  limit: number;
}

/** An event with what deciding who sees it needs: its task's author, target and card channel (null: about no task). */
export interface EventWithSubject {
  event: EventRow;
  task: { author: string; target: string; channelId: string | null } | null;
  /** The schedule its subject names (`schedule:<id>`), when it names one that exists. */
  schedule: { author: string; target: string; channelId: string | null; originChannel: string | null } | null;
}

/** Events matching `filter`, newest first, each with its task's access subject. */
export async function eventsWithSubjects(db: Queryable, filter: EventFilter): Promise<EventWithSubject[]> {
  const query = db('events as e')
    .leftJoin('tasks as t', 't.id', 'e.task_id')
    // `schedule:<id>` subjects: the schedule's id, looked up by primary key.
    .leftJoin('schedules as s', 's.id', db.raw("substring(e.subject from '^schedule:([0-9]{1,18})$')::bigint"))
    // Every column of the event (what the API shows of it is decided in serialize.ts), and its task's (or schedule's) subject.
    .select(
      'e.*',
      't.author as task_author',
      't.target as task_target',
      't.channel_id as task_channel_id',
      's.author as schedule_author',
      's.target as schedule_target',
      's.channel_id as schedule_channel_id',
      's.origin_channel as schedule_origin_channel',
    )
    .orderBy('e.id', 'desc')
    .limit(filter.limit);
  if (filter.taskId !== undefined) query.where('e.task_id', filter.taskId);
  if (filter.actor) query.where('e.actor', filter.actor);
  if (filter.type) query.where('e.type', filter.type);
  if (filter.since) query.where('e.created_at', '>=', filter.since);
  if (filter.beforeId !== undefined) query.where('e.id', '<', filter.beforeId);
  type Joined = EventRow & { task_author: string | null; task_target: string | null; task_channel_id: string | null } & {
    schedule_author: string | null;
    schedule_target: string | null;
    schedule_channel_id: string | null;
    schedule_origin_channel: string | null;
  };
  const rows = (await query) as Joined[];
  return rows.map(
    ({ task_author, task_target, task_channel_id, schedule_author, schedule_target, schedule_channel_id, schedule_origin_channel, ...event }) => ({
      event,
      task:
        event.task_id !== null && task_author !== null && task_target !== null
          ? { author: task_author, target: task_target, channelId: task_channel_id }
          : null,
      schedule:
        schedule_author !== null && schedule_target !== null
          ? { author: schedule_author, target: schedule_target, channelId: schedule_channel_id, originChannel: schedule_origin_channel }
          : null,
    }),
  );
}
