/** The read model behind a card or review request: a task, its decisions and its latest run. */
import type { Task, TaskView } from '../domain/task.js';
import { prepared, type Queryable } from './db.js';
import {
  EXECUTION_DATES,
  jsonRow,
  STEP_DATES,
  toDecision,
  toExecution,
  toStep,
  toTask,
  type ExecutionRow,
  type ReviewRow,
  type StepRow,
  type TaskRow,
} from './rows.js';

/** What a message of the task links to, read with its view. */
export interface TaskLinks {
  /** null: not fetched yet; '': Slack refused to give one. */
  cardPermalink: string | null;
  reviewPermalink: string | null;
  reviewDmsSent: boolean;
}

/** The view_version each message was last drawn at (null: never, or not known without a read). */
export interface ShownVersions {
  card: number | null;
  review: number | null;
}

/** A task's view and its messages' links: what a redraw draws. */
export interface TaskViewRead {
  view: TaskView;
  links: TaskLinks;
  shown: Readonly<ShownVersions>;
}

/** What a view not read from the row says of its messages' versions: nothing. */
export const SHOWN_UNKNOWN: Readonly<ShownVersions> = Object.freeze({ card: null, review: null });

export async function loadTaskView(db: Queryable, taskId: number): Promise<TaskView | null> {
  return (await readTaskView(db, taskId))?.view ?? null;
}

/**
 * What readTaskView answers for a task its insert has just returned: no decisions, no run, no
 * links yet. A new task's first redraw draws this instead of reading it back (a statement per
 * `/task run` and per task born with a card); test/e2e/birth-view.test.ts holds the two equal.
 */
export function bornTaskView(task: Task): TaskViewRead {
  return {
    view: { task, decisions: [], execution: null },
    links: { cardPermalink: null, reviewPermalink: null, reviewDmsSent: false },
    shown: SHOWN_UNKNOWN,
  };
}

/**
 * The task, its decisions, its latest run with its steps, and its messages' links, in one
 * statement: every redraw of a card reads this, and four round trips (each a query for Postgres
 * to plan and a write for the process) became one.
 */
export async function readTaskView(db: Queryable, taskId: number): Promise<TaskViewRead | null> {
  const result = await prepared(
    db.raw<{
      rows: Array<
        TaskRow & {
          card_permalink: string | null;
          review_permalink: string | null;
          review_dms_sent: boolean;
          view_decisions: ReviewRow[];
          view_execution: Record<string, unknown> | null;
          view_steps: StepRow[] | null;
        }
      >;
    }>(
      `SELECT t.*,
              coalesce((SELECT json_agg(r ORDER BY r.id) FROM reviews r WHERE r.task_id = t.id), '[]') AS view_decisions,
              row_to_json(e) AS view_execution,
              (SELECT json_agg(s ORDER BY s.id) FROM execution_steps s WHERE s.execution_id = e.id) AS view_steps
         FROM tasks t
         LEFT JOIN LATERAL (SELECT * FROM executions x WHERE x.task_id = t.id ORDER BY x.id DESC LIMIT 1) e ON true
        WHERE t.id = ?`,
      [taskId],
    ),
  );
  const row = result.rows[0];
  if (!row) return null;
  const task: Task = toTask(row);
  const execution = row.view_execution
    ? {
        ...toExecution(jsonRow<ExecutionRow>(row.view_execution, EXECUTION_DATES)),
        steps: (row.view_steps ?? []).map((step) => toStep(jsonRow<StepRow>(step as unknown as Record<string, unknown>, STEP_DATES))),
      }
    : null;
  const decisions = row.view_decisions.map((decision) => toDecision(jsonRow<ReviewRow>(decision as unknown as Record<string, unknown>, ['created_at'])));
  return {
    view: { task, decisions, execution },
    links: { cardPermalink: row.card_permalink ?? null, reviewPermalink: row.review_permalink ?? null, reviewDmsSent: row.review_dms_sent === true },
    shown: { card: versionOf(row.card_version), review: versionOf(row.review_version) },
  };
}

/** A bigint column as pg answers it (a string), or null. */
const versionOf = (value: number | string | null): number | null => (value === null ? null : Number(value));
