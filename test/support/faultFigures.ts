/**
 * The fault suite's bookkeeping: scripts that leave a trace on the host of each start and each
 * normal end, and the four figures every fault must keep at zero:
 *
 *   double runs          a script started more than once, or a task with more than one run
 *   lost tasks           a task not finished at the end, or ended as "runner lost"
 *   wrong results        a finished task whose status, exit code or last line is not what its
 *                        script did
 *   healthy runs killed  a script that did not reach its end on the host, or a task ended as
 *                        killed, interrupted or runner lost
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isTerminal } from '../../src/domain/lifecycle.js';
import type { Task } from '../../src/domain/task.js';
import type { Db } from '../../src/store/db.js';
import { getTask } from '../../src/store/tasks.js';

export interface PlannedRun {
  index: number;
  /** What the script exits with: 0 or a failure code. */
  exitCode: number;
  taskId?: number;
}

/**
 * A script that records its start and end in `dir`, runs `seconds`, prints its marker and exits.
 * With `gate`, it waits (before its start) until the file `<dir>/go` exists, so a test can have
 * every task running before the clocks start.
 */
export function markedScript(dir: string, run: PlannedRun, seconds: number, gate = false): string {
  const trace = `${dir}/run-${run.index}`;
  const wait = gate ? `while [ ! -e ${dir}/go ]; do sleep 0.1; done; ` : '';
  return `${wait}echo start >> ${trace}; sleep ${seconds}; echo end >> ${trace}; echo result-${run.index}; exit ${run.exitCode}`;
}

/** Opens the gate of markedScript(..., gate = true). */
export function openGate(dir: string): void {
  writeFileSync(`${dir}/go`, '');
}

export interface Figures {
  tasks: number;
  doubleRuns: number;
  lostTasks: number;
  wrongResults: number;
  healthyRunsKilled: number;
  problems: string[];
}

export async function assessRuns(db: Db, dir: string, runs: readonly PlannedRun[]): Promise<Figures> {
  const figures: Figures = { tasks: runs.length, doubleRuns: 0, lostTasks: 0, wrongResults: 0, healthyRunsKilled: 0, problems: [] };
  for (const run of runs) {
    const task = run.taskId === undefined ? null : await getTask(db, run.taskId);
    const trace = existsSync(`${dir}/run-${run.index}`) ? readFileSync(`${dir}/run-${run.index}`, 'utf8').split('\n').filter(Boolean) : [];
    const starts = trace.filter((line) => line === 'start').length;
    const ends = trace.filter((line) => line === 'end').length;
    const executions =
      run.taskId === undefined ? 0 : Number((await db('executions').where({ task_id: run.taskId }).count<{ count: string }[]>('* as count'))[0]?.count ?? 0);
    const say = (what: string) => figures.problems.push(`#${run.taskId ?? '?'} (run ${run.index}): ${what}`);
    if (starts > 1 || executions > 1) {
      figures.doubleRuns++;
      say(`started ${starts} times, ${executions} runs`);
    }
    const lostReason = /runner lost|interrupted/.test(task?.result.failureMessage ?? '');
    if (!task || !isTerminal(task.status) || lostReason) {
      figures.lostTasks++;
      say(`ended ${task?.status ?? 'missing'}${task?.result.failureMessage ? ` (${task.result.failureMessage})` : ''}`);
    } else if (!rightResult(task, run)) {
      figures.wrongResults++;
      say(`ended ${task.status}, exit ${task.result.exitCode}, last line ${JSON.stringify(task.result.lastLine)}: expected exit ${run.exitCode}`);
    }
    if (ends < 1 || task?.status === 'killed' || lostReason) {
      figures.healthyRunsKilled++;
      say(`its script ${ends < 1 ? 'never reached its end on the host' : 'ran to its end'}; task ${task?.status ?? 'missing'}`);
    }
  }
  return figures;
}

function rightResult(task: Task, run: PlannedRun): boolean {
  const status = run.exitCode === 0 ? 'success' : 'failure';
  return task.status === status && task.result.exitCode === run.exitCode && task.result.lastLine === `result-${run.index}`;
}

/** Prints the figures (and anything else measured) in one block the report can quote. */
export function printFigures(fault: string, figures: Figures, measured: Record<string, string | number>): void {
  const lines = [
    `FAULT ${fault}`,
    `  tasks ${figures.tasks}: double runs ${figures.doubleRuns} / lost tasks ${figures.lostTasks} / wrong results ${figures.wrongResults} / healthy runs killed ${figures.healthyRunsKilled}`,
    ...Object.entries(measured).map(([name, value]) => `  ${name}: ${value}`),
    ...figures.problems.map((problem) => `  problem: ${problem}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Retries `read` through a database outage (the test's own reads fail while the server is down). */
export async function whenReachable<T>(read: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await read();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
