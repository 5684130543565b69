/** Row shapes as Postgres returns them, kept apart from domain types, and their mappers. */
import type { TaskStatus } from '../domain/lifecycle.js';
import type { Plan } from '../domain/plan.js';
import type { ReviewDecision, Verdict } from '../domain/review.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { Execution, ExecutionPhase, ExecutionStep, StepPhase, Task, TaskSource } from '../domain/task.js';

export interface TaskRow {
  id: number;
  created_at: Date;
  status_changed_at: Date;
  status: TaskStatus;
  author: string;
  target: string;
  type: ScriptType;
  script: string;
  message: string | null;
  source: TaskSource;
  source_key: string | null;
  channel_id: string | null;
  card_ts: string | null;
  review_channel: string | null;
  review_ts: string | null;
  view_version: number;
  card_version: number | null;
  review_version: number | null;
  card_post_claimed_at: Date | null;
  review_post_claimed_at: Date | null;
  review_script_posted: boolean;
  exit_code: number | null;
  signal: string | null;
  duration_ms: number | null;
  failure_message: string | null;
  last_line: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  run_after: Date | null;
  arguments?: Array<{ name: string; kind: 'fixed' | 'options' | 'input'; value: string }> | null;
  /** Migration 008: what approvals name; the recipe the task was started from. */
  content_version: string;
  recipe_name: string | null;
  recipe_hash: string | null;
  /** Migration 020: who imported the recipe version (RecipeRef.writtenBy). */
  recipe_writer?: string | null;
  /** Migration 013: a run's script step; its $COUNTERSIGN_OUTPUT values. */
  run_id?: number | null;
  run_step_id?: number | null;
  outputs?: { outputs?: Record<string, string>; problems?: string[] } | null;
}

export interface ReviewRow {
  id: number;
  task_id: number;
  user_id: string;
  verdict: Verdict;
  reason: string | null;
  /** The task's content version this decision was made on (migration 008). */
  content_version: string;
  created_at: Date;
}

export interface ExecutionRow {
  id: number;
  task_id: number;
  created_at: Date;
  phase: ExecutionPhase;
  desired_phase: 'stopped' | null;
  stop_requested_by: string | null;
  status_version: number;
  plan: Plan;
  runner_id: string;
  lease_until: Date;
  started_at: Date;
  finished_at: Date | null;
  exit_code: number | null;
  failure_message: string | null;
  output_bytes: number;
}

export interface StepRow {
  id: number;
  execution_id: number;
  group_index: number;
  host: string;
  port: number;
  user: string;
  run_token: string;
  phase: StepPhase;
  exit_code: number | null;
  signal: string | null;
  failure_message: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

/**
 * The columns toTask reads, and all a statement that answers a task needs to return: the tasks
 * table has more (claims, versions, permalinks), and each column returned is described and parsed
 * again on every execution of a prepared statement (pg sends Describe each time).
 */
export const TASK_FIELDS = [
  'id',
  'created_at',
  'status_changed_at',
  'status',
  'author',
  'target',
  'type',
  'script',
  'message',
  'source',
  'channel_id',
  'card_ts',
  'review_channel',
  'review_ts',
  'view_version',
  'review_script_posted',
  'exit_code',
  'signal',
  'duration_ms',
  'failure_message',
  'last_line',
  'started_at',
  'finished_at',
  'run_after',
  'arguments',
  'content_version',
  'recipe_name',
  'recipe_hash',
  'recipe_writer',
  'run_id',
  'run_step_id',
  'outputs',
] as const satisfies ReadonlyArray<keyof TaskRow>;

/** A task's row as far as toTask reads it (TASK_FIELDS). */
export type TaskFieldsRow = Pick<TaskRow, (typeof TASK_FIELDS)[number]>;

export function toTask(row: TaskFieldsRow): Task {
  return {
    id: row.id,
    createdAt: row.created_at,
    statusChangedAt: row.status_changed_at,
    status: row.status,
    author: row.author,
    target: row.target,
    type: row.type,
    script: row.script,
    message: row.message,
    source: row.source,
    channelId: row.channel_id,
    cardTs: row.card_ts,
    reviewChannel: row.review_channel,
    reviewTs: row.review_ts,
    viewVersion: row.view_version,
    reviewScriptPosted: row.review_script_posted,
    result: {
      exitCode: row.exit_code,
      signal: row.signal,
      durationMs: row.duration_ms,
      failureMessage: row.failure_message,
      lastLine: row.last_line,
    },
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    runAfter: row.run_after,
    arguments: row.arguments ?? null,
    contentVersion: row.content_version,
    recipe:
      row.recipe_name !== null && row.recipe_hash !== null
        ? { name: row.recipe_name, hash: row.recipe_hash, ...(row.recipe_writer ? { writtenBy: row.recipe_writer } : {}) }
        : null,
    runStep: row.run_id && row.run_step_id ? { runId: row.run_id, stepId: row.run_step_id } : null,
    outputs: row.outputs?.outputs ?? null,
  };
}

export function toDecision(row: ReviewRow): ReviewDecision {
  return { userId: row.user_id, verdict: row.verdict, reason: row.reason, at: row.created_at, contentVersion: row.content_version };
}

export function toExecution(row: ExecutionRow): Execution {
  return {
    id: row.id,
    taskId: row.task_id,
    phase: row.phase,
    desiredPhase: row.desired_phase,
    stopRequestedBy: row.stop_requested_by,
    statusVersion: row.status_version,
    plan: row.plan,
    runnerId: row.runner_id,
    leaseUntil: row.lease_until,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    exitCode: row.exit_code,
    failureMessage: row.failure_message,
    outputBytes: row.output_bytes,
  };
}

export function toStep(row: StepRow): ExecutionStep {
  return {
    id: row.id,
    groupIndex: row.group_index,
    host: row.host,
    port: row.port,
    user: row.user,
    runToken: row.run_token,
    phase: row.phase,
    exitCode: row.exit_code,
    signal: row.signal,
    failureMessage: row.failure_message,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

/** A row that came back as JSON (row_to_json, json_agg): its timestamps as Dates again. */
export function jsonRow<T>(json: Record<string, unknown>, dates: readonly string[]): T {
  const row: Record<string, unknown> = { ...json };
  for (const column of dates) if (typeof row[column] === 'string') row[column] = new Date(row[column] as string);
  return row as T;
}

export const EXECUTION_DATES = ['created_at', 'lease_until', 'started_at', 'finished_at'] as const;
export const STEP_DATES = ['started_at', 'finished_at'] as const;
