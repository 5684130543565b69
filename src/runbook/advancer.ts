/**
 * The run engine ("advancer"). It runs in every process: it wakes when a run changes (the
 * in-process bus, NOTIFY from other processes) and on a poll, and advances a run inside one
 * short transaction holding the run's row lock: it reads the run and its steps, asks the pure
 * decision (src/domain/runDecision.ts) what to do, and applies it (src/runbook/actions.ts) in
 * the same transaction. State lives only in Postgres, so a paused run (approval, input, grace)
 * survives restarts and is advanced by whichever replica looks next; the guarded transitions
 * make every step start exactly once.
 *
 * Script steps run as tasks through the runner (claim, lease, SSH, output, Kill); their terminal
 * transition ends the step and notifies. Http steps run here, in the process that started them:
 * it holds a lease (renewed while the request runs, keyed by this process's runner key); a step
 * whose owner's liveness lock is gone fails as "runner lost" and is never retried (requests may
 * not be idempotent). A stop request (Kill) reaches the owner over NOTIFY and aborts the request.
 *
 * When a run ends, the runs its `after` triggers name are created in the same transaction.
 */
import type { Config } from '../config/config.js';
import { decideRun } from '../domain/runDecision.js';
import type { Runbook } from '../domain/runbook/index.js';
import { runHttpStep, httpStepValues, type HostResolver } from '../exec/httpStep.js';
import { EMPTY_NET_ALLOW } from '../domain/netAllow.js';
import type { Bus } from '../service/bus.js';
import type { RunService } from '../service/runs.js';
import { contentKey } from '../store/contentKey.js';
import type { Db, Queryable } from '../store/db.js';
import { activeRunIds, databaseNow, lockRun, stepsOfRun, transitionRunStep } from '../store/runs.js';
import { lockLostRunner } from '../store/executions.js';
import { LostRunnerJudge, lostRunnerKeys } from '../runner/lostRunners.js';
import { applyActions, type OwnedHttpStep } from './actions.js';
import { startTriggeredRuns } from './triggers.js';

export interface AdvancerOptions {
  runnerId: string;
  /** This process's runner key (liveness); http steps it owns carry it. */
  runnerKey: number;
  pollMs: number;
  leaseMs: number;
  /** How long a silent runner may keep its lock (config runner.livenessTimeout). */
  livenessMs: number;
  /** Tests point http steps' name lookups at a fake resolver. */
  resolve?: HostResolver;
}

export interface AdvancerLogger {
  error(context: Record<string, unknown>, message: string): void;
  warn(context: Record<string, unknown>, message: string): void;
  info(context: Record<string, unknown>, message: string): void;
}

/** The kept part of an http step's log. */
const MAX_HTTP_LOG_CHARS = 64 * 1024;

export class Advancer {
  private readonly chains = new Map<number, { running: Promise<void>; again: boolean }>();
  private readonly http = new Map<number, AbortController>();
  private readonly httpDone = new Set<Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: Array<() => void> = [];
  private accepting = false;
  /** Which http steps' owners are gone: the runner sweeper's rule (a free lock past the reconnect grace). */
  private readonly judge: LostRunnerJudge;
  /** Some target's reviews expire: pending run reviews are swept on each poll. */

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly runs: RunService,
    /** Read in the caller's transaction (`db`): a run holding its lock must not wait for a second pool connection. */
    private readonly catalog: (db: Queryable) => Promise<ReadonlyMap<string, { runbook: Runbook; hash: string }>>,
    private readonly options: AdvancerOptions,
    private readonly log: AdvancerLogger,
  ) {
    this.judge = new LostRunnerJudge({ livenessMs: options.livenessMs });
  }

  start(): void {
    this.accepting = true;
    this.unsubscribe.push(this.bus.on('run-changed', (runId) => this.wake(runId)));
    this.timers.push(setInterval(() => void this.poll(), this.options.pollMs));
    this.timers.push(setInterval(() => void this.renewLeases(), Math.max(200, this.options.leaseMs / 3)));
    this.timers.push(setInterval(() => void this.sweepLostSteps(), 500));
    void this.poll();
  }

  /**
   * Stops advancing. Http steps under way get the grace to finish and store their result; those
   * still going then are aborted without a result: once this process is gone, another fails them
   * as "runner lost" (a request is never sent twice).
   */
  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    for (const timer of this.timers) clearInterval(timer);
    for (const off of this.unsubscribe) off();
    const chains = [...this.chains.values()].map((c) => c.running);
    const until = Date.now() + graceMs;
    await Promise.race([Promise.all(chains), sleep(graceMs)]);
    await Promise.race([Promise.all([...this.httpDone]), sleep(Math.max(0, until - Date.now()))]);
    for (const controller of this.http.values()) controller.abort('shutdown');
  }

  /** Advances the run soon; concurrent wakes of one run collapse into one more pass. */
  wake(runId: number): void {
    if (!this.accepting) return;
    const chain = this.chains.get(runId);
    if (chain) {
      chain.again = true;
      return;
    }
    const entry = { running: Promise.resolve(), again: false };
    entry.running = (async () => {
      do {
        entry.again = false;
        await this.advance(runId).catch((error) => this.log.error({ err: error, runId }, 'advancing a run failed'));
      } while (entry.again && this.accepting);
    })().finally(() => this.chains.delete(runId));
    this.chains.set(runId, entry);
  }

  /** An http step's stop (from any process): aborted here if this process runs it. */
  stopHttpStep(stepRowId: number): void {
    this.http.get(stepRowId)?.abort('kill');
  }

  /** Looks at every active run: timeouts, grace ends and anything a missed notification left. */
  async poll(): Promise<void> {
    try {
      for (const runId of await activeRunIds(this.db)) this.wake(runId);
    } catch (error) {
      this.log.error({ err: error }, 'looking for active runs failed');
    }
  }

  /** One pass: decide and apply under the run's lock, repeated while it makes progress. */
  async advance(runId: number): Promise<void> {
    const owned: OwnedHttpStep[] = [];
    const stopExecutions: number[] = [];
    const readyTasks: number[] = [];
    const woken = new Set<number>();
    let changed = false;
    const fixedValueKey = await contentKey(this.db);
    await this.db.transaction(async (trx) => {
      for (let pass = 0; pass < 20; pass++) {
        const run = await lockRun(trx, runId);
        if (!run) return;
        const steps = await stepsOfRun(trx, runId);
        const actions = decideRun(run, steps, await databaseNow(trx));
        if (actions.length === 0) return;
        const applied = await applyActions(
          trx,
          { config: this.config, runner: { id: this.options.runnerId, key: this.options.runnerKey, leaseMs: this.options.leaseMs } },
          run,
          steps,
          actions,
        );
        owned.push(...applied.http);
        stopExecutions.push(...applied.stopExecutions);
        readyTasks.push(...applied.readyTasks);
        if (applied.finished) {
          changed = true;
          // Read only when a run ends: its after-triggers need every runbook.
          for (const next of await startTriggeredRuns(trx, { config: this.config, runs: this.runs, fixedValueKey }, applied.finished, await this.catalog(trx)))
            woken.add(next.id);
          return;
        }
        if (!applied.progressed) return;
        changed = true;
      }
    });
    for (const executionId of stopExecutions) this.bus.emit('stop-requested', executionId);
    if (changed || stopExecutions.length > 0) {
      // A script step's task became ready: this process's runner claims at once (others hear the NOTIFY).
      for (const taskId of readyTasks) this.bus.emit('task-ready', taskId);
      this.bus.emit('run-changed', runId);
    }
    for (const id of woken) this.bus.emit('run-changed', id);
    for (const step of owned) {
      const done = this.runHttp(step);
      this.httpDone.add(done);
      void done.finally(() => this.httpDone.delete(done));
    }
  }

  private async runHttp(step: OwnedHttpStep): Promise<void> {
    const controller = new AbortController();
    this.http.set(step.stepRowId, controller);
    try {
      const target = step.target === null ? undefined : this.config.targets.get(step.target);
      const settings = this.config.http;
      const result = await runHttpStep(step.request, {
        allow: settings?.allow ?? EMPTY_NET_ALLOW,
        maskValues: [...(target?.secrets.values() ?? []), ...step.maskValues],
        redact: target?.redact ?? [],
        ...(settings ? { maxBodyBytes: settings.maxBodyBytes, maxRedirects: settings.maxRedirects } : {}),
        ...(this.options.resolve ? { resolve: this.options.resolve } : {}),
        signal: controller.signal,
      });
      const stopped = controller.signal.aborted && controller.signal.reason === 'shutdown';
      if (stopped) return;
      const values = httpStepValues(result);
      const output = result.output.length > MAX_HTTP_LOG_CHARS ? `${result.output.slice(0, MAX_HTTP_LOG_CHARS)}\n… (cut)` : result.output;
      // Retried until stored while this process runs: the result is the one write that must land.
      for (let attempt = 1; this.accepting || attempt <= 3; attempt++) {
        try {
          await transitionRunStep(this.db, {
            stepId: step.stepRowId,
            from: 'running',
            to: result.phase,
            actor: null,
            runnerKey: this.options.runnerKey,
            data: { status: result.status, durationMs: result.durationMs },
            set: { outputs: { http: values.http! }, output, failure_message: result.failureMessage },
          });
          break;
        } catch (error) {
          this.log.error({ err: error, runId: step.runId, step: step.stepId, attempt }, 'storing an http step result failed; retrying');
          await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
        }
      }
      this.bus.emit('run-changed', step.runId);
    } catch (error) {
      this.log.error({ err: error, runId: step.runId, step: step.stepId }, 'an http step crashed');
    } finally {
      this.http.delete(step.stepRowId);
    }
  }

  private async renewLeases(): Promise<void> {
    const ids = [...this.http.keys()];
    if (ids.length === 0) return;
    try {
      await this.db('run_steps')
        .whereIn('id', ids)
        .where({ phase: 'running', runner_key: this.options.runnerKey })
        .update({ lease_until: this.db.raw('now() + make_interval(secs => ?)', [this.options.leaseMs / 1000]) });
    } catch (error) {
      this.log.error({ err: error }, 'renewing http step leases failed');
    }
  }

  /**
   * Http steps whose process is gone: its runner key's liveness lock (src/runner/liveness.ts) has
   * stayed free past the reconnect grace, and longer after a server restart or failover
   * (LostRunnerJudge, as the runner's sweeper). Such a step fails as "runner lost" and is
   * never sent again (a request may not be idempotent). A live but slow owner keeps its lock, so
   * its step is never failed. Our own key on a step we do not run (its start committed but the
   * answer never reached us): failed once its lease lapsed.
   */
  private async sweepLostSteps(): Promise<void> {
    try {
      const running = (await this.db('run_steps')
        .where({ kind: 'http', phase: 'running' })
        .select('id', 'run_id', 'runner_id', 'runner_key', this.db.raw('lease_until < now() AS lease_expired'))) as Array<{
        id: number;
        run_id: number;
        runner_id: string | null;
        runner_key: number | null;
        lease_expired: boolean;
      }>;
      const others = new Set<number>();
      for (const step of running) {
        const key = step.runner_key === null ? null : Number(step.runner_key);
        if (!this.http.has(step.id) && key !== null && key !== this.options.runnerKey) others.add(key);
      }
      const lostKeys = new Set(await lostRunnerKeys(this.db, this.judge, others));
      for (const step of running) {
        if (this.http.has(step.id)) continue;
        const key = step.runner_key === null ? null : Number(step.runner_key);
        const lost = key === null || key === this.options.runnerKey ? step.lease_expired : lostKeys.has(key);
        if (!lost) continue;
        const failed = await this.db.transaction(async (trx) => {
          // Taking the lost runner's lock for this transaction: it cannot come back halfway.
          if (key !== null && key !== this.options.runnerKey && !(await lockLostRunner(trx, key))) return null;
          return transitionRunStep(trx, {
            stepId: step.id,
            from: 'running',
            to: 'failed',
            actor: null,
            data: { reason: 'runner-lost', runner: step.runner_id },
            set: {
              failure_message: `runner lost: the process running this request (${step.runner_id ?? 'unknown'}) went away; an http request is never sent twice, so it was not retried`,
            },
          });
        });
        if (failed) {
          this.log.warn({ runId: step.run_id, step: step.id, runner: step.runner_id }, 'failed an http step whose runner was lost');
          this.bus.emit('run-changed', step.run_id);
        }
      }
    } catch (error) {
      this.log.error({ err: error }, 'sweeping lost http steps failed');
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
