/**
 * Time from the author's Run click to the first output line visible in the task's thread (the
 * fake Slack records when the message arrived), and to the task's end in Postgres. The script
 * prints at once, so this measures claim + SSH connect + exec + output batching + Slack write.
 */
import { report, startBenchEnv, type BenchEnv } from './env.js';

export async function benchRunToOutput(env: BenchEnv, rounds = 20): Promise<void> {
  const toOutput: number[] = [];
  const toDone: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const marker = `first-line-${i}-${Date.now()}`;
    const ack = await env.driver.command({ text: `run reviewed -m "bench" echo ${marker}; sleep 0.2`, user: 'UAUTHOR', channel: 'CTASKS' });
    const id = Number(/#(\d+)/.exec(String(ack.json?.text))?.[1]);
    const request = await env.fake.waitFor(() => env.fake.messages('CREVIEW').find((m) => JSON.stringify(m.blocks ?? []).includes(`*#${id}*`)), 10_000);
    await env.driver.clickButton({ message: request, actionId: 'task_approve', user: 'UREVIEWER' });
    const card = await env.fake.waitFor(
      () => env.fake.messages('CTASKS').find((m) => JSON.stringify(m.blocks ?? []).includes(`*#${id}*`) && JSON.stringify(m.blocks ?? []).includes('task_run')),
      10_000,
    );
    const clicked = Date.now();
    await env.driver.clickButton({ message: structuredClone(card), actionId: 'task_run', user: 'UAUTHOR' });
    const shown = await env.fake.waitFor(() => env.fake.thread('CTASKS', card.ts).find((m) => (m.text ?? '').includes(marker)), 15_000);
    toOutput.push(shown.history[0]!.at - clicked);
    for (;;) {
      const row = await env.db('tasks').where({ id }).first('status', 'finished_at');
      if (row.status === 'success') {
        toDone.push(new Date(row.finished_at).getTime() - clicked);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // Let the channel's post budget refill (Slack: ~1 post/s per channel, short bursts): people do not click Run 20 times a minute in one channel.
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  report('Run click -> first output line in the thread', toOutput);
  report('Run click -> task stored as success', toDone);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = await startBenchEnv();
  try {
    await benchRunToOutput(env);
  } finally {
    await env.stop();
  }
}
