/**
 * Executions and their steps. The claim is the queue: one short transaction that takes the
 * oldest ready task with FOR UPDATE SKIP LOCKED, moves it to running and records who owns the
 * run and until when (the lease). Every change bumps status_version.
 */
import type { Knex } from 'knex';
import type { Plan } from '../domain/plan.js';
import { newRunToken } from '../exec/remoteCommand.js';
import type { Execution, ExecutionPhase, ExecutionStep, StepPhase, Task } from '../domain/task.js';
import { inTransaction, type Queryable } from './db.js';
import { appendEvent } from './events.js';
import { toExecution, toStep, type ExecutionRow, type StepRow } from './rows.js';
import { CHANNEL_STOP, notify } from './notify.js';
import { bumpViewVersion, transitionTask } from './tasks.js';

export interface Claimed {
  task: Task;
  /** When the task became ready: its wait in the queue ends at the claim. */
  readyAt: Date;
  execution: Execution;
  steps: ExecutionStep[];
}

/**
 * Claims the oldest ready task for `runnerId`, or returns null when none is ready. `planFor`
 * builds the plan from the task (it is pure and fast, so the transaction stays short).
 */
export async function claimNextReady(
  db: Knex,
  runner: { id: string; key: number },
  leaseMs: number,
  planFor: (task: Task) => Plan,
): Promise<Claimed | null> {
  const runnerId = runner.id;
  return db.transaction(async (trx) => {
    // A task asked for with a grace delay waits in `ready` until its time (the poll finds it then).
    const next = await trx('tasks')
      .where({ status: 'ready' })
      .where((q) => q.whereNull('run_after').orWhere('run_after', '<=', trx.fn.now()))
      .orderBy('id')
      .forUpdate()
      .skipLocked()
      .first('id', 'status_changed_at', 'run_after');
    if (!next) return null;
    const task = await transitionTask(trx, {
      taskId: next.id as number,
      from: 'ready',
      to: 'running',
      actor: null,
      data: { runner: runnerId },
      set: { started_at: trx.fn.now() as unknown as Date },
    });
    if (!task) return null;
    const plan = planFor(task);
    const [execution] = await trx('executions')
      .insert({
        task_id: task.id,
        plan: JSON.stringify(plan) as unknown as Plan,
        runner_id: runnerId,
        runner_key: runner.key,
        lease_until: trx.raw(`now() + make_interval(secs => ?)`, [leaseMs / 1000]),
      })
      .returning<ExecutionRow[]>('*');
    if (!execution) throw new Error('execution insert returned nothing');
    const stepRows = plan.flatMap((group, groupIndex) =>
      group.map((address) => ({
        execution_id: execution.id,
        group_index: groupIndex,
        host: address.host,
        port: address.port,
        user: address.user,
        run_token: newRunToken(),
      })),
    );
    const steps = stepRows.length > 0 ? await trx<StepRow>('execution_steps').insert(stepRows).returning('*') : [];
    // Queue wait counts from when it could first run: after approval, or at the end of its grace delay.
    const readyAt = next.run_after && (next.run_after as Date) > (next.status_changed_at as Date) ? (next.run_after as Date) : (next.status_changed_at as Date);
    return { task, readyAt, execution: toExecution(execution), steps: steps.map(toStep) };
  });
}

/**
 * Extends the leases of this runner's runs in one statement; for each run still ours, says
 * whether a stop was asked for, so the owner learns of kills from any replica. A run missing
 * from the answer is no longer ours (it ended, or the sweeper gave it up).
 */
export async function renewLeases(
  db: Queryable,
  executionIds: readonly number[],
  runnerId: string,
  leaseMs: number,
): Promise<Map<number, { stopRequested: boolean }>> {
  if (executionIds.length === 0) return new Map();
  const rows = await db<ExecutionRow>('executions')
    .whereIn('id', executionIds)
    .where({ runner_id: runnerId, phase: 'running' })
    .update({ lease_until: db.raw(`now() + make_interval(secs => ?)`, [leaseMs / 1000]) as unknown as Date }, ['id', 'desired_phase']);
  return new Map(rows.map((row) => [row.id, { stopRequested: row.desired_phase === 'stopped' }]));
}

/** Records a stop request once; returns false when the run is over or a stop was already asked for. */
export async function requestStop(db: Queryable, executionId: number, taskId: number, userId: string): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    const rows = await trx('executions')
      .where({ id: executionId, phase: 'running' })
      .whereNull('desired_phase')
      .update({ desired_phase: 'stopped', stop_requested_by: userId, status_version: trx.raw('status_version + 1') }, ['id']);
    if (rows.length === 0) return false;
    await bumpViewVersion(trx, taskId);
    await appendEvent(trx, { taskId, type: 'execution.stop-requested', actor: userId, data: { execution: executionId } });
    // Delivered at commit to every process; the one that owns the run stops it.
    await notify(trx, CHANNEL_STOP, String(executionId));
    return true;
  });
}

export async function stopRequester(db: Queryable, executionId: number): Promise<string | null> {
  const row = await db<ExecutionRow>('executions').where({ id: executionId }).first('stop_requested_by');
  return row?.stop_requested_by ?? null;
}

export async function updateStep(
  db: Queryable,
  executionId: number,
  stepId: number,
  fields: { phase: StepPhase; exitCode?: number | null; signal?: string | null; failureMessage?: string | null; started?: boolean; finished?: boolean },
): Promise<void> {
  await inTransaction(db, async (trx) => {
    await trx('execution_steps')
      .where({ id: stepId })
      .update({
        phase: fields.phase,
        ...(fields.exitCode !== undefined ? { exit_code: fields.exitCode } : {}),
        ...(fields.signal !== undefined ? { signal: fields.signal } : {}),
        ...(fields.failureMessage !== undefined ? { failure_message: fields.failureMessage } : {}),
        ...(fields.started ? { started_at: trx.fn.now() } : {}),
        ...(fields.finished ? { finished_at: trx.fn.now() } : {}),
      });
    await trx('executions').where({ id: executionId }).increment('status_version', 1);
    await trx('tasks')
      .whereIn('id', trx('executions').where({ id: executionId }).select('task_id'))
      .increment('view_version', 1);
  });
}

/**
 * Stores a run's result if the run is still running and still this runner's (`runnerKey`): a run
 * given up as lost while its runner was cut off keeps the result the sweeper gave it.
 */
export async function finishExecution(
  db: Queryable,
  executionId: number,
  runnerKey: number | null,
  outcome: { phase: Exclude<ExecutionPhase, 'running'>; exitCode: number | null; failureMessage: string | null },
): Promise<boolean> {
  const rows = await db('executions')
    .where({ id: executionId, phase: 'running' })
    .modify((q) => {
      if (runnerKey !== null) q.where({ runner_key: runnerKey });
    })
    .update(
      {
        phase: outcome.phase,
        exit_code: outcome.exitCode,
        failure_message: outcome.failureMessage,
        finished_at: db.fn.now(),
        status_version: db.raw('status_version + 1'),
      },
      ['id'],
    );
  return rows.length > 0;
}

/**
 * Fails a run without a runner key (claimed before runners had liveness locks) whose lease has
 * expired, checking the expiry in the same statement, and fails its unfinished steps with it. Returns the steps that were running (their processes may still be
 * alive on the hosts), or null when the run was not expired after all.
 */
export async function failExpiredExecution(db: Queryable, executionId: number, failureMessage: string): Promise<ExecutionStep[] | null> {
  return inTransaction(db, async (trx) => {
    const rows = await trx('executions')
      .where({ id: executionId, phase: 'running' })
      .whereNull('runner_key')
      .where('lease_until', '<', trx.fn.now())
      .update({ phase: 'failed', failure_message: failureMessage, finished_at: trx.fn.now(), status_version: trx.raw('status_version + 1') }, ['id']);
    if (rows.length === 0) return null;
    return failUnfinishedSteps(trx, executionId, failureMessage);
  });
}

async function failUnfinishedSteps(trx: Knex.Transaction, executionId: number, failureMessage: string): Promise<ExecutionStep[]> {
  const unfinished = await trx<StepRow>('execution_steps')
    .where({ execution_id: executionId })
    .whereIn('phase', ['pending', 'running'])
    .orderBy('id')
    .forUpdate();
  if (unfinished.length > 0) {
    await trx('execution_steps')
      .whereIn('id', unfinished.map((row) => row.id))
      .update({ phase: 'failed', failure_message: failureMessage, finished_at: trx.fn.now() });
  }
  return unfinished.filter((row) => row.phase === 'running').map(toStep);
}

export async function addOutputBytes(db: Queryable, executionId: number, bytes: number): Promise<void> {
  await db('executions').where({ id: executionId }).increment('output_bytes', bytes);
}

export async function latestExecution(db: Queryable, taskId: number): Promise<(Execution & { steps: ExecutionStep[] }) | null> {
  const row = await db<ExecutionRow>('executions').where({ task_id: taskId }).orderBy('id', 'desc').first();
  if (!row) return null;
  const steps = await db<StepRow>('execution_steps').where({ execution_id: row.id }).orderBy('id');
  return { ...toExecution(row), steps: steps.map(toStep) };
}

export async function runningExecutionFor(db: Queryable, taskId: number): Promise<Execution | null> {
  const row = await db<ExecutionRow>('executions').where({ task_id: taskId, phase: 'running' }).orderBy('id', 'desc').first();
  return row ? toExecution(row) : null;
}

export async function stepsOf(db: Queryable, executionId: number): Promise<ExecutionStep[]> {
  const rows = await db<StepRow>('execution_steps').where({ execution_id: executionId }).orderBy('id');
  return rows.map(toStep);
}

/** A running execution as the lost-run sweeper sees it. */
export interface RunningExecution {
  id: number;
  taskId: number;
  runnerId: string;
  /** The owner's liveness lock key; null for runs claimed before runners had one (judged by lease). */
  runnerKey: number | null;
  leaseExpired: boolean;
}

/**
 * Every running execution (a partial index holds just these), with which server answered: right
 * after a restart or a failover every runner's lock is free until it reconnects.
 */
export async function runningExecutions(db: Queryable): Promise<{ executions: RunningExecution[]; server: DatabaseServer }> {
  const [rows, server] = await Promise.all([
    db('executions')
      .where({ phase: 'running' })
      .orderBy('id')
      .select<Array<{ id: number; task_id: number; runner_id: string; runner_key: number | null; lease_expired: boolean }>>(
        'id',
        'task_id',
        'runner_id',
        'runner_key',
        db.raw('lease_until < now() AS lease_expired'),
      ),
    databaseServer(db),
  ]);
  return {
    executions: rows.map((row) => ({ id: row.id, taskId: row.task_id, runnerId: row.runner_id, runnerKey: row.runner_key, leaseExpired: row.lease_expired })),
    server,
  };
}

/** Which server answers: its start time, and (when the role may read pg_control) cluster id and timeline. */
export interface DatabaseServer {
  startedAt: string;
  systemId: string | null;
  timeline: number | null;
  upMs: number;
}

/** Databases whose role may not run pg_control_system() (some managed services revoke it): asked once. */
const controlUnreadable = new WeakSet<object>();

export async function databaseServer(db: Queryable): Promise<DatabaseServer> {
  const uptime = 'SELECT (extract(epoch FROM now() - pg_postmaster_start_time()) * 1000)::float8 AS up_ms, pg_postmaster_start_time()::text AS started';
  type Row = { up_ms: number; started: string; system_id?: string | null; timeline?: number | null };
  let row: Row | undefined;
  if (!controlUnreadable.has(db)) {
    try {
      const withControl = await db.raw<{ rows: Row[] }>(
        `SELECT u.*, s.system_identifier::text AS system_id, (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline FROM (${uptime}) u, pg_control_system() s`,
      );
      row = withControl.rows[0];
    } catch (error) {
      if ((error as { code?: string }).code !== '42501') throw error; // insufficient_privilege
      controlUnreadable.add(db);
    }
  }
  row ??= (await db.raw<{ rows: Row[] }>(uptime)).rows[0];
  return { startedAt: row?.started ?? '', systemId: row?.system_id ?? null, timeline: row?.timeline === undefined || row.timeline === null ? null : Number(row.timeline), upMs: Number(row?.up_ms ?? 0) };
}

/**
 * Every bigint advisory lock some live session holds in this database: the live runners' keys
 * (and any other such lock, which no run carries). Bigint keys show in pg_locks as classid = high
 * half, objid = low half, objsubid = 1. A handful of rows, read from shared memory.
 */
export async function heldRunnerKeys(db: Queryable): Promise<Set<number>> {
  const result = await db.raw<{ rows: Array<{ key: number }> }>(
    `SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS key FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return new Set(result.rows.map((row) => Number(row.key)));
}

/**
 * Takes the runner's lock for the rest of this transaction, so it cannot come back (re-acquire
 * it) while its runs are being ended; false when some session holds it: the runner is alive.
 */
export async function lockLostRunner(trx: Knex.Transaction, runnerKey: number): Promise<boolean> {
  const result = await trx.raw<{ rows: Array<{ got: boolean }> }>('SELECT pg_try_advisory_xact_lock(?::bigint) AS got', [runnerKey]);
  return result.rows[0]?.got === true;
}

/**
 * Fails a run of a runner found dead (its lock taken by this transaction, see lockLostRunner),
 * and its unfinished steps with it. Returns the steps that were running (their processes may
 * still be alive on the hosts), or null when the run was no longer running or no longer that
 * runner's.
 */
export async function failRunOfLostRunner(trx: Knex.Transaction, executionId: number, runnerKey: number, failureMessage: string): Promise<ExecutionStep[] | null> {
  const rows = await trx('executions')
    .where({ id: executionId, phase: 'running', runner_key: runnerKey })
    .update({ phase: 'failed', failure_message: failureMessage, finished_at: trx.fn.now(), status_version: trx.raw('status_version + 1') }, ['id']);
  if (rows.length === 0) return null;
  return failUnfinishedSteps(trx, executionId, failureMessage);
}

/**
 * The owner's side of the same question, asked on the connection that holds its lock: is the run
 * still running and still ours? Renews the lease as it asks. A query for a raw pg client.
 */
export function confirmOwnershipQuery(executionId: number, runnerKey: number, leaseMs: number): { text: string; values: unknown[] } {
  return {
    text: `UPDATE executions SET lease_until = now() + make_interval(secs => $3::float8)
            WHERE id = $1 AND runner_key = $2 AND phase = 'running' RETURNING id`,
    values: [executionId, runnerKey, leaseMs / 1000],
  };
}

/**
 * Settles the steps of a finished run with their results, in the result's transaction: a step
 * whose own update was lost to a database outage must not look busy after its run ended.
 */
export async function settleSteps(
  trx: Knex.Transaction,
  results: ReadonlyArray<{ stepId: number; phase: StepPhase; exitCode: number | null; signal: string | null; failureMessage: string | null }>,
): Promise<void> {
  for (const result of results) {
    await trx('execution_steps')
      .where({ id: result.stepId })
      .whereIn('phase', ['pending', 'running'])
      .update({
        phase: result.phase,
        exit_code: result.exitCode,
        signal: result.signal,
        failure_message: result.failureMessage,
        finished_at: trx.raw('coalesce(finished_at, now())'),
      });
  }
}


export async function executionsOfTask(db: Queryable, taskId: number): Promise<Array<Execution & { steps: ExecutionStep[] }>> {
  const rows = await db<ExecutionRow>('executions').where({ task_id: taskId }).orderBy('id');
  if (rows.length === 0) return [];
  const steps = await db<StepRow>('execution_steps').whereIn('execution_id', rows.map((row) => row.id)).orderBy('id');
  return rows.map((row) => ({ ...toExecution(row), steps: steps.filter((step) => step.execution_id === row.id).map(toStep) }));
}

export async function getExecution(db: Queryable, executionId: number): Promise<(Execution & { steps: ExecutionStep[] }) | null> {
  const row = await db<ExecutionRow>('executions').where({ id: executionId }).first();
  if (!row) return null;
  return { ...toExecution(row), steps: await stepsOf(db, executionId) };
}
