/**
 * Executions and their steps. The claim is the queue: one short transaction that takes the
 * oldest ready task with FOR UPDATE SKIP LOCKED, moves it to running and records who owns the
 * run and until when (the lease). Every change bumps status_version.
 */
import type { Knex } from 'knex';
import { assertTransition, transitionEventType } from '../domain/lifecycle.js';
import type { Plan } from '../domain/plan.js';
import type { Execution, ExecutionPhase, ExecutionStep, StepPhase, Task } from '../domain/task.js';
import { inTransaction, jsonParameter, prepared, type Queryable } from './db.js';
import { appendEvent } from './events.js';
import { EXECUTION_DATES, jsonRow, STEP_DATES, toExecution, toStep, toTask, type ExecutionRow, type StepRow, type TaskRow } from './rows.js';
import { CHANNEL_STOP, CHANNEL_TASK, notify } from './notify.js';
import { bumpViewVersion, type AlongWith } from './tasks.js';

export interface Claimed {
  task: Task;
  /** When the task became ready: its wait in the queue ends at the claim. */
  readyAt: Date;
  execution: Execution;
  steps: ExecutionStep[];
}

/** Each target's plan as JSON (target name -> Plan), given to the claim; see `plansJson`. */
export type PlansJson = string;

/** The plans of every configured target, as the claim takes them (build once per config). */
export function plansJson(plans: ReadonlyMap<string, Plan>): PlansJson {
  return JSON.stringify(Object.fromEntries(plans));
}

/**
 * Claims up to `limit` of the oldest ready tasks for `runner`, oldest first; an empty list when
 * none is ready. One statement, so one round trip and one commit however many it takes: the
 * rows are locked with FOR UPDATE SKIP LOCKED while still ready (another runner's claim in flight
 * is skipped, never waited for) and moved from ready to running, each with its audit event (as
 * transitionTask writes it), its execution (owner, liveness key, lease) and one step per host of
 * its target's plan. The steps of the first rollout batch start at once, so they are written
 * running. A task whose target is gone gets an empty plan (the run says why it ran nothing).
 */
export async function claimReady(db: Queryable, runner: { id: string; key: number }, leaseMs: number, plans: PlansJson, limit: number): Promise<Claimed[]> {
  assertTransition('ready', 'running');
  return claimWith(db, runner, leaseMs, plans, {
    next: `-- A task asked for with a grace delay waits in ready until its time (the poll finds it then).
       SELECT id, GREATEST(status_changed_at, run_after) AS ready_at FROM tasks
        WHERE status = 'ready' AND (run_after IS NULL OR run_after <= now())
        ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`,
    bindings: [limit],
    readyBy: null,
  });
}

/**
 * An approved task made ready by `actor` and claimed for `runner` in one statement: a Run clicked
 * in a process whose runner has room starts after one round trip and one commit instead of two
 * (the ready transition, then the claim that its wake sends). Both transitions are checked and
 * audited as claimReady and transitionTask audit them. The row is taken only while still
 * approved, past its grace delay (`--in`: until then a Run only makes it ready, and Cancel stays
 * offered) and not held by another statement: a Cancel or another click that moved it first
 * leaves nothing to claim (null), so it runs at most once, as a claim of a ready task does. No
 * ready NOTIFY: nobody else needs to look for it.
 */
export async function claimApproved(
  db: Queryable,
  runner: { id: string; key: number },
  leaseMs: number,
  plans: PlansJson,
  taskId: number,
  actor: string,
): Promise<Claimed | null> {
  assertTransition('approved', 'ready');
  assertTransition('ready', 'running');
  const [claimed] = await claimWith(db, runner, leaseMs, plans, {
    // SKIP LOCKED: a row held for a moment (a card's post claim) is left to the ready path, which waits for it.
    next: `SELECT id, CURRENT_TIMESTAMP AS ready_at FROM tasks
            WHERE id = ? AND status = 'approved' AND (run_after IS NULL OR run_after <= now()) FOR UPDATE SKIP LOCKED`,
    bindings: [taskId],
    readyBy: actor,
  });
  return claimed ?? null;
}

/**
 * The claim of the tasks `next` selects and locks (id, ready_at): each moved to running with its
 * audit event (and, with `readyBy`, the approved -> ready event before it, in that order), its
 * execution and its steps, and every process's followers told at commit.
 */
async function claimWith(
  db: Queryable,
  runner: { id: string; key: number },
  leaseMs: number,
  plans: PlansJson,
  select: { next: string; bindings: unknown[]; readyBy: string | null },
): Promise<Claimed[]> {
  const running = `jsonb_build_object('from', 'ready', 'runner', ?::text)`;
  const audit =
    select.readyBy === null
      ? { sql: `SELECT id, ?, NULL, ${running} FROM claimed`, bindings: [transitionEventType('running'), runner.id] }
      : {
          // One INSERT in event order: the ready event's id comes before the running one's.
          sql: `SELECT claimed.id, event.type, event.actor, event.data FROM claimed,
                  (VALUES (1, ?, ?::text, jsonb_build_object('from', 'approved')), (2, ?, NULL, ${running})) AS event(ord, type, actor, data)
                ORDER BY claimed.id, event.ord`,
          bindings: [transitionEventType('ready'), select.readyBy, transitionEventType('running'), runner.id],
        };
  const result = await prepared(
    db.raw<{ rows: Array<TaskRow & { ready_at: Date; execution: Record<string, unknown>; steps: Array<Record<string, unknown>> | null }> }>(
      `WITH next AS (
       ${select.next}
     ),
     -- By id alone: \`next\` holds each row's lock, taken only while it was still ready (or approved,
     -- for claimApproved; a row changed meanwhile is rechecked and skipped), so nobody can have moved it since. A status condition
     -- here let the planner, on statistics older than a burst, read every ready task for the
     -- UPDATE (a claim of 9 behind 1,500 ready ones: 3.9 ms instead of 1.4; claim-backlog.test.ts).
     claimed AS (
       UPDATE tasks SET status = 'running', started_at = CURRENT_TIMESTAMP, status_changed_at = CURRENT_TIMESTAMP, view_version = tasks.view_version + 1
         FROM next WHERE tasks.id = next.id
         RETURNING tasks.*, next.ready_at
     ),
     audit AS (
       INSERT INTO events (task_id, type, actor, data)
       ${audit.sql}
     ),
     run AS (
       INSERT INTO executions (task_id, plan, runner_id, runner_key, lease_until)
       SELECT id, coalesce(?::jsonb -> target, '[]'::jsonb), ?, ?, now() + make_interval(secs => ?::float8) FROM claimed
       RETURNING *
     ),
     step AS (
       INSERT INTO execution_steps (execution_id, group_index, host, port, "user", run_token, phase, started_at)
       SELECT run.id, batch.index - 1, host->>'host', (host->>'port')::int, host->>'user',
              -- 122 random bits from the server's strong source, as 32 hex digits.
              replace(gen_random_uuid()::text, '-', ''),
              CASE WHEN batch.index = 1 THEN 'running' ELSE 'pending' END,
              CASE WHEN batch.index = 1 THEN CURRENT_TIMESTAMP END
         FROM run, jsonb_array_elements(run.plan) WITH ORDINALITY AS batch(hosts, index), jsonb_array_elements(batch.hosts) AS host
       RETURNING *
     )
     SELECT claimed.*, row_to_json(run) AS execution,
            (SELECT json_agg(step ORDER BY step.id) FROM step WHERE step.execution_id = run.id) AS steps,
            -- Every process's followers hear of the start at commit, with no NOTIFY of its own.
            pg_notify(?, claimed.id::text) AS notified
       FROM claimed JOIN run ON run.task_id = claimed.id
      ORDER BY claimed.id`,
      [...select.bindings, ...audit.bindings, plans, runner.id, runner.key, leaseMs / 1000, CHANNEL_TASK] as never,
    ),
  );
  return result.rows.map((row) => ({
    task: toTask(row),
    readyAt: row.ready_at,
    execution: toExecution(jsonRow<ExecutionRow>(row.execution, EXECUTION_DATES)),
    steps: (row.steps ?? []).map((step) => toStep(jsonRow<StepRow>(step, STEP_DATES))),
  }));
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
  // Locked in id order, as the result writer and the lost-run sweeper lock runs: an UPDATE alone
  // locks in whatever order its scan finds the rows, and two of them could wait on each other.
  const { rows } = await db.raw<{ rows: Array<Pick<ExecutionRow, 'id' | 'desired_phase'>> }>(
    `WITH ours AS (
       SELECT id FROM executions WHERE id = ANY(?::bigint[]) AND runner_id = ? AND phase = 'running' ORDER BY id FOR NO KEY UPDATE
     )
     UPDATE executions SET lease_until = now() + make_interval(secs => ?::float8) FROM ours WHERE executions.id = ours.id
     RETURNING executions.id, executions.desired_phase`,
    [[...executionIds], runnerId, leaseMs / 1000] as never,
  );
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

/**
 * One step's phase (and result), with its run's status_version and its task's view_version
 * bumped so views redraw: one statement, so one round trip.
 */
export async function updateStep(
  db: Queryable,
  executionId: number,
  stepId: number,
  fields: { phase: StepPhase; exitCode?: number | null; signal?: string | null; failureMessage?: string | null; started?: boolean; finished?: boolean },
): Promise<void> {
  const set: Array<[string, unknown]> = [['phase', fields.phase]];
  if (fields.exitCode !== undefined) set.push(['exit_code', fields.exitCode]);
  if (fields.signal !== undefined) set.push(['signal', fields.signal]);
  if (fields.failureMessage !== undefined) set.push(['failure_message', fields.failureMessage]);
  if (fields.started) set.push(['started_at', db.fn.now()]);
  if (fields.finished) set.push(['finished_at', db.fn.now()]);
  await db.raw(
    `WITH step AS (UPDATE execution_steps SET ${set.map(() => '?? = ?').join(', ')} WHERE id = ? RETURNING id),
     run AS (UPDATE executions SET status_version = status_version + 1 WHERE id = ? RETURNING task_id)
     UPDATE tasks SET view_version = view_version + 1 WHERE id IN (SELECT task_id FROM run)`,
    [...set.flat(), stepId, executionId] as never,
  );
}

/** One run's result, as it is stored. */
export interface ExecutionResult {
  executionId: number;
  /** The runner the run must still belong to; null for a run claimed before runners had keys. */
  runnerKey: number | null;
  outcome: { phase: Exclude<ExecutionPhase, 'running'>; exitCode: number | null; failureMessage: string | null };
  steps: ReadonlyArray<{ stepId: number; phase: StepPhase; exitCode: number | null; signal: string | null; failureMessage: string | null }>;
}

/** finishExecutionStatement on its own (inside a caller's transaction): true when it stored the result. */
export async function finishExecution(db: Queryable, result: ExecutionResult): Promise<boolean> {
  const statement = finishExecutionStatement(result);
  const stored = await db.raw<{ rows: Array<{ n: number }> }>(`WITH ${statement.ctes} SELECT count(*)::int AS n FROM ${statement.gate}`, [
    ...statement.bindings,
  ] as never);
  return (stored.rows[0]?.n ?? 0) > 0;
}

/**
 * Stores a run's result if the run is still running and still this runner's (`runnerKey`): a run
 * given up as lost while its runner was cut off keeps the result the sweeper gave it. Its steps
 * are settled with their results too: a step whose own update was lost to a database outage must
 * not look busy after its run ended. A statement to run along with the task's transition
 * (transitionTaskAlong): its gate returns a row when it stored the result. It is the batch's
 * statement with one result, so a result is stored the same way whether it ends alone or not.
 */
export function finishExecutionStatement(result: ExecutionResult): AlongWith {
  return finishExecutionsStatement([result]);
}

/**
 * finishExecutionStatement for many runs in one statement, to go along with transitionTasksAlong
 * (or, with one run, transitionTaskAlong): its gate (`finished`) returns the `ord`, the index in
 * `results`, of each result it stored. Runs
 * are locked in id order, as the lease renewal and the lost-run sweeper lock them, and with the
 * lock an UPDATE takes (FOR NO KEY UPDATE), so storing output for a run is not held up by it.
 */
export function finishExecutionsStatement(results: readonly ExecutionResult[]): AlongWith {
  if (new Set(results.map((r) => r.executionId)).size !== results.length) throw new Error('finishExecutionsStatement: two results name the same run');
  const input = results.map((r, ord) => ({
    ord,
    execution_id: r.executionId,
    runner_key: r.runnerKey,
    phase: r.outcome.phase,
    exit_code: r.outcome.exitCode,
    failure_message: r.outcome.failureMessage,
    steps: r.steps.map((step) => ({
      step_id: step.stepId,
      phase: step.phase,
      exit_code: step.exitCode,
      signal: step.signal,
      failure_message: step.failureMessage,
    })),
  }));
  return {
    gate: 'finished',
    ctes: `finish_input AS (
            SELECT * FROM jsonb_to_recordset(?::jsonb)
              AS r(ord int, execution_id bigint, runner_key bigint, phase text, exit_code int, failure_message text, steps jsonb)
          ),
          finish_locked AS (
            SELECT executions.id, fi.ord FROM executions JOIN finish_input fi ON fi.execution_id = executions.id
             WHERE executions.phase = 'running' AND (fi.runner_key IS NULL OR executions.runner_key = fi.runner_key)
             ORDER BY executions.id FOR NO KEY UPDATE OF executions
          ),
          finished AS (
            UPDATE executions SET phase = fi.phase, exit_code = fi.exit_code, failure_message = fi.failure_message, finished_at = CURRENT_TIMESTAMP, status_version = executions.status_version + 1
              FROM finish_locked fl JOIN finish_input fi ON fi.ord = fl.ord
             WHERE executions.id = fl.id AND executions.phase = 'running'
             RETURNING executions.id, fl.ord
          ),
          settled AS (
            UPDATE execution_steps AS s
               SET phase = r.phase, exit_code = r.exit_code, signal = r.signal, failure_message = r.failure_message, finished_at = coalesce(s.finished_at, now())
              FROM finished JOIN finish_input fi ON fi.ord = finished.ord,
                   LATERAL jsonb_to_recordset(fi.steps) AS r(step_id bigint, phase text, exit_code int, signal text, failure_message text)
             WHERE s.id = r.step_id AND s.execution_id = finished.id AND s.phase IN ('pending', 'running')
          )`,
    bindings: [jsonParameter(input)],
  };
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
      .whereIn(
        'id',
        unfinished.map((row) => row.id),
      )
      .update({ phase: 'failed', failure_message: failureMessage, finished_at: trx.fn.now() });
  }
  return unfinished.filter((row) => row.phase === 'running').map(toStep);
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
 * What the lost-run sweeper needs, from the running executions (a partial index holds just
 * these), without shipping every running run to every process four times a second: the runs that
 * need a decision (no runner key and lease expired; ours but not among `active`, our runs in
 * memory), the other runners' keys with runs, and which server answered (right after a restart or
 * a failover every runner's lock is free until it reconnects).
 */
export async function runningExecutions(
  db: Queryable,
  ownKey: number,
  active: readonly number[],
): Promise<{ executions: RunningExecution[]; otherKeys: Set<number> }> {
  const [rows, keys] = await Promise.all([
    db('executions')
      .where({ phase: 'running' })
      .where((q) =>
        q
          .where((a) => a.whereNull('runner_key').where('lease_until', '<', db.fn.now()))
          .orWhere((b) => b.where({ runner_key: ownKey }).whereRaw('NOT (id = ANY(?::bigint[]))', [[...active]])),
      )
      .orderBy('id')
      .select<Array<{ id: number; task_id: number; runner_id: string; runner_key: number | null; lease_expired: boolean }>>(
        'id',
        'task_id',
        'runner_id',
        'runner_key',
        db.raw('lease_until < now() AS lease_expired'),
      ),
    db('executions').where({ phase: 'running' }).whereNotNull('runner_key').whereNot({ runner_key: ownKey }).distinct('runner_key').pluck('runner_key'),
  ]);
  return { executions: rows.map(toRunningExecution), otherKeys: new Set((keys as Array<number | string>).map(Number)) };
}

/** The running executions of one runner (one found lost), as the sweeper ends them. */
export async function runningExecutionsOf(db: Queryable, runnerKey: number): Promise<RunningExecution[]> {
  const rows = await db('executions')
    .where({ phase: 'running', runner_key: runnerKey })
    .orderBy('id')
    .select<Array<{ id: number; task_id: number; runner_id: string; runner_key: number | null; lease_expired: boolean }>>(
      'id',
      'task_id',
      'runner_id',
      'runner_key',
      db.raw('lease_until < now() AS lease_expired'),
    );
  return rows.map(toRunningExecution);
}

function toRunningExecution(row: { id: number; task_id: number; runner_id: string; runner_key: number | null; lease_expired: boolean }): RunningExecution {
  return { id: row.id, taskId: row.task_id, runnerId: row.runner_id, runnerKey: row.runner_key, leaseExpired: row.lease_expired };
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
  return {
    startedAt: row?.started ?? '',
    systemId: row?.system_id ?? null,
    timeline: row?.timeline === undefined || row.timeline === null ? null : Number(row.timeline),
    upMs: Number(row?.up_ms ?? 0),
  };
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
export async function failRunOfLostRunner(
  trx: Knex.Transaction,
  executionId: number,
  runnerKey: number,
  failureMessage: string,
): Promise<ExecutionStep[] | null> {
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

export async function executionsOfTask(db: Queryable, taskId: number): Promise<Array<Execution & { steps: ExecutionStep[] }>> {
  const rows = await db<ExecutionRow>('executions').where({ task_id: taskId }).orderBy('id');
  if (rows.length === 0) return [];
  const steps = await db<StepRow>('execution_steps')
    .whereIn(
      'execution_id',
      rows.map((row) => row.id),
    )
    .orderBy('id');
  return rows.map((row) => ({ ...toExecution(row), steps: steps.filter((step) => step.execution_id === row.id).map(toStep) }));
}

export async function getExecution(db: Queryable, executionId: number): Promise<(Execution & { steps: ExecutionStep[] }) | null> {
  const row = await db<ExecutionRow>('executions').where({ id: executionId }).first();
  if (!row) return null;
  return { ...toExecution(row), steps: await stepsOf(db, executionId) };
}
