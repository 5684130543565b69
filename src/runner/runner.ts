/**
 * Claims ready tasks and runs them. Wakes at once when this process makes a task ready, and
 * polls as a safety net (other replicas, missed notices). Holds a lease on each run and renews
 * it; a sweeper ends runs whose owner stopped renewing ("runner lost"), so no task stays
 * `running` forever. Stop requests arrive on the bus, or with the lease renewal when another
 * process received the Kill.
 */
import type { Config } from '../config/config.js';
import { buildPlan } from '../domain/plan.js';
import type { Bus } from '../service/bus.js';
import type { Db } from '../store/db.js';
import { claimNextReady, expiredExecutions, failExpiredExecution, renewLease } from '../store/executions.js';
import { transitionTask } from '../store/tasks.js';
import { executeRun, type StopReason } from './executeRun.js';
import type { RunObserver } from './observer.js';

export interface RunnerOptions {
  runnerId: string;
  pollMs: number;
  leaseMs: number;
  maxConcurrent: number;
  connectTimeoutMs: number;
  killGraceMs: number;
  outputFlushMs: number;
}

export interface RunnerLogger {
  error(context: Record<string, unknown>, message: string): void;
  info(context: Record<string, unknown>, message: string): void;
}

interface ActiveRun {
  taskId: number;
  controller: AbortController;
  done: Promise<void>;
}

export const DEFAULT_RUNNER_OPTIONS: Omit<RunnerOptions, 'runnerId'> = {
  pollMs: 1_000,
  leaseMs: 30_000,
  maxConcurrent: 20,
  connectTimeoutMs: 10_000,
  killGraceMs: 5_000,
  outputFlushMs: 200,
};

export class Runner {
  private readonly active = new Map<number, ActiveRun>();
  private accepting = false;
  private draining: Promise<void> | null = null;
  private drainAgain = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: Array<() => void> = [];
  private stopWaking: (() => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly observer: RunObserver,
    private readonly options: RunnerOptions,
    private readonly log: RunnerLogger,
  ) {}

  start(): void {
    this.accepting = true;
    this.stopWaking = this.bus.on('task-ready', () => this.wake());
    this.unsubscribe.push(this.bus.on('stop-requested', (executionId) => this.stopRun(executionId, 'kill')));
    this.pollTimer = setInterval(() => this.wake(), this.options.pollMs);
    this.timers.push(setInterval(() => void this.renewLeases(), Math.max(200, this.options.leaseMs / 3)));
    this.timers.push(setInterval(() => void this.sweepLostRuns(), Math.max(500, this.options.leaseMs / 2)));
    this.wake();
  }

  /**
   * Stops claiming and lets running tasks finish for `graceMs`, then stops what is left. Leases
   * keep being renewed and Kill keeps working until the last run has ended: a run in its grace
   * period is still ours.
   */
  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.stopWaking?.();
    await this.draining;
    const all = () => Promise.all([...this.active.values()].map((run) => run.done));
    const finishedInTime = await Promise.race([all().then(() => true), sleep(graceMs).then(() => false)]);
    if (!finishedInTime) {
      for (const executionId of this.active.keys()) this.stopRun(executionId, 'shutdown');
      await all();
    }
    this.timers.forEach(clearInterval);
    this.unsubscribe.forEach((off) => off());
  }

  get runningCount(): number {
    return this.active.size;
  }

  /** Claims until nothing is ready or capacity is full; concurrent wakes collapse into one loop. */
  wake(): void {
    if (!this.accepting) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = (async () => {
      do {
        this.drainAgain = false;
        while (this.accepting && this.active.size < this.options.maxConcurrent) {
          const claimed = await this.claim();
          if (!claimed) break;
        }
      } while (this.drainAgain && this.accepting);
    })().finally(() => {
      this.draining = null;
    });
  }

  private async claim(): Promise<boolean> {
    let claimed;
    try {
      claimed = await claimNextReady(this.db, this.options.runnerId, this.options.leaseMs, (task) =>
        buildPlan(this.config.targets.get(task.target)?.hosts ?? []),
      );
    } catch (error) {
      this.log.error({ err: error }, 'claiming a ready task failed');
      return false;
    }
    if (!claimed) return false;
    const { task, execution } = claimed;
    this.log.info({ taskId: task.id, executionId: execution.id }, 'run started');
    this.bus.emit('task-changed', task.id);
    this.observer.runStarted(task.id, execution.id);
    const controller = new AbortController();
    const done = executeRun(
      {
        db: this.db,
        target: this.config.targets.get(task.target),
        observer: this.observer,
        connectTimeoutMs: this.options.connectTimeoutMs,
        killGraceMs: this.options.killGraceMs,
        outputFlushMs: this.options.outputFlushMs,
        onError: (error, context) => this.log.error({ err: error, taskId: task.id }, context),
      },
      claimed,
      controller.signal,
    )
      .catch((error) => this.log.error({ err: error, taskId: task.id }, 'run crashed'))
      .finally(() => {
        this.active.delete(execution.id);
        this.log.info({ taskId: task.id, executionId: execution.id }, 'run finished');
        this.bus.emit('task-changed', task.id);
        this.wake();
      });
    this.active.set(execution.id, { taskId: task.id, controller, done });
    return true;
  }

  private stopRun(executionId: number, reason: StopReason): void {
    const run = this.active.get(executionId);
    if (run && !run.controller.signal.aborted) run.controller.abort(reason);
  }

  private async renewLeases(): Promise<void> {
    for (const [executionId] of this.active) {
      try {
        const lease = await renewLease(this.db, executionId, this.options.runnerId, this.options.leaseMs);
        if (!lease.owned) this.stopRun(executionId, 'lease-lost');
        else if (lease.stopRequested) this.stopRun(executionId, 'kill');
      } catch (error) {
        this.log.error({ err: error, executionId }, 'renewing a lease failed');
      }
    }
  }

  /** Ends runs whose owner stopped renewing its lease: the task fails with the reason. */
  private async sweepLostRuns(): Promise<void> {
    try {
      for (const execution of await expiredExecutions(this.db)) {
        if (this.active.has(execution.id)) continue;
        const message = `runner lost: the process running it (${execution.runnerId}) stopped responding; the remote script may still be running`;
        const ended = await this.db.transaction(async (trx) => {
          // Re-checks the lease in the UPDATE: a renewal that landed since the SELECT wins.
          if (!(await failExpiredExecution(trx, execution.id, message))) return false;
          await transitionTask(trx, {
            taskId: execution.taskId,
            from: 'running',
            to: 'failure',
            actor: null,
            data: { reason: 'runner-lost', runner: execution.runnerId },
            set: { failure_message: message, finished_at: trx.fn.now() as unknown as Date },
          });
          return true;
        });
        if (ended) {
          this.log.info({ taskId: execution.taskId, executionId: execution.id }, 'ended a run whose runner was lost');
          this.bus.emit('task-changed', execution.taskId);
        }
      }
    } catch (error) {
      this.log.error({ err: error }, 'sweeping lost runs failed');
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
