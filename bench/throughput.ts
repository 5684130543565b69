/**
 * Tasks per second through claim -> run -> done for a trivial script on one host: N tasks are
 * made ready in one transaction (one NOTIFY each, as usual), and the clock stops when the last
 * one is stored as a success. One host with OpenSSH's default MaxSessions (10: 9 runs at once)
 * and one allowing 40.
 */
import { insertReadyTasks } from './readyTasks.js';
import { startBenchEnv, type BenchEnv } from './env.js';

export async function benchThroughput(env: BenchEnv, target: string, tasks = 400): Promise<void> {
  const started = performance.now();
  const ids = await insertReadyTasks(env.db, [target], tasks);
  for (;;) {
    const [row] = await env.db('tasks').whereIn('id', ids).whereIn('status', ['success', 'failure']).count<{ count: string }[]>('* as count');
    if (Number(row?.count) >= tasks) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  const failed = await env.db('tasks').whereIn('id', ids).where({ status: 'failure' }).count<{ count: string }[]>('* as count');
  console.log(
    `${`claim -> run -> done, ${target} host`.padEnd(44)} ${tasks} tasks in ${seconds.toFixed(2)} s = ${(tasks / seconds).toFixed(1)} tasks/s (${Number(failed[0]?.count)} failed)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = await startBenchEnv();
  try {
    await benchThroughput(env, 'open');
    await benchThroughput(env, 'wide');
  } finally {
    await env.stop();
  }
}
