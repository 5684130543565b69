/**
 * Task rows. Status changes go only through `transitionTask`: the one place that checks the
 * lifecycle, guards the change in SQL and writes the audit event in the same transaction.
 */
import { assertTransition, isTerminal, transitionEventType, type TaskStatus } from '../domain/lifecycle.js';
import type { RunStepPhase } from '../domain/run.js';

/** A run step's phase when its task ends. */
const STEP_PHASE_OF: Partial<Record<TaskStatus, RunStepPhase>> = { success: 'succeeded', failure: 'failed', killed: 'killed', cancelled: 'killed', rejected: 'failed' };
import type { ScriptType } from '../domain/scriptTypes.js';
import type { Task, TaskSource } from '../domain/task.js';
import { contentVersion, type RecipeRef } from '../domain/contentVersion.js';
import { contentKey } from './contentKey.js';
import { inTransaction, type Queryable } from './db.js';
import { appendEvent } from './events.js';
import { CHANNEL_READY, notify } from './notify.js';
import { toTask, type TaskRow } from './rows.js';
import { transitionRunStep } from './runs.js';

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
  /** A grace delay: run_after is set from the database's clock, the one the claim compares with. */
  delayMs?: number | null;
  /** A recipe's arguments (migration 006), stored as jsonb. */
  arguments?: Array<{ name: string; kind: 'fixed' | 'options' | 'input'; value: string }> | null;
  /** Started from a recipe: its name and definition hash (part of the content version). */
  recipe?: RecipeRef | null;
  /** A run's script step (migration 013): the task runs it; no card or review of its own. */
  runStep?: { runId: number; stepId: number } | null;
}

/** Inserts a task in `created`; when `sourceKey` was seen before, returns that task instead. */
export async function insertTask(db: Queryable, task: NewTask): Promise<{ task: Task; created: boolean }> {
  const recipe = task.recipe ?? null;
  const version = contentVersion({ target: task.target, type: task.type, script: task.script, message: task.message, arguments: task.arguments ?? null, recipe }, await contentKey(db));
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
      run_after: task.delayMs ? (db.raw('now() + make_interval(secs => ?)', [task.delayMs / 1000]) as unknown as Date) : null,
      ...(task.arguments ? { arguments: JSON.stringify(task.arguments) as unknown as TaskRow['arguments'] } : {}),
      content_version: version,
      recipe_name: recipe?.name ?? null,
      recipe_hash: recipe?.hash ?? null,
      run_id: task.runStep?.runId ?? null,
      run_step_id: task.runStep?.stepId ?? null,
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

/**
 * Changes the message or script of a task (the caller holds its row lock and has checked it may
 * be edited) and gives it its new content version: every approval drawn before is void. The
 * review request is redrawn (view_version), its script uploaded again if it had to be.
 */
export async function updateTaskContent(db: Queryable, task: Task, change: { message?: string | null; script?: string }): Promise<Task> {
  const message = change.message !== undefined ? change.message : task.message;
  const script = change.script ?? task.script;
  // An edited script is no longer the recipe's: the task stops claiming to be "from recipe X".
  const recipe = script === task.script ? task.recipe : null;
  const version = contentVersion({ target: task.target, type: task.type, script, message, arguments: task.arguments ?? null, recipe }, await contentKey(db));
  const [row] = await db<TaskRow>('tasks')
    .where({ id: task.id, content_version: task.contentVersion })
    .update(
      {
        message,
        script,
        content_version: version,
        recipe_name: recipe?.name ?? null,
        recipe_hash: recipe?.hash ?? null,
        ...(script !== task.script ? { review_script_posted: false } : {}),
        view_version: db.raw('view_version + 1') as unknown as number,
      },
      '*',
    );
  if (!row) throw new Error(`task ${task.id} changed under its row lock`);
  return toTask(row);
}

type TaskColumns = Omit<Partial<TaskRow>, 'id' | 'status' | 'status_changed_at' | 'created_at' | 'view_version'>;

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
    // A run's step ends with its task: its run's row first, the lock order every run change keeps
    // (src/store/runs.ts). Other transitions (the runner's claim) leave the run alone.
    if (isTerminal(change.to)) {
      const link = await trx<TaskRow>('tasks').where({ id: change.taskId }).first('run_id');
      if (link?.run_id) await trx('runs').where({ id: link.run_id }).forUpdate().first('id');
    }
    const current = await trx<TaskRow>('tasks').where({ id: change.taskId }).forUpdate().first('status');
    if (!current || !allowedFrom.includes(current.status)) return null;
    const [row] = await trx<TaskRow>('tasks')
      .where({ id: change.taskId, status: current.status })
      .update(
        {
          ...change.set,
          status: change.to,
          status_changed_at: trx.fn.now() as unknown as Date,
          view_version: trx.raw('view_version + 1') as unknown as number,
        },
        '*',
      );
    if (!row) return null;
    await appendEvent(trx, {
      taskId: change.taskId,
      type: transitionEventType(change.to),
      actor: change.actor,
      data: { from: current.status, ...change.data },
    });
    // Every process's runner hears of a ready task at commit, not at its next poll.
    if (change.to === 'ready') await notify(trx, CHANNEL_READY, String(change.taskId));
    // A run's script step ends with its task, in the same transaction: the run never waits on a lost update.
    if (row.run_step_id && isTerminal(change.to)) {
      const outputs = row.outputs as { outputs?: Record<string, string> } | null | undefined;
      await transitionRunStep(trx, {
        stepId: row.run_step_id,
        from: ['running'],
        to: STEP_PHASE_OF[change.to] ?? 'failed',
        actor: change.actor,
        data: { task: row.id },
        set: { outputs: outputs?.outputs ? { outputs: outputs.outputs } : null, failure_message: change.to === 'success' ? null : (row.failure_message ?? `the task ended ${change.to}`) },
      });
    }
    return toTask(row);
  });
}

/** A change that shows on the task's messages without changing its status (a review, a step). */
export async function bumpViewVersion(db: Queryable, taskId: number): Promise<void> {
  await db('tasks').where({ id: taskId }).increment('view_version', 1);
}
