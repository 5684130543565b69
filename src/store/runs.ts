/**
 * Runs and their steps (migration 013). Status changes go only through `transitionRun` and
 * step changes only through `transitionRunStep`: each checks the lifecycle (src/domain/run.ts),
 * guards the change in SQL (UPDATE ... WHERE status/phase = expected), writes the audit event
 * (subject `run:<id>`) in the same transaction and NOTIFYs every process (CHANNEL_RUN) at commit.
 *
 * Lock order, everywhere: the run's row, then a task's row. The advancer holds the run row while
 * it decides; a step's change takes the run row first, so the advancer never decides on a state
 * a concurrent change has already left.
 */
import type { Knex } from 'knex';
import type { TaskArgument } from '../domain/recipe.js';
import {
  assertRunTransition,
  assertStepTransition,
  runSubject,
  type Run,
  type RunStatus,
  type RunStep,
  type RunStepPhase,
  type RunTrigger,
  type StoredPlan,
} from '../domain/run.js';
import type { PlannedStep } from '../domain/runbook/index.js';
import { inTransaction, type Queryable } from './db.js';
import { appendEvent } from './events.js';
import { notify } from './notify.js';

/** Every process's advancer hears of a run's change at commit (payload: the run id). */
export const CHANNEL_RUN = 'countersign_run';
/** An http step to abort (payload: the run step's id): only its owner acts on it. */
export const CHANNEL_RUN_STEP_STOP = 'countersign_run_step_stop';

export interface RunRow {
  id: number;
  created_at: Date;
  status_changed_at: Date;
  status: RunStatus;
  creator: string;
  trigger: RunTrigger;
  reference: string;
  runbook_hash: string | null;
  plan: StoredPlan;
  arguments: Record<string, TaskArgument[]>;
  content_version: string;
  message: string | null;
  desired_phase: 'stopped' | null;
  stop_requested_by: string | null;
  status_version: number;
  view_version: number;
  channel_id: string | null;
  card_ts: string | null;
  card_version: number | null;
  card_post_claimed_at: Date | null;
  review_channel: string | null;
  review_ts: string | null;
  review_version: number | null;
  review_post_claimed_at: Date | null;
  review_script_posted: boolean;
  run_after: Date | null;
  source_key: string | null;
  parent_run_id: number | null;
  failure_message: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface RunStepRow {
  id: number;
  run_id: number;
  group_index: number;
  position: number;
  step_id: string;
  kind: RunStep['kind'];
  phase: RunStepPhase;
  continue_on_failure: boolean;
  outputs: RunStep['values'];
  output: string | null;
  failure_message: string | null;
  task_id: number | null;
  runner_id: string | null;
  runner_key: number | null;
  lease_until: Date | null;
  timeout_at: Date | null;
  message_channel: string | null;
  message_ts: string | null;
  decided_by: string | null;
  started_at: Date | null;
  finished_at: Date | null;
}

export function toRun(row: RunRow): Run {
  return {
    id: row.id,
    createdAt: row.created_at,
    statusChangedAt: row.status_changed_at,
    status: row.status,
    creator: row.creator,
    trigger: row.trigger,
    reference: row.reference,
    runbookHash: row.runbook_hash,
    plan: row.plan,
    arguments: row.arguments,
    contentVersion: row.content_version,
    message: row.message,
    desiredPhase: row.desired_phase,
    stopRequestedBy: row.stop_requested_by,
    statusVersion: row.status_version,
    viewVersion: row.view_version,
    channelId: row.channel_id,
    cardTs: row.card_ts,
    reviewChannel: row.review_channel,
    reviewTs: row.review_ts,
    reviewScriptPosted: row.review_script_posted,
    runAfter: row.run_after,
    parentRunId: row.parent_run_id,
    failureMessage: row.failure_message,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export function toRunStep(row: RunStepRow): RunStep {
  return {
    id: row.id,
    runId: row.run_id,
    groupIndex: row.group_index,
    position: row.position,
    stepId: row.step_id,
    kind: row.kind,
    phase: row.phase,
    continueOnFailure: row.continue_on_failure,
    values: row.outputs,
    output: row.output,
    failureMessage: row.failure_message,
    taskId: row.task_id,
    runnerId: row.runner_id,
    leaseUntil: row.lease_until,
    timeoutAt: row.timeout_at,
    messageChannel: row.message_channel,
    messageTs: row.message_ts,
    decidedBy: row.decided_by,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export interface NewRun {
  creator: string;
  trigger: RunTrigger;
  plan: StoredPlan;
  arguments: Record<string, TaskArgument[]>;
  runbookHash: string | null;
  message: string | null;
  channelId: string | null;
  reviewChannel: string | null;
  sourceKey: string | null;
  parentRunId: number | null;
  /** A grace delay, counted by the database's clock from now. */
  delayMs: number | null;
}

/**
 * Inserts a run in `created` with one pending row per planned step; when `sourceKey` was seen
 * before, returns that run instead (created: false).
 */
export async function insertRun(db: Queryable, run: NewRun, groups: ReadonlyArray<readonly PlannedStep[]>): Promise<{ run: Run; created: boolean }> {
  return inTransaction(db, async (trx) => {
    const [row] = (await trx('runs')
      .insert({
        status: 'created',
        creator: run.creator,
        trigger: JSON.stringify(run.trigger),
        reference: run.plan.reference,
        runbook_hash: run.runbookHash,
        plan: JSON.stringify(run.plan),
        arguments: JSON.stringify(run.arguments),
        content_version: run.plan.contentVersion,
        message: run.message,
        channel_id: run.channelId,
        review_channel: run.reviewChannel,
        source_key: run.sourceKey,
        parent_run_id: run.parentRunId,
        run_after: run.delayMs ? trx.raw('now() + make_interval(secs => ?)', [run.delayMs / 1000]) : null,
      })
      .onConflict('source_key')
      .ignore()
      .returning('*')) as RunRow[];
    if (!row) {
      const existing = (await trx('runs').where({ source_key: run.sourceKey }).first()) as RunRow | undefined;
      if (!existing) throw new Error(`run with source_key ${run.sourceKey} vanished after a conflict`);
      return { run: toRun(existing), created: false };
    }
    const steps = groups.flatMap((group, groupIndex) =>
      group.map((step, position) => ({
        run_id: row.id,
        group_index: groupIndex,
        position,
        step_id: step.id,
        kind: step.kind,
        continue_on_failure: step.continueOnFailure,
      })),
    );
    if (steps.length > 0) await trx('run_steps').insert(steps);
    return { run: toRun(row), created: true };
  });
}

export async function getRun(db: Queryable, id: number): Promise<Run | null> {
  const row = (await db('runs').where({ id }).first()) as RunRow | undefined;
  return row ? toRun(row) : null;
}

/** Whole runs by id, newest first, in one query (a page of a list). */
export async function runsByIds(db: Queryable, ids: readonly number[]): Promise<Run[]> {
  if (ids.length === 0) return [];
  const rows = (await db('runs')
    .whereIn('id', [...ids])
    .orderBy('id', 'desc')) as RunRow[];
  return rows.map(toRun);
}

/** Locks the run's row for the rest of the caller's transaction (waits for another holder). */
export async function lockRun(db: Queryable, id: number): Promise<Run | null> {
  const row = (await db('runs').where({ id }).forUpdate().first()) as RunRow | undefined;
  return row ? toRun(row) : null;
}

export async function stepsOfRun(db: Queryable, runId: number): Promise<RunStep[]> {
  const rows = (await db('run_steps').where({ run_id: runId }).orderBy(['group_index', 'position'])) as RunStepRow[];
  return rows.map(toRunStep);
}

export async function getRunStep(db: Queryable, id: number): Promise<RunStep | null> {
  const row = (await db('run_steps').where({ id }).first()) as RunStepRow | undefined;
  return row ? toRunStep(row) : null;
}

type RunColumns = Omit<Partial<RunRow>, 'id' | 'status' | 'status_changed_at' | 'created_at' | 'view_version' | 'status_version'>;

export interface RunTransition {
  runId: number;
  from: RunStatus | readonly RunStatus[];
  to: RunStatus;
  actor: string | null;
  data?: Record<string, unknown>;
  set?: RunColumns;
}

/**
 * Moves a run from one of `from` to `to`, or does nothing and returns null when the run is not
 * in `from` any more (a second click, another replica).
 */
export async function transitionRun(db: Queryable, change: RunTransition): Promise<Run | null> {
  const allowedFrom = typeof change.from === 'string' ? [change.from] : [...change.from];
  for (const from of allowedFrom) assertRunTransition(from, change.to);
  return inTransaction(db, async (trx) => {
    const current = (await trx('runs').where({ id: change.runId }).forUpdate().first('status')) as { status: RunStatus } | undefined;
    if (!current || !allowedFrom.includes(current.status)) return null;
    const [row] = (await trx('runs')
      .where({ id: change.runId, status: current.status })
      .update(
        {
          ...change.set,
          status: change.to,
          status_changed_at: trx.fn.now(),
          status_version: trx.raw('status_version + 1'),
          view_version: trx.raw('view_version + 1'),
        },
        '*',
      )) as RunRow[];
    if (!row) return null;
    await appendEvent(trx, {
      taskId: null,
      subject: runSubject(change.runId),
      type: `run.${change.to}`,
      actor: change.actor,
      data: { from: current.status, ...change.data },
    });
    await notify(trx, CHANNEL_RUN, String(change.runId));
    return toRun(row);
  });
}

type StepColumns = Omit<Partial<RunStepRow>, 'id' | 'run_id' | 'phase' | 'step_id' | 'kind' | 'group_index' | 'position'>;

export interface StepTransition {
  stepId: number;
  from: RunStepPhase | readonly RunStepPhase[];
  to: RunStepPhase;
  actor: string | null;
  data?: Record<string, unknown>;
  set?: StepColumns;
  /** Only when the step is still this runner's (an http step's owner finishing it). */
  runnerKey?: number;
}

/**
 * Moves a run step between phases, guarded like transitionRun; bumps its run's versions, writes
 * `run.step.<phase>` and NOTIFYs. Takes the run's row lock first (the lock order above).
 */
export async function transitionRunStep(db: Queryable, change: StepTransition): Promise<RunStep | null> {
  const allowedFrom = typeof change.from === 'string' ? [change.from] : [...change.from];
  for (const from of allowedFrom) assertStepTransition(from, change.to);
  return inTransaction(db, async (trx) => {
    const located = (await trx('run_steps').where({ id: change.stepId }).first('run_id')) as { run_id: number } | undefined;
    if (!located) return null;
    await trx('runs').where({ id: located.run_id }).forUpdate().first('id');
    const current = (await trx('run_steps').where({ id: change.stepId }).forUpdate().first('phase', 'step_id', 'runner_key')) as
      | Pick<RunStepRow, 'phase' | 'step_id' | 'runner_key'>
      | undefined;
    if (!current || !allowedFrom.includes(current.phase)) return null;
    if (change.runnerKey !== undefined && Number(current.runner_key) !== change.runnerKey) return null;
    const finished = ['succeeded', 'failed', 'skipped', 'killed'].includes(change.to);
    const [row] = (await trx('run_steps')
      .where({ id: change.stepId, phase: current.phase })
      .update(
        {
          ...change.set,
          phase: change.to,
          ...(change.to === 'running' || change.to === 'paused' ? { started_at: trx.fn.now() } : {}),
          ...(finished ? { finished_at: trx.fn.now(), lease_until: null } : {}),
        },
        '*',
      )) as RunStepRow[];
    if (!row) return null;
    await trx('runs')
      .where({ id: located.run_id })
      .update({ status_version: trx.raw('status_version + 1'), view_version: trx.raw('view_version + 1') });
    await appendEvent(trx, {
      taskId: null,
      subject: runSubject(located.run_id),
      type: `run.step.${change.to}`,
      actor: change.actor,
      data: { step: current.step_id, from: current.phase, ...change.data },
    });
    await notify(trx, CHANNEL_RUN, String(located.run_id));
    return toRunStep(row);
  });
}

/** Records a stop request; false when the run is not running or someone asked already. */
export async function requestRunStop(trx: Knex.Transaction, runId: number, userId: string): Promise<boolean> {
  const rows = await trx('runs')
    .where({ id: runId, status: 'running' })
    .whereNull('desired_phase')
    .update({ desired_phase: 'stopped', stop_requested_by: userId, status_version: trx.raw('status_version + 1'), view_version: trx.raw('view_version + 1') }, [
      'id',
    ]);
  if (rows.length === 0) return false;
  await appendEvent(trx, { taskId: null, subject: runSubject(runId), type: 'run.stop-requested', actor: userId });
  await notify(trx, CHANNEL_RUN, String(runId));
  return true;
}

/** Runs that may have something to do (ready or running), oldest first, bounded. */
export async function activeRunIds(db: Queryable, limit = 500): Promise<number[]> {
  return db('runs').whereIn('status', ['ready', 'running']).orderBy('id').limit(limit).pluck('id');
}

/** One approval step decision per person; false when they decided already. */
export async function insertStepDecision(
  db: Queryable,
  decision: { stepId: number; userId: string; verdict: 'approve' | 'reject'; reason: string | null },
): Promise<boolean> {
  const rows = await db('run_step_decisions')
    .insert({ run_step_id: decision.stepId, user_id: decision.userId, verdict: decision.verdict, reason: decision.reason })
    .onConflict(['run_step_id', 'user_id'])
    .ignore()
    .returning('id');
  return rows.length > 0;
}

export async function stepDecisions(
  db: Queryable,
  stepId: number,
): Promise<Array<{ userId: string; verdict: 'approve' | 'reject'; reason: string | null; at: Date }>> {
  const rows = (await db('run_step_decisions').where({ run_step_id: stepId }).orderBy('id')) as Array<{
    user_id: string;
    verdict: 'approve' | 'reject';
    reason: string | null;
    created_at: Date;
  }>;
  return rows.map((r) => ({ userId: r.user_id, verdict: r.verdict, reason: r.reason, at: r.created_at }));
}

/** The database's clock: deadlines and grace are measured by it, so replicas agree. */
export async function databaseNow(db: Queryable): Promise<Date> {
  const result = (await db.raw('SELECT now() AS now')) as { rows: Array<{ now: Date }> };
  return result.rows[0]?.now ?? new Date();
}
