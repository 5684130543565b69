/**
 * The Postgres crash scenario of the fault suite, shared by its 5 s and 40 s files: ten tasks
 * running on two replicas (this test's app and a separate process), the database server killed
 * with SIGKILL mid-run, down for `outageMs`, then started again on the same data. Every task must
 * end with its real result: nothing run twice, nothing lost, no healthy run killed.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { startAppProcess, type AppProcess } from './appProcess.js';
import { assessRuns, markedScript, openGate, printFigures, whenReachable, type PlannedRun } from './faultFigures.js';
import { Harness } from './harness.js';
import { startOwnPostgres, type OwnPostgres } from './ownPostgres.js';
import { waitFor } from './waitFor.js';

export interface CrashSetup {
  pg: OwnPostgres;
  h: Harness;
  other: AppProcess;
  stop(): Promise<void>;
}

/** Lease 10 s (the 40 s outage is four times longer); a silent runner is given up after 20 s. */
export const CRASH_RUNNER_YAML = '  leaseTimeout: 10s\n  livenessTimeout: 20s\n  pollInterval: 1s\n  killGrace: 1s\n  shutdownGrace: 5s';

export async function startCrashSetup(): Promise<CrashSetup> {
  const pg = await startOwnPostgres();
  const database = await pg.createDatabase();
  const h = await Harness.start({ database, runnerYaml: CRASH_RUNNER_YAML });
  const other = await startAppProcess(h.processEnv());
  return {
    pg,
    h,
    other,
    async stop() {
      await other.stop().catch(() => undefined);
      await h.stop().catch(() => undefined);
      await pg.stop();
    },
  };
}

/** Runs the scenario and asserts the four figures are zero; `sleeps[i]` is task i's run time in seconds. */
export async function crashWhileRunning(setup: CrashSetup, outageMs: number, sleeps: readonly number[]): Promise<void> {
  const { h, pg } = setup;
  const dir = h.scratchDir();
  const runs: PlannedRun[] = sleeps.map((_, index) => ({ index, exitCode: index % 4 === 3 ? 3 : 0 }));
  for (const run of runs) {
    run.taskId = await h.createTask(`run sandbox -m "crash fault ${run.index}" ${markedScript(dir, run, sleeps[run.index]!, true)}`);
  }
  const ids = runs.map((run) => run.taskId!);
  await waitFor(
    async () =>
      Number((await h.database.db('tasks').whereIn('id', ids).where({ status: 'running' }).count<{ count: string }[]>('* as count'))[0]?.count) === ids.length,
    30_000,
    'all ten tasks running',
  );
  // Every script has started on the host before the server dies.
  openGate(dir);
  await waitFor(async () => runs.every((run) => readTrace(dir, run.index).includes('start')), 15_000, 'every script started');
  const owners = await h.database.db('executions').whereIn('task_id', ids).select('runner_id');
  const byRunner = new Map<string, number>();
  for (const { runner_id } of owners as Array<{ runner_id: string }>) byRunner.set(runner_id, (byRunner.get(runner_id) ?? 0) + 1);

  const crashedAt = Date.now();
  await pg.crash();
  await new Promise((resolve) => setTimeout(resolve, outageMs));
  const restartAt = Date.now();
  await pg.start();
  const backAt = Date.now();

  const longest = Math.max(...sleeps) * 1000;
  const finished = await waitFor(
    async () => {
      const rows = await whenReachable(() => h.database.db('tasks').whereIn('id', ids).select('id', 'status', 'started_at', 'finished_at'));
      const done = rows.filter((row: { status: string }) => ['success', 'failure', 'killed'].includes(row.status));
      return done.length === ids.length ? rows : undefined;
    },
    longest + outageMs + 90_000,
    'every task finished',
    250,
  );
  const lastFinished = Math.max(...finished.map((row: { finished_at: Date }) => row.finished_at.getTime()));
  const figures = await assessRuns(h.database.db, dir, runs);
  // A script ends about its sleep after its claim: those that ended before the restart had to keep their result until then.
  const startedAt = new Map(finished.map((row: { id: number; started_at: Date }) => [row.id, row.started_at.getTime()]));
  const duringOutage = runs.filter((run) => (startedAt.get(run.taskId!) ?? Infinity) + sleeps[run.index]! * 1000 < restartAt);
  const endedDuringOutage = duringOutage.length;
  const finishedAt = new Map(finished.map((row: { id: number; finished_at: Date }) => [row.id, row.finished_at.getTime()]));
  const heldResultsStored = Math.max(0, ...duringOutage.map((run) => (finishedAt.get(run.taskId!) ?? 0) - backAt));
  printFigures(`Postgres crashed (SIGKILL) and restarted, down ${outageMs / 1000} s, 10 tasks on two replicas`, figures, {
    'runs per replica': [...byRunner.values()].join(' + '),
    'scripts that ended while the database was down': endedDuringOutage,
    'server down for (s)': ((backAt - crashedAt) / 1000).toFixed(1),
    'crash recovery and start (s)': ((backAt - restartAt) / 1000).toFixed(1),
    'results held through the outage, all stored within (s of the server being back)': (heldResultsStored / 1000).toFixed(1),
    'last result stored after the server was back (s)': ((lastFinished - backAt) / 1000).toFixed(1),
  });
  expect(figures.problems).toEqual([]);
  expect([figures.doubleRuns, figures.lostTasks, figures.wrongResults, figures.healthyRunsKilled]).toEqual([0, 0, 0, 0]);
  expect(endedDuringOutage).toBeGreaterThan(0);
}

function readTrace(dir: string, index: number): string {
  try {
    return readFileSync(`${dir}/run-${index}`, 'utf8');
  } catch {
    return '';
  }
}
