/**
 * SQL for the Workflow Builder step's executions (migration 019). Every change is one guarded
 * UPDATE (… WHERE state = expected, WHERE the claim is ours), so replicas and retried events can
 * race freely: one of them wins, the others change nothing. Audit events (subject
 * `workflow:<function execution id>`) are written in the same transaction as the change.
 */
import type { Knex } from 'knex';
import { isRunTerminal, RUN_STATUSES } from '../domain/run.js';
import type { StepCompletion } from '../domain/workflowStep.js';
import { inTransaction, type Queryable } from './db.js';
import { appendEvent } from './events.js';

export type WorkflowExecutionState = 'received' | 'started' | 'refused';

export interface WorkflowExecution {
  id: number;
  createdAt: Date;
  functionExecutionId: string;
  workflowExecutionId: string | null;
  callbackId: string;
  starter: string | null;
  reference: string;
  argumentsText: string | null;
  message: string | null;
  state: WorkflowExecutionState;
  runId: number | null;
  refusal: string | null;
  attempts: number;
  lastError: string | null;
  completion: StepCompletion['kind'] | null;
  completedAt: Date | null;
}

interface Row {
  id: number;
  created_at: Date;
  function_execution_id: string;
  workflow_execution_id: string | null;
  callback_id: string;
  starter: string | null;
  reference: string;
  arguments: string | null;
  message: string | null;
  state: WorkflowExecutionState;
  run_id: number | null;
  refusal: string | null;
  attempts: number;
  last_error: string | null;
  completion: StepCompletion['kind'] | null;
  completed_at: Date | null;
}

const toExecution = (row: Row): WorkflowExecution => ({
  id: row.id,
  createdAt: row.created_at,
  functionExecutionId: row.function_execution_id,
  workflowExecutionId: row.workflow_execution_id,
  callbackId: row.callback_id,
  starter: row.starter,
  reference: row.reference,
  argumentsText: row.arguments,
  message: row.message,
  state: row.state,
  runId: row.run_id,
  refusal: row.refusal,
  attempts: row.attempts,
  lastError: row.last_error,
  completion: row.completion,
  completedAt: row.completed_at,
});

/** Runs in these states have ended: their execution can be completed. */
const ENDED_RUN_STATUSES = RUN_STATUSES.filter(isRunTerminal);

export const workflowSubject = (functionExecutionId: string): string => `workflow:${functionExecutionId}`;

export interface NewWorkflowExecution {
  functionExecutionId: string;
  workflowExecutionId: string | null;
  callbackId: string;
  starter: string | null;
  reference: string;
  argumentsText: string | null;
  message: string | null;
}

/** Stores an execution once: a second delivery of the same one answers the first row (created: false). */
export async function receiveExecution(db: Queryable, execution: NewWorkflowExecution): Promise<{ execution: WorkflowExecution; created: boolean }> {
  return inTransaction(db, async (trx) => {
    const [row] = (await trx('workflow_executions')
      .insert({
        function_execution_id: execution.functionExecutionId,
        workflow_execution_id: execution.workflowExecutionId,
        callback_id: execution.callbackId,
        starter: execution.starter,
        reference: execution.reference,
        arguments: execution.argumentsText,
        message: execution.message,
      })
      .onConflict('function_execution_id')
      .ignore()
      .returning('*')) as Row[];
    if (!row) {
      const existing = (await trx('workflow_executions').where({ function_execution_id: execution.functionExecutionId }).first()) as Row | undefined;
      if (!existing) throw new Error(`workflow execution ${execution.functionExecutionId} vanished after a conflict`);
      return { execution: toExecution(existing), created: false };
    }
    await appendEvent(trx, {
      taskId: null,
      subject: workflowSubject(execution.functionExecutionId),
      type: 'workflow.received',
      actor: execution.starter,
      data: { reference: execution.reference, workflowExecutionId: execution.workflowExecutionId, callbackId: execution.callbackId },
    });
    return { execution: toExecution(row), created: true };
  });
}

export async function getExecution(db: Queryable, id: number): Promise<WorkflowExecution | null> {
  const row = (await db('workflow_executions').where({ id }).first()) as Row | undefined;
  return row ? toExecution(row) : null;
}

/** received -> started (its run), once; false when another process got there first. */
export async function markStarted(db: Queryable, execution: WorkflowExecution, runId: number): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    const changed = await trx('workflow_executions').where({ id: execution.id, state: 'received' }).update({ state: 'started', run_id: runId });
    if (changed === 0) return false;
    await appendEvent(trx, {
      taskId: null,
      subject: workflowSubject(execution.functionExecutionId),
      type: 'workflow.started',
      actor: execution.starter,
      data: { runId },
    });
    return true;
  });
}

/** received -> refused (why), once. */
export async function markRefused(db: Queryable, execution: WorkflowExecution, refusal: string, code: string): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    const changed = await trx('workflow_executions').where({ id: execution.id, state: 'received' }).update({ state: 'refused', refusal });
    if (changed === 0) return false;
    await appendEvent(trx, {
      taskId: null,
      subject: workflowSubject(execution.functionExecutionId),
      type: 'workflow.refused',
      actor: execution.starter,
      data: { code, reason: refusal },
    });
    return true;
  });
}

/**
 * Takes the right to send this execution's completion for `leaseMs`: only while it is not
 * completed, nobody else holds an unexpired claim, and its retry time has come.
 */
export async function claimCompletion(db: Queryable, id: number, claimant: string, leaseMs: number): Promise<WorkflowExecution | null> {
  const [row] = (await db('workflow_executions')
    .where({ id })
    .whereNull('completed_at')
    .whereIn('state', ['started', 'refused'])
    .where((q) => q.whereNull('claimed_until').orWhere('claimed_until', '<', db.fn.now()))
    .where((q) => q.whereNull('next_attempt_at').orWhere('next_attempt_at', '<=', db.fn.now()))
    .update({ claimed_by: claimant, claimed_until: db.raw('now() + make_interval(secs => ?)', [leaseMs / 1000]), attempts: db.raw('attempts + 1') })
    .returning('*')) as Row[];
  return row ? toExecution(row) : null;
}

/** Records what Slack was told (or that Slack had ended the execution already), under our claim. */
export async function finishCompletion(
  db: Knex,
  execution: WorkflowExecution,
  claimant: string,
  sent: { completion: StepCompletion; outcome: 'sent' | 'gone'; slackError?: string },
): Promise<boolean> {
  return db.transaction(async (trx) => {
    const detail = sent.completion.kind === 'success' ? { outputs: sent.completion.outputs } : { error: sent.completion.error };
    const changed = await trx('workflow_executions')
      .where({ id: execution.id, claimed_by: claimant })
      .whereNull('completed_at')
      .update({
        completed_at: trx.fn.now(),
        completion: sent.completion.kind,
        completion_detail: JSON.stringify({ ...detail, ...(sent.outcome === 'gone' ? { slack: sent.slackError } : {}) }),
        claimed_by: null,
        claimed_until: null,
        last_error: sent.outcome === 'gone' ? (sent.slackError ?? null) : null,
      });
    if (changed === 0) return false;
    await appendEvent(trx, {
      taskId: null,
      subject: workflowSubject(execution.functionExecutionId),
      type: sent.outcome === 'sent' ? 'workflow.completed' : 'workflow.completion_refused',
      actor: null,
      data: {
        completion: sent.completion.kind,
        ...(execution.runId !== null ? { runId: execution.runId } : {}),
        ...(sent.slackError ? { slack: sent.slackError } : {}),
      },
    });
    return true;
  });
}

/** Gives the claim back after a failed attempt: the next one waits `retryMs`. */
export async function releaseCompletion(db: Queryable, id: number, claimant: string, error: string, retryMs: number): Promise<void> {
  await db('workflow_executions')
    .where({ id, claimed_by: claimant })
    .whereNull('completed_at')
    .update({
      claimed_by: null,
      claimed_until: null,
      last_error: error.slice(0, 500),
      next_attempt_at: db.raw('now() + make_interval(secs => ?)', [retryMs / 1000]),
    });
}

/** Executions of this run not completed yet (at most one in practice). */
export async function openExecutionsOfRun(db: Queryable, runId: number): Promise<WorkflowExecution[]> {
  const rows = (await db('workflow_executions').where({ run_id: runId }).whereNull('completed_at').limit(10)) as Row[];
  return rows.map(toExecution);
}

/**
 * The reconciler's work, oldest first, bounded: executions left `received` for `staleMs` (the
 * process that stored them died before starting them), and refused ones or ones whose run has
 * ended, not completed, whose retry time has come and nobody holds.
 */
export async function pendingExecutions(db: Queryable, staleMs: number, limit: number): Promise<WorkflowExecution[]> {
  const rows = (await db('workflow_executions')
    .whereNull('completed_at')
    .where((q) =>
      q
        .where((r) => r.where({ state: 'received' }).where('created_at', '<', db.raw('now() - make_interval(secs => ?)', [staleMs / 1000])))
        .orWhere((r) =>
          r
            .where((s) =>
              s
                .where({ state: 'refused' })
                .orWhere((t) =>
                  t
                    .where({ state: 'started' })
                    .whereExists((e) =>
                      e.select(db.raw('1')).from('runs').whereRaw('runs.id = workflow_executions.run_id').whereIn('runs.status', ENDED_RUN_STATUSES),
                    ),
                ),
            )
            .where((s) => s.whereNull('next_attempt_at').orWhere('next_attempt_at', '<=', db.fn.now()))
            .where((s) => s.whereNull('claimed_until').orWhere('claimed_until', '<', db.fn.now())),
        ),
    )
    .orderBy('id')
    .limit(limit)) as Row[];
  return rows.map(toExecution);
}
