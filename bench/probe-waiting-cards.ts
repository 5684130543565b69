/**
 * Live heap a card waiting for its channel's turn holds. In a burst, Slack takes about one post a
 * second per channel, so thousands of cards and review requests of one channel wait minutes for
 * their turn; whatever each holds meanwhile is copied by every young-generation collection and
 * grows the old generation. This sends `/task run` commands in one channel (all but the first
 * three cards wait, and as many review requests), then as many `/task help` (nothing waits: the
 * floor, what a command leaves behind at all), and prints the heap after a full collection, per
 * command, for each.
 *
 *   node --expose-gc --import tsx bench/probe-waiting-cards.ts [commands]
 */
import { startBenchEnv } from './env.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc --import tsx bench/probe-waiting-cards.ts');
  process.exit(1);
}
const commands = Number(process.argv[2] ?? 3000);
const env = await startBenchEnv();
let sent = 0;
const send = async (text: (n: number) => string, expect: RegExp, n: number) => {
  for (let i = 0; i < n; i++) {
    const answer = await env.driver.command({ text: text(sent++), user: 'UAUTHOR', channel: 'CACKBENCH' });
    if (!expect.test(String(answer.json?.text))) throw new Error(answer.text);
  }
};
const heapUsed = async () => {
  await new Promise((resolve) => setTimeout(resolve, 500));
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const run = (n: number) => send((k) => `run ackbench -m "waiting ${k}" uptime`, /Created/, n);
const help = (n: number) => send(() => 'help', /./, n);

// Warm up both paths (code, pools, caches) before measuring.
await run(500);
await help(500);
const before = await heapUsed();
await run(commands);
const afterRuns = await heapUsed();
await help(commands);
const afterHelp = await heapUsed();
const perCommand = (bytes: number) => `${(bytes / commands / 1024).toFixed(2)} KB`;
console.log(`${commands} commands of each, in one channel`);
console.log(`  /task run, its card and review request waiting: ${perCommand(afterRuns - before)} of live heap a command`);
console.log(`  /task help, nothing waiting (the floor): ${perCommand(afterHelp - afterRuns)} a command`);
await env.stop();
process.exit(0);
