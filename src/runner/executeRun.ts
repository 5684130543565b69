/**
 * Carries out one claimed run: the plan's groups one after another (a rolling run), the steps
 * of a group at once, each over a pooled SSH connection; output filtered (secrets masked,
 * redaction rules applied), capped and recorded as it arrives; then the result written through
 * the lifecycle (running -> success | failure | killed). Whatever goes wrong (a host, the link,
 * the database for a while), every step ends, the output is flushed and the task reaches a
 * final state with a message saying why. The output and the result are retried until stored:
 * a database outage delays them, it does not lose or rewrite them. Before each rollout batch the
 * run confirms it is still its runner's, so a runner cut off from the database starts nothing new.
 */
import type { Target } from '../config/config.js';
import { formatDuration } from '../domain/duration.js';
import { OutputCap } from '../domain/outputCap.js';
import { hostLabel } from '../domain/plan.js';
import { fixedValuesToMask } from '../domain/recipe.js';
import type { ExecutionStep, StepPhase } from '../domain/task.js';
import { targetEndpoint, type SshPool } from '../exec/sshPool.js';
import { runSshStep, type StepOutcome } from '../exec/sshStep.js';
import { readStepOutputs, type HostOutputs } from './stepOutputs.js';
import type { Db } from '../store/db.js';
import { finishExecution, finishExecutionStatement, stopRequester, updateStep, type Claimed, type ExecutionResult } from '../store/executions.js';
import { transitionTask, transitionTaskAlong, type Transition } from '../store/tasks.js';
import type { RunObserver } from './observer.js';
import { OutputFilter } from './outputFilter.js';
import { OutputRecorder } from './outputRecorder.js';
import type { ResultWriter } from './resultWriter.js';

export type StopReason = 'kill' | 'shutdown' | 'lease-lost';

export interface RunContext {
  db: Db;
  pool: SshPool;
  target: Target | undefined;
  observer: RunObserver;
  killGraceMs: number;
  outputFlushMs: number;
  /** Stored output per task; shared between its steps. */
  maxOutputBytes: number;
  /** A step started or ended: the views may redraw the card's progress (the caller throttles). */
  onProgress(): void;
  /** Output kept for storage (after masking and the cap), for metrics. */
  onOutputKept?(stream: 'stdout' | 'stderr' | 'system', bytes: number): void;
  onError(error: unknown, context: string): void;
  /** The runner's liveness key, checked when the result is stored; null: not checked. */
  runnerKey?: number | null;
  /** Before each rollout batch (`batch` counts from 0): null to go on, or why the rest is not started. */
  beforeBatch?(stop: AbortSignal, batch: number): Promise<string | null>;
  /** Aborted when shutdown stops waiting: output and result stop being retried. */
  abandon?: AbortSignal;
  /** Shares commits between results that end together; without it each is written on its own. */
  results?: ResultWriter;
}

export interface StepResult {
  step: ExecutionStep;
  phase: StepPhase;
  exitCode: number | null;
  signal: string | null;
  failureMessage: string | null;
}

/**
 * Carries out the run; answers its result once stored, or null if it was not stored (shutdown
 * gave up on it, or the run had been given up as lost while its runner was cut off).
 */
export async function executeRun(
  ctx: RunContext,
  claimed: Claimed,
  stop: AbortSignal,
): Promise<{
  status: Summary['status'];
  durationMs: number;
  /** The result's statement told every process's followers itself. */
  notified: boolean;
} | null> {
  const { task, execution, steps } = claimed;
  const startedAt = Date.now();
  const recorder = new OutputRecorder(ctx.db, execution.id, {
    taskId: task.id,
    flushMs: ctx.outputFlushMs,
    // A flood is written half a megabyte per statement (one commit each), two megabytes at most
    // waiting: measured (bench:compare) as fast as bigger batches, and far lighter on the heap.
    maxBufferBytes: 512 * 1024,
    highWaterBytes: 2 * 1024 * 1024,
    onError: (error) => ctx.onError(error, `storing output of task ${task.id}`),
  });
  const results: StepResult[] = [];
  let failureOverride: string | null = null;
  // A run's script step: each host's $COUNTERSIGN_OUTPUT, merged into the step's outputs at the end.
  const hostOutputs: HostOutputs[] | null = task.runStep ? [] : null;

  const target = ctx.target;
  if (!target) {
    failureOverride = `target \`${task.target}\` is no longer in the config, so nothing was run`;
  } else {
    // The task's cap split between its hosts, so the whole stays within it.
    const capPerStep = Math.max(1024, Math.floor(ctx.maxOutputBytes / Math.max(1, steps.length)));
    const groups = [...new Set(steps.map((s) => s.groupIndex))].sort((a, b) => a - b);
    let haltReason: string | null = null;
    for (const [batch, groupIndex] of groups.entries()) {
      const group = steps.filter((s) => s.groupIndex === groupIndex);
      if (stop.aborted) haltReason = 'not started: the run was stopped';
      if (haltReason === null && ctx.beforeBatch) haltReason = await ctx.beforeBatch(stop, batch);
      if (stop.aborted) haltReason = 'not started: the run was stopped';
      if (haltReason !== null) {
        for (const step of group) results.push(await skipStep(ctx, claimed, step, haltReason));
        continue;
      }
      // runStep never rejects, so one host's trouble cannot orphan its siblings.
      const done = await Promise.all(group.map((step) => runStep(ctx, target, claimed, step, recorder, stop, capPerStep, hostOutputs)));
      results.push(...done);
      if (target.rollout?.stopOnFailure && done.some((r) => r.phase === 'failed')) {
        haltReason = `not started: a host in batch ${groupIndex + 1} failed and the rollout stops on failure`;
      }
    }
  }

  const outputs = hostOutputs
    ? readStepOutputs.merge(hostOutputs, (line) => recorder.write(steps[0]?.id ?? 0, 'system', line), [
        ...(target?.secrets.values() ?? []),
        ...fixedValuesToMask(task.arguments),
      ])
    : null;
  const abandon = ctx.abandon ?? new AbortController().signal;
  const stored = await recorder.close(abandon);
  if (!stored) ctx.onError(new Error('output could not be stored'), `storing the last output of task ${task.id}`);
  const stopReason = stop.aborted ? (stop.reason as StopReason) : undefined;
  const stoppedBy = stopReason === 'kill' ? await stopRequester(ctx.db, execution.id).catch(() => null) : null;
  const summary = summarise(results, stopReason, stoppedBy, failureOverride);
  const durationMs = Date.now() - startedAt;
  const run: ExecutionResult = {
    executionId: execution.id,
    runnerKey: ctx.runnerKey ?? null,
    outcome: { phase: summary.executionPhase, exitCode: summary.exitCode, failureMessage: summary.failureMessage },
    steps: results.map((r) => ({ stepId: r.step.id, phase: r.phase, exitCode: r.exitCode, signal: r.signal, failureMessage: r.failureMessage })),
  };
  const end: Transition = {
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
      finished_at: ctx.db.fn.now() as unknown as Date,
      ...(outputs ? { outputs } : {}),
    },
  };
  // The one write that must land: retried until stored, whatever the outage; only shutdown gives up.
  const notified = !task.runStep;
  const written = await untilStored(ctx, `storing the result of task ${task.id}`, abandon, async () => {
    const runStep = task.runStep;
    if (runStep) {
      // A run's step: one transaction with the run's row locked first (the order the run engine
      // locks in), so the run's step moves with its task (transitionTask).
      return ctx.db.transaction(async (trx) => {
        await trx('runs').where({ id: runStep.runId }).forUpdate().first('id');
        if (!(await finishExecution(trx, run))) return false;
        await transitionTask(trx, end);
        return true;
      });
    }
    // Otherwise one statement: the run's result, its steps settled, the task's transition and
    // the NOTIFY that tells other processes' followers.
    if (ctx.results) return ctx.results.write(run, end);
    return (await transitionTaskAlong(ctx.db, end, finishExecutionStatement(run), { notifyChanged: true })).along;
  });
  if (written === 'taken') {
    ctx.onError(
      new Error(`the run had been given up as lost while its runner was cut off from the database; its own result (${summary.status}) was not stored`),
      `storing the result of task ${task.id}`,
    );
  }
  if (written !== 'stored') return null;
  void ctx.observer.runFinished(task.id, execution.id);
  return { status: summary.status, durationMs, notified };
}

async function skipStep(ctx: RunContext, claimed: Claimed, step: ExecutionStep, reason: string): Promise<StepResult> {
  await guard(ctx, `marking a step of task ${claimed.task.id} skipped`, () =>
    updateStep(ctx.db, claimed.execution.id, step.id, { phase: 'skipped', failureMessage: reason, finished: true }),
  );
  return { step, phase: 'skipped', exitCode: null, signal: null, failureMessage: reason };
}

async function runStep(
  ctx: RunContext,
  target: Target,
  claimed: Claimed,
  step: ExecutionStep,
  recorder: OutputRecorder,
  stop: AbortSignal,
  capBytes: number,
  hostOutputs: HostOutputs[] | null = null,
): Promise<StepResult> {
  const address = { host: step.host, port: step.port, user: step.user };
  const label = claimed.steps.length > 1 ? hostLabel(address) : null;
  const { task, execution } = claimed;
  const cap = new OutputCap(capBytes, Math.min(256 * 1024, Math.floor(capBytes / 4)));
  /** Filtered output: shown to the views as is, stored within the cap; our own messages always stored. */
  const emit = (stream: 'stdout' | 'stderr' | 'system', raw: string) => {
    // Postgres text cannot hold NUL: it is stored as U+FFFD (3 bytes), so it is replaced before
    // the cap counts it, or a run of NULs would be stored at three times the cap.
    const text = raw.includes('\u0000') ? raw.replace(/\u0000/g, '\uFFFD') : raw;
    const kept = stream === 'system' ? text : cap.accept(text);
    if (kept !== '') {
      recorder.write(step.id, stream, kept);
      ctx.onOutputKept?.(stream, Buffer.byteLength(kept));
    }
    ctx.observer.output(task.id, execution.id, label, stream, text);
  };
  // A recipe's fixed values are secrets too: masked wherever output goes (stored, Slack, API, page).
  const secrets = [...target.secrets.values(), ...fixedValuesToMask(task.arguments)];
  const filters = {
    stdout: new OutputFilter(secrets, target.redact, (text) => emit('stdout', text)),
    stderr: new OutputFilter(secrets, target.redact, (text) => emit('stderr', text)),
  };
  // One host: the result's own write settles the step, and the card has no per-host progress to show.
  const alone = claimed.steps.length === 1;
  let result: StepResult;
  try {
    // The claim writes the first batch's steps running already; a later batch's are marked as they start.
    if (step.phase === 'pending') {
      await guard(ctx, `marking a step of task ${task.id} running`, () => updateStep(ctx.db, execution.id, step.id, { phase: 'running', started: true }));
    }
    const endpoint = targetEndpoint(target, address);
    if (!alone) ctx.onProgress();
    const outcome = await runSshStep({
      pool: ctx.pool,
      endpoint,
      type: task.type,
      script: task.script,
      secrets: target.secrets,
      // A recipe's arguments: "$1"... in declared order and ARG_<NAME>, on stdin like the secrets.
      args: (task.arguments ?? []).map((arg) => ({ name: arg.name.toUpperCase(), value: arg.value })),
      runAs: target.runAs,
      token: step.runToken,
      runTimeoutMs: target.timeoutMs,
      killGraceMs: ctx.killGraceMs,
      stop,
      outputFile: hostOutputs !== null,
      onOutput: (stream, text) => {
        filters[stream].push(text);
        return recorder.hasRoom();
      },
      drained: () => recorder.drained(),
    });
    result = stepResult(step, outcome, target.timeoutMs, stop);
    if (hostOutputs && outcome.kind === 'exited')
      hostOutputs.push(await readStepOutputs.fromHost({ pool: ctx.pool, endpoint, token: step.runToken, runAs: target.runAs }, (line) => emit('system', line)));
  } catch (error) {
    ctx.onError(error, `running a step of task ${task.id}`);
    result = { step, phase: 'failed', exitCode: null, signal: null, failureMessage: `countersign failed while running it: ${(error as Error).message}` };
  }
  filters.stdout.end();
  filters.stderr.end();
  if (result.failureMessage !== null) emit('system', `countersign: ${label ? `${label}: ` : ''}${result.failureMessage}\n`);
  const tail = cap.finish();
  if (tail !== '') recorder.write(step.id, 'stdout', tail);
  if (!alone) {
    await guard(ctx, `storing a step result of task ${task.id}`, () =>
      updateStep(ctx.db, execution.id, step.id, {
        phase: result.phase,
        exitCode: result.exitCode,
        signal: result.signal,
        failureMessage: result.failureMessage,
        finished: true,
      }),
    );
    ctx.onProgress();
  }
  return result;
}

export function stepResult(step: ExecutionStep, outcome: StepOutcome, timeoutMs: number, stop: AbortSignal): StepResult {
  const timedOut = `timed out after ${formatDuration(timeoutMs)} and was stopped`;
  if (outcome.kind === 'failed') {
    // Stopped before the script could start: a kill, not a failure of the host.
    if (!outcome.ran && stop.aborted && stop.reason === 'kill') return { step, phase: 'killed', exitCode: null, signal: null, failureMessage: null };
    if (outcome.timedOut) return { step, phase: 'failed', exitCode: null, signal: null, failureMessage: timedOut };
    return { step, phase: 'failed', exitCode: null, signal: null, failureMessage: outcome.message };
  }
  const survivors = outcome.survivors > 0 ? ` (${outcome.survivors} of its processes survived KILL: check ${hostLabel(step)} by hand)` : '';
  if (outcome.timedOut) return { step, phase: 'failed', exitCode: outcome.exitCode, signal: outcome.signal, failureMessage: `${timedOut}${survivors}` };
  if (outcome.stopped)
    return { step, phase: 'killed', exitCode: outcome.exitCode, signal: outcome.signal, failureMessage: survivors === '' ? null : survivors.trim() };
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
export function summarise(
  results: readonly StepResult[],
  stopReason: StopReason | undefined,
  stopRequestedBy: string | null,
  failureOverride: string | null = null,
): Summary {
  const exitCode =
    results.length === 1
      ? (results[0]?.exitCode ?? null)
      : (results.find((r) => r.exitCode !== 0 && r.exitCode !== null)?.exitCode ?? (results.length > 0 && results.every((r) => r.exitCode === 0) ? 0 : null));
  const signal = results.find((r) => r.signal !== null)?.signal ?? null;
  if (failureOverride !== null) return { status: 'failure', executionPhase: 'failed', exitCode: null, signal: null, failureMessage: failureOverride };
  if (stopReason === 'kill' && results.some((r) => r.phase === 'killed' || r.phase === 'skipped')) {
    return { status: 'killed', executionPhase: 'killed', exitCode, signal, failureMessage: stopRequestedBy ? `killed by <@${stopRequestedBy}>` : 'killed' };
  }
  if (results.length > 0 && results.every((r) => r.phase === 'succeeded')) {
    return { status: 'success', executionPhase: 'succeeded', exitCode: 0, signal: null, failureMessage: null };
  }
  const failed = results.filter((r) => r.phase === 'failed' || r.phase === 'killed');
  const skipped = results.filter((r) => r.phase === 'skipped').length;
  // Only a stop that cut something short is the reason; a run that failed on its own says why.
  const interrupted = results.some((r) => r.phase === 'killed' || r.phase === 'skipped');
  let failureMessage: string;
  if (results.length === 0) failureMessage = 'the target has no hosts, so nothing was run';
  else if (stopReason === 'shutdown' && interrupted) failureMessage = 'interrupted: countersign shut down while it ran';
  else if (stopReason === 'lease-lost' && interrupted) failureMessage = 'interrupted: this runner lost its lease on the run';
  else if (results.length === 1) failureMessage = results[0]?.failureMessage ?? 'failed';
  else {
    const first = failed[0]?.failureMessage ?? 'failed';
    const where = failed[0] ? `${hostLabel(failed[0].step)}: ` : '';
    failureMessage = `${failed.length} of ${results.length} hosts failed${skipped > 0 ? `, ${skipped} not started` : ''} (${where}${first})`;
  }
  return { status: 'failure', executionPhase: 'failed', exitCode, signal, failureMessage };
}

/** Runs a bookkeeping write, logging instead of throwing: the run goes on without it. */
async function guard(ctx: RunContext, context: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (error) {
    ctx.onError(error, context);
  }
}

/**
 * Runs `write` until it succeeds, backing off up to 5 s between tries; stops only when `abandon`
 * aborts. `write` answers false when the run is no longer ours to write ("taken").
 */
async function untilStored(ctx: RunContext, context: string, abandon: AbortSignal, write: () => Promise<boolean>): Promise<'stored' | 'taken' | 'abandoned'> {
  for (let attempt = 1; ; attempt++) {
    if (abandon.aborted) return 'abandoned';
    try {
      return (await write()) ? 'stored' : 'taken';
    } catch (error) {
      ctx.onError(error, `${context} (attempt ${attempt}; retrying until it is stored)`);
      await abortableSleep(Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 5)), abandon);
    }
  }
}

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
