/**
 * Carries out one claimed run: the plan's groups one after another, the steps of a group at
 * once, each over SSH; output recorded as it arrives; then the result written through the
 * lifecycle (running -> success | failure | killed). Whatever goes wrong, the task ends in a
 * final state with a message saying why.
 */
import type { Target } from '../config/config.js';
import { formatDuration } from '../domain/duration.js';
import { hostLabel } from '../domain/plan.js';
import type { ExecutionStep, StepPhase } from '../domain/task.js';
import { runSshStep, type StepOutcome } from '../exec/sshStep.js';
import type { Db } from '../store/db.js';
import { finishExecution, stopRequester, updateStep, type Claimed } from '../store/executions.js';
import { transitionTask } from '../store/tasks.js';
import type { RunObserver } from './observer.js';
import { OutputRecorder } from './outputRecorder.js';

export type StopReason = 'kill' | 'shutdown' | 'lease-lost';

export interface RunContext {
  db: Db;
  target: Target | undefined;
  observer: RunObserver;
  connectTimeoutMs: number;
  killGraceMs: number;
  outputFlushMs: number;
  onError(error: unknown, context: string): void;
}

interface StepResult {
  step: ExecutionStep;
  phase: StepPhase;
  exitCode: number | null;
  signal: string | null;
  failureMessage: string | null;
}

export async function executeRun(ctx: RunContext, claimed: Claimed, stop: AbortSignal): Promise<void> {
  const { task, execution, steps } = claimed;
  const startedAt = Date.now();
  const recorder = new OutputRecorder(ctx.db, execution.id, {
    flushMs: ctx.outputFlushMs,
    maxBufferBytes: 256 * 1024,
    onError: (error) => ctx.onError(error, `storing output of task ${task.id}`),
  });
  const labelled = steps.length > 1;
  const results: StepResult[] = [];

  const target = ctx.target;
  if (!target) {
    const message = `target \`${task.target}\` is no longer in the config, so nothing was run`;
    for (const step of steps) results.push({ step, phase: 'skipped', exitCode: null, signal: null, failureMessage: message });
  } else {
    const groups = [...new Set(steps.map((s) => s.groupIndex))].sort((a, b) => a - b);
    for (const groupIndex of groups) {
      const group = steps.filter((s) => s.groupIndex === groupIndex);
      if (stop.aborted) {
        for (const step of group) results.push({ step, phase: 'skipped', exitCode: null, signal: null, failureMessage: 'not started: the run was stopped' });
        continue;
      }
      results.push(...(await Promise.all(group.map((step) => runStep(ctx, target, claimed, step, labelled, recorder, stop)))));
    }
  }

  await recorder.flush();
  const stoppedBy = stop.aborted ? await stopRequester(ctx.db, execution.id).catch(() => null) : null;
  const summary = summarise(results, stop.reason as StopReason | undefined, stoppedBy);
  const durationMs = Date.now() - startedAt;
  try {
    await ctx.db.transaction(async (trx) => {
      await finishExecution(trx, execution.id, { phase: summary.executionPhase, exitCode: summary.exitCode, failureMessage: summary.failureMessage });
      await transitionTask(trx, {
        taskId: task.id,
        from: 'running',
        to: summary.status,
        actor: null,
        data: { exitCode: summary.exitCode, durationMs, execution: execution.id },
        set: {
          exit_code: summary.exitCode,
          signal: summary.signal,
          duration_ms: durationMs,
          failure_message: summary.failureMessage,
          last_line: recorder.lastLine,
          finished_at: trx.fn.now() as unknown as Date,
        },
      });
    });
  } catch (error) {
    // The lease sweeper will end the task as "runner lost" if this write never lands.
    ctx.onError(error, `storing the result of task ${task.id}`);
  }
  await ctx.observer.runFinished(task.id, execution.id).catch((error) => ctx.onError(error, `reporting the end of task ${task.id}`));
}

async function runStep(
  ctx: RunContext,
  target: Target,
  claimed: Claimed,
  step: ExecutionStep,
  labelled: boolean,
  recorder: OutputRecorder,
  stop: AbortSignal,
): Promise<StepResult> {
  const address = { host: step.host, port: step.port, user: step.user };
  const label = labelled ? hostLabel(address) : null;
  const { task, execution } = claimed;
  await updateStep(ctx.db, execution.id, step.id, { phase: 'running', started: true });
  const outcome = await runSshStep({
    address,
    privateKey: target.privateKey,
    knownHosts: target.knownHosts,
    type: task.type,
    script: task.script,
    connectTimeoutMs: Math.min(ctx.connectTimeoutMs, target.timeoutMs),
    runTimeoutMs: target.timeoutMs,
    killGraceMs: ctx.killGraceMs,
    stop,
    onOutput: (stream, text) => {
      recorder.write(step.id, stream, text);
      ctx.observer.output(task.id, execution.id, label, stream, text);
    },
  });
  const result = stepResult(step, outcome, target.timeoutMs);
  if (result.failureMessage !== null) {
    const line = `countersign: ${label ? `${label}: ` : ''}${result.failureMessage}\n`;
    recorder.write(step.id, 'system', line);
    ctx.observer.output(task.id, execution.id, label, 'system', line);
  }
  await updateStep(ctx.db, execution.id, step.id, {
    phase: result.phase,
    exitCode: result.exitCode,
    signal: result.signal,
    failureMessage: result.failureMessage,
    finished: true,
  });
  return result;
}

function stepResult(step: ExecutionStep, outcome: StepOutcome, timeoutMs: number): StepResult {
  if (outcome.kind === 'failed') {
    return { step, phase: 'failed', exitCode: null, signal: null, failureMessage: outcome.message };
  }
  if (outcome.timedOut) {
    return { step, phase: 'failed', exitCode: outcome.exitCode, signal: outcome.signal, failureMessage: `timed out after ${formatDuration(timeoutMs)} and was stopped` };
  }
  if (outcome.stopped) return { step, phase: 'killed', exitCode: outcome.exitCode, signal: outcome.signal, failureMessage: null };
  if (outcome.exitCode === 0) return { step, phase: 'succeeded', exitCode: 0, signal: null, failureMessage: null };
  const why = outcome.signal ? `ended by signal ${outcome.signal}` : `exited with code ${outcome.exitCode}`;
  return { step, phase: 'failed', exitCode: outcome.exitCode, signal: outcome.signal, failureMessage: `the script ${why}` };
}

interface Summary {
  status: 'success' | 'failure' | 'killed';
  executionPhase: 'succeeded' | 'failed' | 'killed';
  exitCode: number | null;
  signal: string | null;
  failureMessage: string | null;
}

/** The task's result sums its steps: success only if every step succeeded. */
export function summarise(results: readonly StepResult[], stopReason: StopReason | undefined, stopRequestedBy: string | null): Summary {
  const exitCode = results.length === 1 ? (results[0]?.exitCode ?? null) : (results.find((r) => r.exitCode !== 0 && r.exitCode !== null)?.exitCode ?? (results.every((r) => r.exitCode === 0) ? 0 : null));
  const signal = results.find((r) => r.signal !== null)?.signal ?? null;
  if (stopReason === 'kill' && results.some((r) => r.phase === 'killed' || r.phase === 'skipped')) {
    return { status: 'killed', executionPhase: 'killed', exitCode, signal, failureMessage: stopRequestedBy ? `killed by <@${stopRequestedBy}>` : 'killed' };
  }
  if (results.length > 0 && results.every((r) => r.phase === 'succeeded')) {
    return { status: 'success', executionPhase: 'succeeded', exitCode: 0, signal: null, failureMessage: null };
  }
  const failed = results.filter((r) => r.phase !== 'succeeded');
  let failureMessage: string;
  if (stopReason === 'shutdown') failureMessage = 'interrupted: countersign shut down while it ran';
  else if (stopReason === 'lease-lost') failureMessage = 'interrupted: this runner lost its lease on the run';
  else if (results.length === 1) failureMessage = failed[0]?.failureMessage ?? 'failed';
  else failureMessage = `${failed.length} of ${results.length} hosts failed: ${failed[0]?.failureMessage ?? 'failed'}`;
  return { status: 'failure', executionPhase: 'failed', exitCode, signal, failureMessage };
}
