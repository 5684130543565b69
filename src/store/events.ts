/** The append-only audit trail: one row per decision or state change (a trigger forbids edits). */
import { jsonParameter, type Queryable } from './db.js';

export interface AuditEvent {
  taskId: number | null;
  type: string;
  actor: string | null;
  data?: Record<string, unknown>;
  /**
   * What the event is about when it is not (only) a task (migration 008): `recipe:<name>`, and
   * later `run:<id>`, `schedule:<id>`, `runbook:<reference>`. Indexed with the id.
   */
  subject?: string | null;
}

export async function appendEvent(db: Queryable, event: AuditEvent): Promise<void> {
  await db('events').insert({
    task_id: event.taskId,
    subject: event.subject ?? null,
    type: event.type,
    actor: event.actor,
    data: jsonParameter(event.data ?? {}),
  });
}

export interface EventRow {
  id: number;
  created_at: Date;
  task_id: number | null;
  subject: string | null;
  type: string;
  actor: string | null;
  data: Record<string, unknown>;
}

export async function eventsForTask(db: Queryable, taskId: number): Promise<EventRow[]> {
  return db<EventRow>('events').where({ task_id: taskId }).orderBy('id');
}

/** A subject's events, oldest first (e.g. `recipe:restart-web`). */
export async function eventsForSubject(db: Queryable, subject: string, limit = 200): Promise<EventRow[]> {
  return db<EventRow>('events').where({ subject }).orderBy('id').limit(limit);
}
