/**
 * Carries out the actions src/domain/runDecision.ts decided, inside the advancer's transaction
 * (the run's row held). Each change goes through the guarded transitions (transitionRun,
 * transitionRunStep, transitionTask), so a replica that decided the same a moment later changes
 * nothing. What must happen after commit (an http request, waking views) is returned.
 *
 *   script step   its values resolved (arguments and `with`, as "$1".. and ARG_<NAME>), then a
 *                 task inserted as `ready` for the runner: source `run`, no card or review of its
 *                 own, idempotent on the step (source_key `run-step:<id>`)
 *   http step     its request resolved (URL parts encoded, headers checked, the target's secrets),
 *                 then owned by this process: runner id and key, a lease; run after commit
 *   approval, input  paused, with the deadline the step gives
 *   stop          a queued task is killed, a running one gets a stop request; an http step's
 *                 owner is told to abort (NOTIFY)
 */
import type { Knex } from 'knex';
import type { Config } from '../config/config.js';
import type { RunAction } from '../domain/runDecision.js';
import type { Run, RunStep } from '../domain/run.js';
import { resolveHttpStep, resolveScriptStep, type HttpRequestSpec, type PlannedStep, type RunValues, type StepValues } from '../domain/runbook/index.js';
import { markFixedCopies, type TaskArgument } from '../domain/recipe.js';
import { appendEvent } from '../store/events.js';
import { requestStop, runningExecutionFor } from '../store/executions.js';
import { notify } from '../store/notify.js';
import { CHANNEL_RUN_STEP_STOP, transitionRun, transitionRunStep } from '../store/runs.js';
import { getTask, insertTask, transitionTask } from '../store/tasks.js';

/** An http step this process now owns: run it after commit. */
export interface OwnedHttpStep {
  runId: number;
  stepRowId: number;
  stepId: string;
  request: HttpRequestSpec;
  target: string | null;
  maskValues: string[];
}

export interface AppliedActions {
  /** Something changed that may let the run go further in the same transaction. */
  progressed: boolean;
  http: OwnedHttpStep[];
  /** Executions asked to stop (the in-process runner hears it at once). */
  stopExecutions: number[];
  /** Script steps' tasks made ready (the in-process runner claims at once). */
  readyTasks: number[];
  finished: Run | null;
}

export interface ActionContext {
  config: Config;
  runner: { id: string; key: number; leaseMs: number };
}

export async function applyActions(
  trx: Knex.Transaction,
  ctx: ActionContext,
  run: Run,
  steps: readonly RunStep[],
  actions: readonly RunAction[],
): Promise<AppliedActions> {
  const out: AppliedActions = { progressed: false, http: [], stopExecutions: [], readyTasks: [], finished: null };
  const byId = new Map(steps.map((s) => [s.id, s]));
  const values = runValues(run, steps);
  for (const action of actions) {
    if (action.kind === 'start-run') {
      if (await transitionRun(trx, { runId: run.id, from: 'ready', to: 'running', actor: null, set: { started_at: trx.fn.now() as unknown as Date } }))
        out.progressed = true;
      continue;
    }
    if (action.kind === 'finish-run') {
      out.finished = await transitionRun(trx, {
        runId: run.id,
        from: 'running',
        to: action.status,
        actor: null,
        set: {
          failure_message: action.status === 'killed' ? (run.stopRequestedBy ? `killed by <@${run.stopRequestedBy}>` : 'killed') : action.reason,
          finished_at: trx.fn.now() as unknown as Date,
        },
      });
      continue;
    }
    const step = byId.get(action.step);
    if (!step) continue;
    if (action.kind === 'skip-step') {
      if (await transitionRunStep(trx, { stepId: step.id, from: 'pending', to: 'skipped', actor: null, set: { failure_message: action.reason } }))
        out.progressed = true;
    } else if (action.kind === 'end-step') {
      if (await transitionRunStep(trx, { stepId: step.id, from: 'paused', to: action.phase, actor: null, set: { failure_message: action.reason } }))
        out.progressed = true;
    } else if (action.kind === 'stop-step') {
      await stopStep(trx, run, step, out);
    } else {
      const planned = plannedStep(run, step.stepId);
      if (!planned) {
        await failAtStart(trx, step, "the step is missing from the run's plan");
        out.progressed = true;
        continue;
      }
      await startStep(trx, ctx, run, step, planned, values, out);
    }
  }
  return out;
}

/** What later steps may reference: the run's arguments and every finished step's values. */
export function runValues(run: Run, steps: readonly RunStep[]): RunValues {
  const stepValues: Record<string, StepValues> = {};
  for (const step of steps) {
    if (step.phase === 'succeeded' || step.phase === 'failed' || step.phase === 'skipped' || step.phase === 'killed') {
      stepValues[step.stepId] = { phase: step.phase, ...(step.values ?? {}) };
    }
  }
  return { arguments: run.arguments, steps: stepValues };
}

export function plannedStep(run: Run, stepId: string): PlannedStep | null {
  for (const group of run.plan.groups) for (const step of group) if (step.id === stepId) return step;
  return null;
}

async function failAtStart(trx: Knex.Transaction, step: RunStep, reason: string): Promise<void> {
  await transitionRunStep(trx, { stepId: step.id, from: 'pending', to: 'failed', actor: null, set: { failure_message: reason } });
}

async function startStep(
  trx: Knex.Transaction,
  ctx: ActionContext,
  run: Run,
  step: RunStep,
  planned: PlannedStep,
  values: RunValues,
  out: AppliedActions,
): Promise<void> {
  if (planned.kind === 'approval' || planned.kind === 'input') {
    const timeoutMs = planned.kind === 'approval' ? planned.approval.timeoutMs : planned.input.timeoutMs;
    const paused = await transitionRunStep(trx, {
      stepId: step.id,
      from: 'pending',
      to: 'paused',
      actor: null,
      set: { timeout_at: timeoutMs === null ? null : (trx.raw('now() + make_interval(secs => ?)', [timeoutMs / 1000]) as unknown as Date) },
    });
    if (paused) out.progressed = true;
    return;
  }
  if (planned.kind === 'http') {
    const target = planned.http.target === null ? null : ctx.config.targets.get(planned.http.target);
    if (planned.http.target !== null && !target) {
      await failAtStart(trx, step, `the target ${planned.http.target} is no longer in the config`);
      out.progressed = true;
      return;
    }
    const resolved = resolveHttpStep(planned, values, target?.secrets ?? new Map());
    if (!resolved.ok) {
      await failAtStart(trx, step, resolved.error);
      out.progressed = true;
      return;
    }
    const owned = await transitionRunStep(trx, {
      stepId: step.id,
      from: 'pending',
      to: 'running',
      actor: null,
      set: {
        runner_id: ctx.runner.id,
        runner_key: ctx.runner.key,
        lease_until: trx.raw('now() + make_interval(secs => ?)', [ctx.runner.leaseMs / 1000]) as unknown as Date,
      },
    });
    if (owned) {
      out.progressed = true;
      out.http.push({
        runId: run.id,
        stepRowId: step.id,
        stepId: step.stepId,
        request: resolved.request,
        target: planned.http.target,
        maskValues: resolved.maskValues,
      });
    }
    return;
  }
  const script = planned.script;
  const target = ctx.config.targets.get(script.target);
  if (!target) {
    await failAtStart(trx, step, `the target ${script.target} is no longer in the config`);
    out.progressed = true;
    return;
  }
  const resolved = resolveScriptStep(planned, values);
  if (!resolved.ok) {
    await failAtStart(trx, step, resolved.error);
    out.progressed = true;
    return;
  }
  // Fixed arguments stay fixed (never shown, masked in the step's output), and so does every value
  // made from one (a `with` template reading a fixed argument) or holding one (an output that echoed it).
  const args: TaskArgument[] = markFixedCopies(resolved.arguments.map((a) => ({ name: a.name, kind: a.fixed ? 'fixed' : 'input', value: a.value })));
  const inserted = await insertTask(trx, {
    author: run.creator,
    target: target.name,
    type: script.type,
    script: script.script,
    message: run.message ?? `${run.reference} › ${planned.id}`,
    source: 'run',
    sourceKey: `run-step:${step.id}`,
    channelId: null,
    reviewChannel: null,
    arguments: args,
    runStep: { runId: run.id, stepId: step.id },
  });
  if (!inserted.created) return;
  const running = await transitionRunStep(trx, {
    stepId: step.id,
    from: 'pending',
    to: 'running',
    actor: null,
    data: { task: inserted.task.id },
    set: { task_id: inserted.task.id },
  });
  if (!running) throw new Error(`run step ${step.id} changed under its run's lock`);
  await appendEvent(trx, {
    taskId: inserted.task.id,
    type: 'task.created',
    actor: run.creator,
    data: { target: target.name, type: script.type, source: 'run', run: run.id, step: planned.id, contentVersion: inserted.task.contentVersion },
  });
  await transitionTask(trx, { taskId: inserted.task.id, from: 'created', to: 'ready', actor: null, data: { run: run.id, step: planned.id } });
  out.readyTasks.push(inserted.task.id);
  out.progressed = true;
}

async function stopStep(trx: Knex.Transaction, run: Run, step: RunStep, out: AppliedActions): Promise<void> {
  const who = run.stopRequestedBy ?? 'countersign';
  if (step.kind === 'http') {
    await notify(trx, CHANNEL_RUN_STEP_STOP, String(step.id));
    return;
  }
  if (step.kind !== 'script' || step.taskId === null) return;
  let task = await getTask(trx, step.taskId);
  if (!task) return;
  if (task.status === 'ready') {
    const killed = await transitionTask(trx, {
      taskId: task.id,
      from: 'ready',
      to: 'killed',
      actor: who,
      set: { failure_message: `killed by <@${who}> before it started`, finished_at: trx.fn.now() as unknown as Date },
    });
    if (killed) {
      out.progressed = true;
      return;
    }
    // A runner claimed it meanwhile: stop it running instead.
    task = await getTask(trx, step.taskId);
  }
  if (task?.status !== 'running') return;
  const execution = await runningExecutionFor(trx, task.id);
  if (execution && execution.desiredPhase === null && (await requestStop(trx, execution.id, task.id, who))) out.stopExecutions.push(execution.id);
}
