/** The append-only audit trail: one row per decision or state change (a trigger forbids edits). */
import type { Queryable } from './db.js';

export interface AuditEvent {
  taskId: number | null;
  type: string;
  actor: string | null;
  data?: Record<string, unknown>;
}

export async function appendEvent(db: Queryable, event: AuditEvent): Promise<void> {
  await db('events').insert({
    task_id: event.taskId,
    type: event.type,
    actor: event.actor,
    data: JSON.stringify(event.data ?? {}),
  });
}

export interface EventRow {
  id: number;
  created_at: Date;
  task_id: number | null;
  type: string;
  actor: string | null;
  data: Record<string, unknown>;
}

export async function eventsForTask(db: Queryable, taskId: number): Promise<EventRow[]> {
  return db<EventRow>('events').where({ task_id: taskId }).orderBy('id');
}
