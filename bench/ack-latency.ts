/**
 * How fast /task is acknowledged: signed HTTP request -> Bolt -> parse -> insert the task (and
 * its audit events) in Postgres -> ephemeral answer. Slack gives up after 3000 ms.
 */
import { report, startBenchEnv, type BenchEnv } from './env.js';

export async function benchAckLatency(env: BenchEnv, rounds = 300): Promise<void> {
  const help: number[] = [];
  const run: number[] = [];
  for (let i = 0; i < 20; i++) await env.driver.command({ text: 'help', user: 'UAUTHOR', channel: 'CACKBENCH' }); // warm-up
  for (let i = 0; i < rounds; i++) {
    help.push((await env.driver.command({ text: 'help', user: 'UAUTHOR', channel: 'CACKBENCH' })).ms);
    const response = await env.driver.command({ text: `run ackbench -m "bench ${i}" uptime`, user: 'UAUTHOR', channel: 'CACKBENCH' });
    if (!/Created/.test(String(response.json?.text))) throw new Error(`unexpected answer: ${response.text}`);
    run.push(response.ms);
  }
  report('ack of /task help (parse only)', help);
  report('ack of /task run (task created in Postgres)', run);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = await startBenchEnv();
  try {
    await benchAckLatency(env);
  } finally {
    await env.stop();
  }
}
