/**
 * Claims ready tasks and runs them, exactly once across every process sharing the database:
 * the claim is one short transaction with FOR UPDATE SKIP LOCKED. A process hears of ready
 * tasks and stop requests at once (LISTEN/NOTIFY, or the in-process bus for its own changes)
 * and polls as a safety net.
 *
 * Who is alive is Postgres's answer, not a timer's: each process holds a liveness lock
 * (liveness.ts) and writes its key on the runs it claims. A sweeper in every process ends the
 * runs of a runner whose lock has stayed free past a reconnect grace, longer after a server
 * restart or failover (lostRunners.ts), as "runner lost", and stops whatever of them is still
 * running on the hosts, so no task stays `running` forever; a runner that is alive, however slow,
 * reset or cut off for a while, keeps its runs. A result is retried until it is stored (only shutdown
 * ends the retries), and the run stays in the active set meanwhile.
 */
import type { Config } from '../config/config.js';
import { hostLabel } from '../domain/plan.js';
import { buildRolloutPlan } from '../domain/rollout.js';
import type { Execution, ExecutionStep, Task } from '../domain/task.js';
import { killAndCount } from '../exec/hostControl.js';
import { targetEndpoint, type SshPool } from '../exec/sshPool.js';
import type { Bus } from '../service/bus.js';
import type { Db } from '../store/db.js';
import { formatDuration } from '../domain/duration.js';
import {
  claimApproved,
  claimReady,
  failExpiredExecution,
  failRunOfLostRunner,
  lockLostRunner,
  plansJson,
  renewLeases,
  runningExecutions,
  runningExecutionsOf,
  type Claimed,
  type PlansJson,
  type RunningExecution,
} from '../store/executions.js';
import { insertChunks } from '../store/output.js';
import { transitionTask } from '../store/tasks.js';
import { executeRun, type StopReason } from './executeRun.js';
import { ResultWriter } from './resultWriter.js';
import type { RunnerLiveness } from './liveness.js';
import { LostRunnerJudge, lostRunnerKeys, RECONNECT_GRACE_MS } from './lostRunners.js';
import type { RunObserver } from './observer.js';

export interface RunnerOptions {
  runnerId: string;
  pollMs: number;
  leaseMs: number;
  /**
   * How long a runner may be cut off from Postgres (silently) before its runs are given up; also
   * how long, after a database restart, every runner gets to reconnect before any is judged.
   */
  livenessMs: number;
  /** How often runs of other runners are checked (a crashed runner is found within about twice this plus RECONNECT_GRACE_MS). */
  sweepMs?: number;
  /** How soon tasks a wake named but no claim took are looked for again (MISSED_RETRY_MS). */
  missedRetryMs?: number;
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

/** A run that carries our key but that we are not running (its claim's answer was lost) is ended after this long. */
const OWN_ORPHAN_MS = 10_000;

export class Runner {
  private readonly active = new Map<number, ActiveRun>();
  private readonly progressTimers = new Map<number, NodeJS.Timeout>();
  private accepting = false;
  private draining: Promise<void> | null = null;
  private drainAgain = false;
  /** While a drain runs: the tasks later wakes were about, and whether one was about no task. */
  private readonly wokenFor = new Set<number>();
  private wokenForAny = false;
  /**
   * The last drain stopped at capacity, so ready tasks may be waiting for a slot: a run that ends
   * claims again. Otherwise nothing is waiting (a task made ready since woke us itself), and an
   * ending run sends no claim that would find nothing.
   */
  private stoppedFull = false;
  /**
   * Tasks this runner claimed lately (the newest RECENT_CLAIMS). A task is ready only once, so a
   * wake naming one of them (its ready NOTIFY arriving after the claim that took it, as it does
   * on a busy machine) has nothing to claim.
   */
  private readonly recentlyClaimed = new Set<number>();
  /** The one look again for tasks a wake named but no claim took (an id-less wake: it does not repeat). */
  private retryTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: Array<() => void> = [];
  private stopWaking: (() => void) | null = null;
  /** Aborted when shutdown gives up waiting: results not yet stored stop being retried. */
  private readonly abandon = new AbortController();
  /** Runs that end together share a commit (src/runner/resultWriter.ts). */
  private readonly results: ResultWriter;
  /** Decides, sweep by sweep, which other runners are gone. */
  private readonly judge: LostRunnerJudge;
  /** Runs with our key that we are not running, and since when. */
  private readonly orphanSince = new Map<number, number>();
  private renewing = false;
  private sweeping = false;

  constructor(
    /** The runner's own pool: API followers and Slack views cannot starve it. */
    private readonly db: Db,
    private readonly config: Config,
    private readonly pool: SshPool,
    private readonly bus: Bus,
    private readonly observer: RunObserver,
    private readonly liveness: RunnerLiveness,
    private readonly options: RunnerOptions,
    private readonly log: RunnerLogger,
    private readonly metrics: RunnerMetrics = {},
  ) {
    this.results = new ResultWriter(db, (error, results) => log.warn({ err: error, results }, 'storing results together failed; storing each on its own'));
    this.judge = new LostRunnerJudge({
      livenessMs: options.livenessMs,
      onServerChanged: (from, to) => {
        // A server restored from a backup may hand out task ids again.
        this.recentlyClaimed.clear();
        log.warn(
          { from, to },
          `the database server changed (a restart or failover): runners not back on it yet get ${formatDuration(options.livenessMs)} to reconnect`,
        );
      },
    });
  }

  start(): void {
    this.accepting = true;
    this.stopWaking = this.bus.on('task-ready', (taskId) => this.wake(taskId));
    this.unsubscribe.push(this.bus.on('stop-requested', (executionId) => this.stopRun(executionId, 'kill')));
    this.unsubscribe.push(this.bus.on('run-coming', (target) => this.warmHostsOf(target)));
    this.pollTimer = setInterval(() => this.wake(), this.options.pollMs);
    this.timers.push(setInterval(() => void this.renewLeases(), Math.max(200, this.options.leaseMs / 3)));
    this.timers.push(setInterval(() => void this.sweepLostRuns(), this.options.sweepMs ?? SWEEP_MS));
    this.wake();
  }

  /**
   * Stops claiming and lets running tasks finish for `graceMs`, then stops what is left. Leases
   * keep being renewed and Kill keeps working until the last run has ended: a run in its grace
   * period is still ours. Bounded in all cases (a hung host, a hung database) by
   * graceMs + killGraceMs + 7 s; what is left then is left to the other
   * processes' sweepers, which find this runner's lock gone once the process exits.
   */
  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.stopWaking?.();
    const graceEnds = Date.now() + graceMs;
    // A claim in flight on a hung database must not hold the shutdown. A Run claimed at its click
    // is waited for too: what it claimed is then among the runs below.
    await Promise.race([Promise.all([this.draining, ...this.clickClaims]), sleep(graceMs)]);
    const all = () => Promise.all([...this.active.values()].map((run) => run.done));
    const finishedInTime = await Promise.race([all().then(() => true), sleep(Math.max(0, graceEnds - Date.now())).then(() => false)]);
    if (!finishedInTime) {
      for (const executionId of this.active.keys()) this.stopRun(executionId, 'shutdown');
      // Stopping takes TERM, the kill grace, KILL and a check, then the result is stored; past
      // that, give up waiting.
      const stopped = await Promise.race([all().then(() => true), sleep(this.options.killGraceMs + 6_000).then(() => false)]);
      if (!stopped) {
        this.abandon.abort();
        await Promise.race([all(), sleep(1000)]);
        this.log.error(
          { runs: [...this.active.keys()] },
          'runs did not stop in time; leaving them to the other processes (they see this runner gone once it exits)',
        );
      }
    }
    this.timers.forEach(clearInterval);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.progressTimers.forEach(clearTimeout);
    this.progressTimers.clear();
    for (const off of this.unsubscribe) off();
    this.stopped = true;
  }

  /**
   * Opens connections to the hosts a Run of `target` will start on (its first rollout batch), when
   * this runner could claim it: a cold Run then waits for one handshake at most, overlapped with
   * its commit and claim, instead of after them.
   */
  private warmHostsOf(targetName: string): void {
    if (!this.accepting || !this.liveness.holds || this.active.size >= this.options.maxConcurrent) return;
    const target = this.config.targets.get(targetName);
    if (!target) return;
    const [first] = buildRolloutPlan(target.hosts, target.rollout);
    for (const address of first ?? []) this.pool.warm(targetEndpoint(target, address));
  }

  /** Claim statements sent so far (each a round trip and a commit), for tests and benchmarks. */
  claimsSent = 0;

  /** A drain (claims until nothing is ready) is under way. */
  get claiming(): boolean {
    return this.draining !== null;
  }

  get runningCount(): number {
    return this.active.size;
  }

  /**
   * Claims until nothing is ready or capacity is full; concurrent wakes collapse into one loop.
   * `taskId`: the task the wake is about (its ready NOTIFY, or this process making it ready).
   */
  wake(taskId?: number): void {
    // Without our lock, a run we claimed could be judged lost by others before we held it again.
    if (!this.accepting || !this.liveness.holds) return;
    if (taskId !== undefined && this.recentlyClaimed.has(taskId)) return;
    if (this.draining) {
      this.drainAgain = true;
      if (taskId === undefined) this.wokenForAny = true;
      else this.wokenFor.add(taskId);
      return;
    }
    // Tasks a wake named that no claim took: another runner's, or skipped while a short statement
    // (a card's post claim) held their row. Looked for once more, shortly after.
    const named = new Set<number>(taskId === undefined ? [] : [taskId]);
    const unclaimed = (ids: Iterable<number>) => [...ids].some((id) => !this.recentlyClaimed.has(id));
    let missed = false;
    this.draining = (async () => {
      do {
        this.drainAgain = false;
        this.wokenFor.clear();
        this.wokenForAny = false;
        this.stoppedFull = false;
        while (this.accepting && this.liveness.holds) {
          if (this.active.size >= this.options.maxConcurrent) {
            this.stoppedFull = true;
            break;
          }
          if (!(await this.claim())) break;
        }
        // A task's ready NOTIFY and this process's own word for it both wake us, usually while
        // the claim that takes it is in flight: another claim would find nothing. Claim again
        // only for a wake about something not claimed meanwhile (or about nothing in particular).
        if (!this.wokenForAny && !unclaimed(this.wokenFor)) this.drainAgain = false;
        for (const id of this.wokenFor) named.add(id);
      } while (this.drainAgain && this.accepting);
      missed = !this.stoppedFull && unclaimed(named);
    })().finally(() => {
      this.draining = null;
      // A wake that came after the loop's last check would otherwise be lost.
      if (this.drainAgain) this.wake();
      else if (missed && !this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.wake();
        }, this.options.missedRetryMs ?? MISSED_RETRY_MS);
        this.retryTimer.unref();
      }
    });
  }

  /** Asks the run to stop if this process owns it (a stop request from any process lands here). */
  stopRun(executionId: number, reason: StopReason): void {
    const run = this.active.get(executionId);
    if (run && !run.controller.signal.aborted) run.controller.abort(reason);
  }

  /**
   * Claims what is ready, up to the room left (at most CLAIM_BATCH per statement), and starts
   * each run; true when a full batch came back (more may be waiting).
   */
  private async claim(): Promise<boolean> {
    const limit = Math.min(CLAIM_BATCH, this.options.maxConcurrent - this.active.size - this.slotsClaiming);
    if (limit <= 0) {
      // Full once the claims in flight land: the next run to end (or the next slot given back) claims again.
      this.stoppedFull = true;
      return false;
    }
    let claimed: Claimed[];
    // Sent, not answered: a reply delayed past our own orphan sweep must not count as a fresh claim.
    const claimSentAt = Date.now();
    this.claimsSent++;
    this.slotsClaiming += limit;
    try {
      claimed = await claimReady(this.db, { id: this.options.runnerId, key: this.liveness.key }, this.options.leaseMs, this.plans(), limit);
    } catch (error) {
      this.log.error({ err: error }, 'claiming ready tasks failed');
      // Ready tasks may be waiting: the next run to end claims again (the poll does too).
      this.stoppedFull = true;
      return false;
    } finally {
      this.slotsClaiming -= limit;
    }
    for (const run of claimed) this.startClaimed(run, claimSentAt);
    return claimed.length === limit;
  }

  /** Slots claims in flight may fill (a drain's batch, Runs claimed at the click): the room left counts them as taken. */
  private slotsClaiming = 0;
  /** Runs being claimed at their click: stop() waits for them, so nothing it claims is left untracked. */
  private readonly clickClaims = new Set<Promise<unknown>>();
  /** stop() has returned: a claim answered after it is not started (other processes end it once our lock is gone). */
  private stopped = false;

  /**
   * A Run clicked in this process: the approved task is made ready and claimed by this runner in
   * one statement (claimApproved), when this runner may claim and has room. Answers the running
   * task, or null when this runner did not claim it: no room, not claiming now (shutting down,
   * its lock not held), or the task not claimable now (no longer approved, its grace delay not
   * over, its row held for a moment). The caller then makes it ready as before, where any
   * runner's claim takes it, or finds out why it cannot.
   */
  async runApproved(taskId: number, actor: string): Promise<Task | null> {
    // As wake() claims: only while holding our lock, so no other runner can judge the run lost.
    if (!this.accepting || !this.liveness.holds || this.active.size + this.slotsClaiming >= this.options.maxConcurrent) return null;
    const claimSentAt = Date.now();
    this.claimsSent++;
    this.slotsClaiming++;
    const claiming = claimApproved(this.db, { id: this.options.runnerId, key: this.liveness.key }, this.options.leaseMs, this.plans(), taskId, actor);
    this.clickClaims.add(claiming);
    let claimed: Claimed | null;
    try {
      claimed = await claiming;
    } finally {
      this.clickClaims.delete(claiming);
      this.slotsClaiming--;
    }
    if (!claimed) {
      // The slot it held is free again: a drain that found none may have left ready tasks behind.
      if (this.stoppedFull) this.wake();
      return null;
    }
    if (this.stopped) {
      // Answered after shutdown gave up waiting: no renewals, no kills, no result from here. Other
      // processes end it as "runner lost" once this process's lock is gone; nothing was started.
      this.log.error({ taskId }, 'a Run claimed at its click was answered after the runner stopped; it is left to the other processes');
      return claimed.task;
    }
    this.startClaimed(claimed, claimSentAt);
    return claimed.task;
  }

  private startClaimed(claimed: Claimed, claimSentAt: number): void {
    this.recentlyClaimed.add(claimed.task.id);
    if (this.recentlyClaimed.size > RECENT_CLAIMS) this.recentlyClaimed.delete(this.recentlyClaimed.values().next().value as number);
    this.startRun(claimed, claimSentAt);
  }

  /**
   * Every target's rollout plan, built once per set of targets (the config does not change while
   * the process runs; a target added or a map replaced makes a new one).
   */
  private plansCache: { targets: Config['targets']; size: number; json: PlansJson } | null = null;
  private plans(): PlansJson {
    const targets = this.config.targets;
    if (this.plansCache?.targets !== targets || this.plansCache.size !== targets.size) {
      const plans = new Map([...targets.values()].map((target) => [target.name, buildRolloutPlan(target.hosts, target.rollout)]));
      this.plansCache = { targets, size: targets.size, json: plansJson(plans) };
    }
    return this.plansCache.json;
  }

  private startRun(claimed: Claimed, claimedAt: number): void {
    const { task, execution } = claimed;
    this.metrics.claimed?.(Math.max(0, Date.now() - claimed.readyAt.getTime()));
    this.log.info({ taskId: task.id, executionId: execution.id, hosts: claimed.steps.length }, 'run started');
    // The claim's statement told the other processes.
    this.bus.emit('task-changed', task.id, task, true);
    this.observer.runStarted(task, execution.id, claimed.steps.length);
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
        runnerKey: this.liveness.key,
        beforeBatch: (stop, batch) => this.confirmBeforeBatch(execution.id, stop, batch === 0 ? claimedAt : null),
        abandon: this.abandon.signal,
        results: this.results,
      },
      claimed,
      controller.signal,
    )
      .then((result) => {
        if (result) this.metrics.finished?.(result.status, result.durationMs);
        return result?.notified ?? false;
      })
      .catch((error) => {
        this.log.error({ err: error, taskId: task.id }, 'run crashed');
        return false;
      })
      .then((notified) => {
        this.active.delete(execution.id);
        this.log.info({ taskId: task.id, executionId: execution.id }, 'run finished');
        this.bus.emit('task-changed', task.id, task, notified);
        if (this.stoppedFull) this.wake();
      });
    this.active.set(execution.id, { taskId: task.id, controller, done });
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

  /**
   * Before a rollout batch starts: is the run still ours? Asked on the liveness lock's own
   * connection. While the database cannot say, nothing new starts; the wait lasts at most
   * livenessMs (after which the server has given up on our session, and others may end the run).
   * Answers null to go on, or why the rest is not started.
   *
   * The first batch, right after the claim was sent (`claimedAt`), needs no round trip: the claim
   * committed under our lock (wake() claims only while it holds), and nobody ends a runner's runs
   * before its lock has been seen free for RECONNECT_GRACE_MS, and we skip it only while the lock
   * answered within half of that (a link that died silently may still look held for ~3 s).
   */
  private async confirmBeforeBatch(executionId: number, stop: AbortSignal, claimedAt: number | null): Promise<string | null> {
    // Others end our runs once our lock has been free for RECONNECT_GRACE_MS: a lock that answered
    // within half of that leaves the first batch, started at once, well inside it.
    if (claimedAt !== null && Date.now() - claimedAt < RECONNECT_GRACE_MS / 2 && this.liveness.holdsWithin(RECONNECT_GRACE_MS / 2)) return null;
    const deadline = Date.now() + this.options.livenessMs;
    let waited = false;
    for (;;) {
      if (stop.aborted) return null;
      const answer = await this.liveness.confirmRun(executionId, this.options.leaseMs);
      if (answer === 'ours') {
        if (waited) this.log.info({ executionId }, 'the database answers again: the rollout goes on');
        return null;
      }
      if (answer === 'not-ours') return 'not started: the run was given up while its runner was cut off from the database';
      if (Date.now() >= deadline)
        return `not started: countersign could not reach the database for ${formatDuration(this.options.livenessMs)} to confirm the run was still its own`;
      if (!waited) this.log.warn({ executionId }, 'cannot confirm the run with the database: the next rollout batch waits');
      waited = true;
      await sleep(500, stop);
    }
  }

  private async renewLeases(): Promise<void> {
    const ids = [...this.active.keys()];
    // One at a time: on a hung database, renewals must not pile up and take the whole pool.
    if (ids.length === 0 || this.renewing) return;
    this.renewing = true;
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
    } finally {
      this.renewing = false;
    }
  }

  /**
   * Ends the runs of runners that are gone (LostRunnerJudge: a lock free past the reconnect grace,
   * or past livenessMs after a server restart or failover for a runner not seen back since).
   * Runs without a runner key (claimed before keys existed) are judged by their lease, as before.
   */
  private async sweepLostRuns(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const { executions, otherKeys } = await runningExecutions(this.db, this.liveness.key, [...this.active.keys()]);
      const now = Date.now();
      const ownOrphans: RunningExecution[] = [];
      for (const execution of executions) {
        if (this.active.has(execution.id)) continue;
        if (execution.runnerKey === null) {
          if (execution.leaseExpired) await this.endLeaseExpiredRun(execution);
        } else if (execution.runnerKey === this.liveness.key) {
          ownOrphans.push(execution);
        }
      }
      await this.endOwnOrphans(ownOrphans, now);
      // Runs of other runners are read under the lost runner's lock (endLostRunner), not here.
      for (const key of await lostRunnerKeys(this.db, this.judge, otherKeys, now)) await this.endLostRunner(key);
    } catch (error) {
      this.log.error({ err: error }, 'sweeping lost runs failed');
    } finally {
      this.sweeping = false;
    }
  }

  /** One transaction per lost runner: its lock is taken first, so it cannot come back halfway. */
  private async endLostRunner(runnerKey: number): Promise<void> {
    const ended = await this.db.transaction(async (trx) => {
      if (!(await lockLostRunner(trx, runnerKey))) return [];
      const done: Array<{ run: RunningExecution; steps: ExecutionStep[] }> = [];
      // Read under its lock: the runner cannot come back and claim more meanwhile.
      for (const run of await runningExecutionsOf(trx, runnerKey)) {
        const message = lostMessage(run.runnerId);
        const steps = await failRunOfLostRunner(trx, run.id, runnerKey, message);
        if (steps === null) continue;
        await this.failLostTask(trx, run, message);
        done.push({ run, steps });
      }
      return done;
    });
    this.judge.forget(runnerKey);
    for (const { run, steps } of ended) this.afterLost(run, steps);
  }

  private async endLeaseExpiredRun(run: RunningExecution): Promise<void> {
    const message = lostMessage(run.runnerId);
    const steps = await this.db.transaction(async (trx) => {
      // Re-checks the lease in the UPDATE: a renewal that landed since the SELECT wins.
      const wereRunning = await failExpiredExecution(trx, run.id, message);
      if (wereRunning !== null) await this.failLostTask(trx, run, message);
      return wereRunning;
    });
    if (steps !== null) this.afterLost(run, steps);
  }

  /**
   * A run that carries our key but is not in our active set: its claim committed but the answer
   * never reached us (the database went away at that moment), so nothing of it ever ran. Our own
   * lock keeps everyone else from ending it; we do, once it has been so for OWN_ORPHAN_MS.
   */
  private async endOwnOrphans(runs: readonly RunningExecution[], now: number): Promise<void> {
    const seen = new Set(runs.map((run) => run.id));
    for (const id of [...this.orphanSince.keys()]) if (!seen.has(id)) this.orphanSince.delete(id);
    for (const run of runs) {
      const since = this.orphanSince.get(run.id) ?? now;
      this.orphanSince.set(run.id, since);
      if (now - since < OWN_ORPHAN_MS || this.active.has(run.id)) continue;
      const message = `runner lost: the process that claimed it (${run.runnerId}) lost track of it before it started`;
      const steps = await this.db.transaction(async (trx) => {
        const wereRunning = await failRunOfLostRunner(trx, run.id, this.liveness.key, message);
        if (wereRunning !== null) await this.failLostTask(trx, run, message);
        return wereRunning;
      });
      this.orphanSince.delete(run.id);
      if (steps !== null) this.afterLost(run, steps);
    }
  }

  private async failLostTask(trx: Parameters<Parameters<Db['transaction']>[0]>[0], run: RunningExecution, message: string): Promise<void> {
    await transitionTask(trx, {
      taskId: run.taskId,
      from: 'running',
      to: 'failure',
      actor: null,
      data: { reason: 'runner-lost', runner: run.runnerId },
      set: { failure_message: message, finished_at: trx.fn.now() as unknown as Date },
    });
  }

  private afterLost(run: RunningExecution, steps: ExecutionStep[]): void {
    this.log.warn({ taskId: run.taskId, executionId: run.id, runner: run.runnerId }, 'ended a run whose runner was lost');
    this.bus.emit('task-changed', run.taskId);
    void this.stopOrphans(run, steps);
  }

  /**
   * The lost runner's scripts may still be running on their hosts, with nobody reading their
   * output: stop them (KILL by the run token), check, and say so in the task's output.
   */
  private async stopOrphans(execution: Pick<Execution, 'id' | 'taskId'>, steps: readonly ExecutionStep[]): Promise<void> {
    try {
      const task = await this.db('tasks').where({ id: execution.taskId }).first('target');
      const target = task ? this.config.targets.get(task.target as string) : undefined;
      if (!target) return;
      // All hosts at once: a 40-host run must not wait out 40 connect timeouts in a row.
      await Promise.all(
        steps.map(async (step) => {
          const endpoint = targetEndpoint(target, { host: step.host, port: step.port, user: step.user });
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
        }),
      );
    } catch (error) {
      this.log.error({ err: error, executionId: execution.id }, 'stopping the processes of a lost run failed');
    }
  }
}

const PROGRESS_EVERY_MS = 2000;
/** How soon tasks a wake named but no claim took are looked for again (a row lock held by a short statement). */
const MISSED_RETRY_MS = 50;
/** How many claimed task ids the runner remembers, to pass over wakes naming tasks it took already. */
const RECENT_CLAIMS = 1024;
/** Sweeps often enough that a dead runner is found soon after its reconnect grace (cheap reads). */
const SWEEP_MS = 250;
/** Tasks claimed by one statement at most: enough to fill a host's sessions in one round trip. */
const CLAIM_BATCH = 16;

const lostMessage = (runnerId: string) => `runner lost: the process running it (${runnerId}) stopped responding`;

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
