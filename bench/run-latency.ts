/**
 * Time from Run to the script starting on the host, on a pooled (warm) connection and on a new
 * one (cold: the pool is emptied first, so the run pays TCP + key exchange + auth). The script's
 * first act is to print the host's clock in ns; host and app share this machine's clock.
 */
import { report, startBenchEnv, type BenchEnv } from './env.js';

async function runOnce(env: BenchEnv): Promise<number> {
  const created = await env.app.service.create({
    author: 'UAUTHOR',
    target: 'reviewed',
    message: 'bench',
    type: null,
    script: 'date +%s%N',
    source: 'api',
    sourceKey: null,
    channelId: null,
  });
  if (!created.ok) throw new Error(created.message);
  const id = created.task.id;
  const approved = await env.app.service.approve(id, 'UREVIEWER');
  if (!approved.ok) throw new Error(approved.message);
  const clicked = performance.timeOrigin + performance.now();
  const ran = await env.app.service.run(id, 'UAUTHOR');
  if (!ran.ok) throw new Error(ran.message);
  for (;;) {
    const row = await env.db('tasks').where({ id }).first('status');
    if (row.status === 'success') break;
    if (row.status === 'failure') throw new Error(`task ${id} failed`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const output = await env.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data');
  const remoteStartNs = BigInt(output.join('').trim());
  return Number(remoteStartNs / 1000n) / 1000 - clicked;
}

export async function benchRunLatency(env: BenchEnv, rounds = 40): Promise<void> {
  const warm: number[] = [];
  const cold: number[] = [];
  await runOnce(env); // opens the connection
  for (let i = 0; i < rounds; i++) warm.push(await runOnce(env));
  for (let i = 0; i < rounds; i++) {
    env.app.pool.closeAll();
    cold.push(await runOnce(env));
  }
  report('Run -> remote start, warm (pooled) connection', warm);
  report('Run -> remote start, cold (new) connection', cold);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = await startBenchEnv();
  try {
    await benchRunLatency(env);
  } finally {
    await env.stop();
  }
}
