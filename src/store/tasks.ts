/**
 * Task rows. Status changes go only through `transitionTask`: the one place that checks the
 * lifecycle, guards the change in SQL and writes the audit event in the same transaction.
 */
import { assertTransition, transitionEventType, type TaskStatus } from '../domain/lifecycle.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { Task, TaskSource } from '../domain/task.js';
import { inTransaction, type Queryable } from './db.js';
import { appendEvent } from './events.js';
import { toTask, type TaskRow } from './rows.js';

export interface NewTask {
  author: string;
  target: string;
  type: ScriptType;
  script: string;
  message: string | null;
  source: TaskSource;
  sourceKey: string | null;
  channelId: string | null;
  reviewChannel: string | null;
}

/** Inserts a task in `created`; when `sourceKey` was seen before, returns that task instead. */
export async function insertTask(db: Queryable, task: NewTask): Promise<{ task: Task; created: boolean }> {
  const inserted = await db<TaskRow>('tasks')
    .insert({
      status: 'created',
      author: task.author,
      target: task.target,
      type: task.type,
      script: task.script,
      message: task.message,
      source: task.source,
      source_key: task.sourceKey,
      channel_id: task.channelId,
      review_channel: task.reviewChannel,
    })
    .onConflict('source_key')
    .ignore()
    .returning('*');
  const row = inserted[0];
  if (row) return { task: toTask(row), created: true };
  const existing = await db<TaskRow>('tasks').where({ source_key: task.sourceKey }).first();
  if (!existing) throw new Error(`task with source_key ${task.sourceKey} vanished after a conflict`);
  return { task: toTask(existing), created: false };
}

export async function getTask(db: Queryable, id: number): Promise<Task | null> {
  const row = await db<TaskRow>('tasks').where({ id }).first();
  return row ? toTask(row) : null;
}

/** Locks the task row for the rest of the caller's transaction (serialises reviews of one task). */
export async function getTaskForUpdate(db: Queryable, id: number): Promise<Task | null> {
  const row = await db<TaskRow>('tasks').where({ id }).forUpdate().first();
  return row ? toTask(row) : null;
}

type TaskColumns = Omit<Partial<TaskRow>, 'id' | 'status' | 'status_changed_at' | 'created_at'>;

export interface Transition {
  taskId: number;
  from: TaskStatus | readonly TaskStatus[];
  to: TaskStatus;
  actor: string | null;
  /** Extra audit data (a reason, an exit code). */
  data?: Record<string, unknown>;
  /** Columns written with the status (the result, timestamps). */
  set?: TaskColumns;
}

/**
 * Moves a task from one of `from` to `to`, or does nothing and returns null when the task is
 * not in `from` any more (someone else won the race: a second click, another replica).
 */
export async function transitionTask(db: Queryable, change: Transition): Promise<Task | null> {
  const allowedFrom = typeof change.from === 'string' ? [change.from] : [...change.from];
  for (const from of allowedFrom) assertTransition(from, change.to);
  return inTransaction(db, async (trx) => {
    const current = await trx<TaskRow>('tasks').where({ id: change.taskId }).forUpdate().first('status');
    if (!current || !allowedFrom.includes(current.status)) return null;
    const [row] = await trx<TaskRow>('tasks')
      .where({ id: change.taskId, status: current.status })
      .update({ ...change.set, status: change.to, status_changed_at: trx.fn.now() as unknown as Date }, '*');
    if (!row) return null;
    await appendEvent(trx, {
      taskId: change.taskId,
      type: transitionEventType(change.to),
      actor: change.actor,
      data: { from: current.status, ...change.data },
    });
    return toTask(row);
  });
}

/** Slack message coordinates are a view of the task, so they change without a transition. */
export async function setCardTs(db: Queryable, taskId: number, ts: string): Promise<void> {
  await db('tasks').where({ id: taskId }).update({ card_ts: ts });
}

export async function setReviewTs(db: Queryable, taskId: number, ts: string): Promise<void> {
  await db('tasks').where({ id: taskId }).update({ review_ts: ts });
}
