/**
 * Claims ready tasks and runs them, exactly once across every process sharing the database:
 * the claim is one short transaction with FOR UPDATE SKIP LOCKED. A process hears of ready
 * tasks and stop requests at once (LISTEN/NOTIFY, or the in-process bus for its own changes)
 * and polls as a safety net. It holds a lease on each run and renews it; a sweeper in every
 * process ends runs whose owner stopped renewing ("runner lost"), and stops whatever of them
 * is still running on the hosts, so no task stays `running` forever.
 */
import type { Config } from '../config/config.js';
import { hostLabel } from '../domain/plan.js';
import { buildRolloutPlan } from '../domain/rollout.js';
import type { Execution, ExecutionStep } from '../domain/task.js';
import { killAndCount } from '../exec/hostControl.js';
import type { SshPool } from '../exec/sshPool.js';
import type { Bus } from '../service/bus.js';
import type { Db } from '../store/db.js';
import { claimNextReady, expiredExecutions, failExpiredExecution, renewLeases } from '../store/executions.js';
import { insertChunks } from '../store/output.js';
import { transitionTask } from '../store/tasks.js';
import { executeRun, type StopReason } from './executeRun.js';
import type { RunObserver } from './observer.js';

export interface RunnerOptions {
  runnerId: string;
  pollMs: number;
  leaseMs: number;
  maxConcurrent: number;
  killGraceMs: number;
  outputFlushMs: number;
  maxOutputBytes: number;
}

/** What the runner reports for metrics; every hook optional. */
export interface RunnerMetrics {
  claimed?(queueWaitMs: number): void;
  finished?(status: string, durationMs: number): void;
  outputKept?(stream: string, bytes: number): void;
}

export interface RunnerLogger {
  error(context: Record<string, unknown>, message: string): void;
  warn(context: Record<string, unknown>, message: string): void;
  info(context: Record<string, unknown>, message: string): void;
}

interface ActiveRun {
  taskId: number;
  controller: AbortController;
  done: Promise<void>;
}

export class Runner {
  private readonly active = new Map<number, ActiveRun>();
  private readonly progressTimers = new Map<number, NodeJS.Timeout>();
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
    private readonly pool: SshPool,
    private readonly bus: Bus,
    private readonly observer: RunObserver,
    private readonly options: RunnerOptions,
    private readonly log: RunnerLogger,
    private readonly metrics: RunnerMetrics = {},
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
      // Stopping takes TERM, the kill grace, KILL and a check; past that, give up waiting: the
      // lease then lapses and another process ends the run as "runner lost".
      const stopped = await Promise.race([all().then(() => true), sleep(this.options.killGraceMs + 15_000).then(() => false)]);
      if (!stopped) this.log.error({ runs: [...this.active.keys()] }, 'runs did not stop in time; leaving them to the lease sweeper');
    }
    this.timers.forEach(clearInterval);
    this.progressTimers.forEach(clearTimeout);
    this.progressTimers.clear();
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
          if (!(await this.claim())) break;
        }
      } while (this.drainAgain && this.accepting);
    })().finally(() => {
      this.draining = null;
    });
  }

  /** Asks the run to stop if this process owns it (a stop request from any process lands here). */
  stopRun(executionId: number, reason: StopReason): void {
    const run = this.active.get(executionId);
    if (run && !run.controller.signal.aborted) run.controller.abort(reason);
  }

  private async claim(): Promise<boolean> {
    let claimed;
    try {
      claimed = await claimNextReady(this.db, this.options.runnerId, this.options.leaseMs, (task) => {
        const target = this.config.targets.get(task.target);
        return target ? buildRolloutPlan(target.hosts, target.rollout) : [];
      });
    } catch (error) {
      this.log.error({ err: error }, 'claiming a ready task failed');
      return false;
    }
    if (!claimed) return false;
    const { task, execution } = claimed;
    this.metrics.claimed?.(Math.max(0, Date.now() - claimed.readyAt.getTime()));
    this.log.info({ taskId: task.id, executionId: execution.id, hosts: claimed.steps.length }, 'run started');
    this.bus.emit('task-changed', task.id);
    this.observer.runStarted(task.id, execution.id, claimed.steps.length);
    const controller = new AbortController();
    const done = executeRun(
      {
        db: this.db,
        pool: this.pool,
        target: this.config.targets.get(task.target),
        observer: this.observer,
        killGraceMs: this.options.killGraceMs,
        outputFlushMs: this.options.outputFlushMs,
        maxOutputBytes: this.options.maxOutputBytes,
        onProgress: () => this.progressChanged(task.id),
        onOutputKept: (stream, bytes) => this.metrics.outputKept?.(stream, bytes),
        onError: (error, context) => this.log.error({ err: error, taskId: task.id }, context),
      },
      claimed,
      controller.signal,
    )
      .then((result) => {
        if (result) this.metrics.finished?.(result.status, result.durationMs);
      })
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

  /**
   * Redraws the card as hosts start and finish, at most once per PROGRESS_EVERY_MS per task: a
   * 40-host run would otherwise ask for 80 redraws against Slack's ~50 chat.update a minute.
   */
  private progressChanged(taskId: number): void {
    if (this.progressTimers.has(taskId)) return;
    this.progressTimers.set(
      taskId,
      setTimeout(() => {
        this.progressTimers.delete(taskId);
        this.bus.emit('task-changed', taskId);
      }, PROGRESS_EVERY_MS),
    );
  }

  private async renewLeases(): Promise<void> {
    const ids = [...this.active.keys()];
    if (ids.length === 0) return;
    try {
      const leases = await renewLeases(this.db, ids, this.options.runnerId, this.options.leaseMs);
      for (const executionId of ids) {
        const lease = leases.get(executionId);
        // Gone from the answer: the run ended meanwhile (harmless) or the sweeper gave it up.
        if (!lease) {
          if (this.active.has(executionId)) this.stopRun(executionId, 'lease-lost');
        } else if (lease.stopRequested) this.stopRun(executionId, 'kill');
      }
    } catch (error) {
      this.log.error({ err: error, executions: ids }, 'renewing leases failed');
    }
  }

  /** Ends runs whose owner stopped renewing its lease: the task fails with the reason. */
  private async sweepLostRuns(): Promise<void> {
    try {
      for (const execution of await expiredExecutions(this.db)) {
        if (this.active.has(execution.id)) continue;
        const message = `runner lost: the process running it (${execution.runnerId}) stopped responding`;
        const orphans = await this.db.transaction(async (trx) => {
          // Re-checks the lease in the UPDATE: a renewal that landed since the SELECT wins.
          const wereRunning = await failExpiredExecution(trx, execution.id, message);
          if (wereRunning === null) return null;
          await transitionTask(trx, {
            taskId: execution.taskId,
            from: 'running',
            to: 'failure',
            actor: null,
            data: { reason: 'runner-lost', runner: execution.runnerId },
            set: { failure_message: message, finished_at: trx.fn.now() as unknown as Date },
          });
          return wereRunning;
        });
        if (orphans === null) continue;
        this.log.warn({ taskId: execution.taskId, executionId: execution.id, runner: execution.runnerId }, 'ended a run whose runner was lost');
        this.bus.emit('task-changed', execution.taskId);
        void this.stopOrphans(execution, orphans);
      }
    } catch (error) {
      this.log.error({ err: error }, 'sweeping lost runs failed');
    }
  }

  /**
   * The lost runner's scripts may still be running on their hosts, with nobody reading their
   * output: stop them (KILL by the run token), check, and say so in the task's output.
   */
  private async stopOrphans(execution: Execution, steps: readonly ExecutionStep[]): Promise<void> {
    try {
      const task = await this.db('tasks').where({ id: execution.taskId }).first('target');
      const target = task ? this.config.targets.get(task.target as string) : undefined;
      if (!target) return;
      // All hosts at once: a 40-host run must not wait out 40 connect timeouts in a row.
      await Promise.all(steps.map(async (step) => {
        const endpoint = {
          address: { host: step.host, port: step.port, user: step.user },
          privateKey: target.privateKey,
          knownHosts: target.knownHosts,
          connectTimeoutMs: target.connectTimeoutMs,
          maxSessions: target.maxSessions,
        };
        const label = hostLabel(step);
        // Null: the host could not be reached or the check did not run; never read as "all gone".
        const survivors = await killAndCount({ pool: this.pool, endpoint, token: step.runToken, runAs: target.runAs });
        const line =
          survivors === 0
            ? `countersign: ${label}: stopped what was left of the run after its runner was lost\n`
            : survivors === null
              ? `countersign: ${label}: could not verify that the run's processes ended after its runner was lost: check the host by hand\n`
              : `countersign: ${label}: ${survivors} processes of the run are still alive after KILL: check by hand\n`;
        await insertChunks(this.db, [{ executionId: execution.id, stepId: step.id, stream: 'system', data: line }]);
      }));
    } catch (error) {
      this.log.error({ err: error, executionId: execution.id }, 'stopping the processes of a lost run failed');
    }
  }
}

const PROGRESS_EVERY_MS = 2000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
