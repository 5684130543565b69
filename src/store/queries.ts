/**
 * Read-side queries for the API: tasks and audit events with filters and keyset pagination
 * (newest first; the cursor is the last id seen, so pages stay stable while rows are added).
 */
import type { TaskStatus } from '../domain/lifecycle.js';
import type { Task } from '../domain/task.js';
import type { Queryable } from './db.js';
import type { EventRow } from './events.js';
import { toTask, type TaskRow } from './rows.js';

export interface TaskFilter {
  status?: readonly TaskStatus[];
  target?: string;
  author?: string;
  since?: Date;
  /** Only tasks with ids below this (the cursor). */
  beforeId?: number;
  limit: number;
}

export async function listTasks(db: Queryable, filter: TaskFilter): Promise<{ tasks: Task[]; more: boolean }> {
  const query = db<TaskRow>('tasks').orderBy('id', 'desc').limit(filter.limit + 1);
  if (filter.status && filter.status.length > 0) query.whereIn('status', filter.status);
  if (filter.target) query.where({ target: filter.target });
  if (filter.author) query.where({ author: filter.author });
  if (filter.since) query.where('created_at', '>=', filter.since);
  if (filter.beforeId !== undefined) query.where('id', '<', filter.beforeId);
  const rows = await query;
  return { tasks: rows.slice(0, filter.limit).map(toTask), more: rows.length > filter.limit };
}

export interface EventFilter {
  taskId?: number;
  actor?: string;
  type?: string;
  since?: Date;
  beforeId?: number;
  limit: number;
}

export async function listEvents(db: Queryable, filter: EventFilter): Promise<{ events: EventRow[]; more: boolean }> {
  const query = db<EventRow>('events').orderBy('id', 'desc').limit(filter.limit + 1);
  if (filter.taskId !== undefined) query.where({ task_id: filter.taskId });
  if (filter.actor) query.where({ actor: filter.actor });
  if (filter.type) query.where({ type: filter.type });
  if (filter.since) query.where('created_at', '>=', filter.since);
  if (filter.beforeId !== undefined) query.where('id', '<', filter.beforeId);
  const rows = await query;
  return { events: rows.slice(0, filter.limit), more: rows.length > filter.limit };
}
