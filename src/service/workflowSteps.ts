/**
 * The Workflow Builder step's executions (issue 13): each `function_executed` is stored before it
 * is acknowledged, started once as a run in the name of the person who ran the workflow, and
 * completed once when the run ends, whichever process sees the end (its own engine, another
 * replica's NOTIFY, or the reconciler after a restart).
 *
 *   receive   store the execution (a second delivery finds the first): before Slack's ack, so an
 *             execution Slack thinks delivered is never lost
 *   advance   start it: RunbookService.start with trigger { kind: 'workflow' } (reviewed as any
 *             start; a recipe as a one-step run), or record why not; a refusal completes at once
 *   complete  when its run has ended: claim the completion (a lease in Postgres), send it with the
 *             bot token, record what Slack said; a failure is retried later by any process
 *
 * Exactly once: the claim is a guarded UPDATE, so one process sends at a time; if it dies after
 * Slack took the completion but before recording it, the next attempt gets Slack's
 * `execution_not_in_running_state` and records the execution as completed.
 */
import type { Logger } from '../log.js';
import { isRunTerminal, type Run } from '../domain/run.js';
import { MAX_MESSAGE_CHARS } from '../domain/command.js';
import {
  checkStepRequest,
  MAX_ARGUMENTS_CHARS,
  MAX_REFERENCE_CHARS,
  readStepInputs,
  refusalCompletion,
  runCompletion,
  type StepCompletion,
} from '../domain/workflowStep.js';
import type { Db } from '../store/db.js';
import { getRun } from '../store/runs.js';
import {
  claimCompletion,
  finishCompletion,
  getExecution,
  markRefused,
  markStarted,
  openExecutionsOfRun,
  pendingExecutions,
  receiveExecution,
  releaseCompletion,
  type WorkflowExecution,
} from '../store/workflowExecutions.js';
import type { RunbookService } from './runbooks.js';

/** What Slack answered a completion: taken, or the execution is over (or never was) on Slack's side. */
export type CompletionOutcome = { outcome: 'sent' } | { outcome: 'gone' | 'invalid'; error: string };

/** Sends completions to Slack; throws when the call should be tried again later (network, 429, 5xx, auth). */
export interface StepCompleter {
  complete(functionExecutionId: string, completion: StepCompletion): Promise<CompletionOutcome>;
}

/** A call Slack asked us to repeat after a while (429). */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = 'RetryLater';
  }
}

/** The parts of a function_executed event the step reads. */
export interface FunctionExecutedEvent {
  function_execution_id: string;
  workflow_execution_id?: string;
  function: { callback_id: string };
  inputs?: unknown;
}

export interface WorkflowStepsOptions {
  /** This process, as it names itself in claims (the runner id). */
  claimant: string;
  /** The run's address for the `link` output when its card has no permalink. */
  runUrl(runId: number): string;
  /** The run card's permalink (chat.getPermalink); absent or failing: runUrl. */
  permalink?(channel: string, messageTs: string): Promise<string>;
  /** How long a claimed completion is ours (longer than a Slack call may take). */
  leaseMs?: number;
  /** How long a received execution may wait for its start before the reconciler starts it. */
  staleMs?: number;
  /** How often executions left behind are looked for. */
  reconcileMs?: number;
  /** First wait after a failed completion; doubles per attempt up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

const RECONCILE_BATCH = 100;

export class WorkflowSteps {
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Map<number, Promise<void>>();
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly runbooks: RunbookService,
    private readonly completer: StepCompleter,
    private readonly log: Logger,
    private readonly options: WorkflowStepsOptions,
  ) {}

  /** Stores an execution (call before acknowledging it); a redelivery answers the stored one. */
  async receive(event: FunctionExecutedEvent): Promise<WorkflowExecution> {
    const request = readStepInputs(event.inputs);
    const { execution, created } = await receiveExecution(this.db, {
      functionExecutionId: event.function_execution_id,
      workflowExecutionId: event.workflow_execution_id ?? null,
      callbackId: event.function.callback_id,
      starter: request.starter,
      // Kept long enough for the check to say what is too long, never unbounded.
      reference: request.reference.slice(0, MAX_REFERENCE_CHARS * 4),
      argumentsText: request.argumentsText?.slice(0, MAX_ARGUMENTS_CHARS * 4) ?? null,
      message: request.message?.slice(0, MAX_MESSAGE_CHARS * 4) ?? null,
    });
    if (!created)
      this.log.info(
        { functionExecutionId: event.function_execution_id, state: execution.state },
        'a workflow step execution arrived again: it is handled once',
      );
    return execution;
  }

  /** Starts a received execution, or completes a started or refused one. Never throws (logs). */
  advance(executionId: number): Promise<void> {
    // Stopping: what is left is found by the next process's reconciler.
    if (this.stopped) return Promise.resolve();
    const running = this.inFlight.get(executionId);
    if (running) return running;
    const work = this.advanceNow(executionId)
      .catch((error: unknown) => this.log.error({ err: error, executionId }, 'a workflow step execution could not be advanced; the reconciler tries again'))
      .finally(() => this.inFlight.delete(executionId));
    this.inFlight.set(executionId, work);
    return work;
  }

  /** A run changed: if it ended and a workflow waits for it, complete that workflow's step. */
  async runChanged(runId: number): Promise<void> {
    try {
      const open = await openExecutionsOfRun(this.db, runId);
      await Promise.all(open.map((execution) => this.advance(execution.id)));
    } catch (error) {
      this.log.warn({ err: error, runId }, 'looking for a workflow waiting for this run failed; the reconciler looks again');
    }
  }

  /** One pass over executions left behind (a process died, Slack failed); bounded. */
  async reconcile(): Promise<void> {
    const staleMs = this.options.staleMs ?? 30_000;
    const pending = await pendingExecutions(this.db, staleMs, RECONCILE_BATCH);
    for (const execution of pending) {
      if (this.stopped) return;
      await this.advance(execution.id);
    }
  }

  start(): void {
    const every = this.options.reconcileMs ?? 15_000;
    const tick = () => {
      if (this.stopped) return;
      this.reconcile()
        .catch((error: unknown) => this.log.warn({ err: error }, 'the workflow step reconciler failed; it tries again'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, every);
        });
    };
    this.timer = setTimeout(tick, every);
  }

  /** Stops the reconciler; work in flight finishes (claims it cannot finish expire and are taken over). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.inFlight.values());
  }

  private async advanceNow(executionId: number): Promise<void> {
    let execution = await getExecution(this.db, executionId);
    if (!execution || execution.completedAt) return;
    if (execution.state === 'received') execution = await this.startExecution(execution);
    await this.completeIfEnded(execution);
  }

  /** received -> started or refused; answers the row as it is now. */
  private async startExecution(execution: WorkflowExecution): Promise<WorkflowExecution> {
    const checked = checkStepRequest({
      reference: execution.reference,
      argumentsText: execution.argumentsText,
      message: execution.message,
      starter: execution.starter,
    });
    if (!checked.ok) {
      await markRefused(this.db, execution, checked.error, 'invalid_request');
    } else {
      const started = await this.runbooks.start(checked.reference, {
        starter: checked.starter,
        values: checked.values,
        message: checked.message,
        trigger: { kind: 'workflow', execution: execution.functionExecutionId },
        source: 'slack',
        // One run per execution, however often it is started (a redelivery, the reconciler).
        sourceKey: `workflow:${execution.functionExecutionId}`,
        channelId: null,
        asRun: true,
      });
      if (!started.ok) await markRefused(this.db, execution, started.message, started.code);
      else if (started.kind === 'run') {
        await markStarted(this.db, execution, started.run.id);
        this.log.info({ functionExecutionId: execution.functionExecutionId, runId: started.run.id, created: started.created }, 'a workflow step started a run');
      } else throw new Error(`runbook ${checked.reference} started as a task though a run was asked for`);
    }
    return (await getExecution(this.db, execution.id)) ?? execution;
  }

  private async completeIfEnded(execution: WorkflowExecution): Promise<void> {
    if (execution.completedAt || execution.state === 'received') return;
    let run: Run | null = null;
    if (execution.state === 'started') {
      run = execution.runId === null ? null : await getRun(this.db, execution.runId);
      if (!run || !isRunTerminal(run.status)) return;
    }
    const claimant = this.options.claimant;
    const claimed = await claimCompletion(this.db, execution.id, claimant, this.options.leaseMs ?? 60_000);
    if (!claimed) return;
    const completion = run ? runCompletion(run, await this.link(run)) : refusalCompletion(claimed.refusal ?? 'it was refused');
    if (!completion) {
      await releaseCompletion(this.db, claimed.id, claimant, 'the run has not ended', 0);
      return;
    }
    try {
      let sent = completion;
      let answer = await this.completer.complete(claimed.functionExecutionId, sent);
      if (answer.outcome === 'invalid' && sent.kind === 'success') {
        // Slack refused our outputs (a manifest older than this countersign): the workflow must not hang.
        this.log.error(
          { functionExecutionId: claimed.functionExecutionId, slack: answer.error },
          "Slack refused the step's outputs: does manifest.yml declare run_countersign_runbook's outputs as this version does?",
        );
        sent = {
          kind: 'error',
          error: `countersign run ${sent.outputs.run_id} ended ${sent.outputs.status}, but Slack refused the step's outputs (${answer.error}): the app's manifest needs updating. ${sent.outputs.link}`,
        };
        answer = await this.completer.complete(claimed.functionExecutionId, sent);
      }
      if (answer.outcome === 'sent') {
        await finishCompletion(this.db, claimed, claimant, { completion: sent, outcome: 'sent' });
        this.log.info({ functionExecutionId: claimed.functionExecutionId, runId: claimed.runId, completion: sent.kind }, 'completed a workflow step');
      } else {
        await finishCompletion(this.db, claimed, claimant, { completion: sent, outcome: 'gone', slackError: answer.error });
        this.log.warn(
          { functionExecutionId: claimed.functionExecutionId, runId: claimed.runId, slack: answer.error },
          'Slack no longer waits for this workflow step (completed before, ended, or unknown): recorded as done',
        );
      }
    } catch (error) {
      const base = this.options.retryBaseMs ?? 2_000;
      const backoff = Math.min(this.options.retryMaxMs ?? 300_000, base * 2 ** Math.min(10, Math.max(0, claimed.attempts - 1)));
      const retryMs = error instanceof RetryLater ? Math.max(backoff, error.retryAfterMs) : backoff;
      await releaseCompletion(this.db, claimed.id, claimant, (error as Error).message ?? String(error), retryMs);
      this.log.warn(
        { err: error, functionExecutionId: claimed.functionExecutionId, attempt: claimed.attempts, retryMs },
        'completing a workflow step failed; it is tried again',
      );
    }
  }

  private async link(run: Run): Promise<string> {
    if (run.channelId && run.cardTs && this.options.permalink) {
      try {
        return await this.options.permalink(run.channelId, run.cardTs);
      } catch (error) {
        this.log.debug({ err: error, runId: run.id }, "no permalink for the run's card: linking its API address");
      }
    }
    return this.options.runUrl(run.id);
  }
}
