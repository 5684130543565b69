/**
 * Firing delay of schedules: from a firing's scheduled time (schedule_firings.fire_at) to the
 * decision (tasks.created_at: the start of the transaction that decided the firing and made its
 * task), to the run's start as the database saw it (tasks.started_at, set when a runner claims
 * the task) and to the script's first act on the host (it prints the host's clock in ns; host
 * and app share this machine's clock). One schedule firing every second on a target without
 * review, real clock, over `firings` firings. `tsx bench/schedule-firing.ts` runs it alone.
 */
import { report, startBenchEnv, type BenchEnv } from './env.js';

export async function benchScheduleFiring(env: BenchEnv, firings = 100): Promise<void> {
  const added = await env.app.schedules.add({
    target: 'open',
    cron: '* * * * * *',
    tz: 'UTC',
    channel: null,
    message: 'bench',
    type: null,
    notify: 'failure',
    overlap: 'allow',
    catchUp: 'skip',
    script: 'date +%s%N',
    author: 'UAUTHOR',
    originChannel: null,
    sourceKey: null,
  });
  if (!added.ok) throw new Error(added.message);
  const id = added.schedule.id;
  // One extra firing first: it opens the SSH connection (a cold start is measured elsewhere).
  const wanted = firings + 1;
  for (;;) {
    const [row] = await env
      .db('schedule_firings as f')
      .join('tasks as t', 't.id', 'f.task_id')
      .where('f.schedule_id', id)
      .whereIn('t.status', ['success', 'failure'])
      .count<{ count: string }[]>('* as count');
    if (Number(row?.count ?? 0) >= wanted) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await env.app.schedules.remove(id, 'UAUTHOR');
  const rows: Array<{ fire_at: Date; created_at: Date; started_at: Date; task_id: string }> = await env
    .db('schedule_firings as f')
    .join('tasks as t', 't.id', 'f.task_id')
    .where('f.schedule_id', id)
    .where('t.status', 'success')
    .orderBy('f.fire_at')
    .offset(1)
    .limit(firings)
    .select('f.fire_at', 't.created_at', 't.started_at', 'f.task_id');
  const toDecision: number[] = [];
  const toClaim: number[] = [];
  const toRemote: number[] = [];
  for (const row of rows) {
    toDecision.push(row.created_at.getTime() - row.fire_at.getTime());
    toClaim.push(row.started_at.getTime() - row.fire_at.getTime());
    const output: string[] = await env
      .db('output_chunks as o')
      .join('executions as e', 'e.id', 'o.execution_id')
      .where('e.task_id', row.task_id)
      .pluck('o.data');
    const remoteNs = BigInt(output.join('').trim());
    toRemote.push(Number(remoteNs / 1000n) / 1000 - row.fire_at.getTime());
  }
  const skipped = await env.db('schedule_firings').where({ schedule_id: id }).whereNot({ outcome: 'fired' }).count<{ count: string }[]>('* as count');
  report('schedule fire time -> decision started', toDecision);
  report('schedule fire time -> tasks.started_at', toClaim);
  report('schedule fire time -> remote start', toRemote);
  console.log(`  (${rows.length} firings measured, ${Number(skipped[0]?.count ?? 0)} not fired)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = await startBenchEnv();
  try {
    await benchScheduleFiring(env, Number(process.argv[2] ?? 100));
  } finally {
    await env.stop();
  }
}
