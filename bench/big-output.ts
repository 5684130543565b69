/**
 * A task that prints 500 MB: the app's memory must stay flat (backpressure on the SSH stream,
 * bounded buffers, stored output capped at runner.maxOutput). Samples the process's RSS every
 * 50 ms and reports the peak next to the baseline, with the throughput.
 */
import { startBenchEnv, type BenchEnv } from './env.js';

export async function benchBigOutput(env: BenchEnv, megabytes = 500): Promise<void> {
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const bytes = megabytes * 1_000_000;
  const started = performance.now();
  const created = await env.app.service.create({
    author: 'UAUTHOR',
    target: 'open',
    message: 'flood',
    type: null,
    script: `yes "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq" | head -c ${bytes}`,
    source: 'slack',
    sourceKey: null,
    channelId: 'CBIGOUT',
  });
  if (!created.ok) throw new Error(created.message);
  for (;;) {
    const row = await env.db('tasks').where({ id: created.task.id }).first('status');
    if (row.status === 'success' || row.status === 'failure') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  const stored = await env.db('executions').where({ task_id: created.task.id }).first('output_bytes');
  const mb = (n: number) => (n / 1024 / 1024).toFixed(0);
  console.log(
    `${`streaming ${megabytes} MB of output`.padEnd(44)} ${seconds.toFixed(1)} s (${(megabytes / seconds).toFixed(0)} MB/s), RSS ${mb(baseline)} MiB before, peak ${mb(peak)} MiB (+${mb(peak - baseline)}), stored ${mb(Number(stored.output_bytes))} MiB`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = await startBenchEnv();
  try {
    await benchBigOutput(env);
  } finally {
    await env.stop();
  }
}
