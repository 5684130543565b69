/**
 * CPU per Slack Web API call on countersign's side: WebClient on Node's global fetch (its default)
 * against WebClient on src/slack/slackFetch.ts (undici's request on a keep-alive Agent), the same
 * chat.postMessage with a card's worth of blocks, taking turns. The fake Slack answers from a
 * process of its own, so this process's CPU is the client's alone.
 * `tsx bench/slack-calls.ts [calls]`
 */
import { WebClient } from '@slack/web-api';
import { createSlackFetch } from '../src/slack/slackFetch.js';
import { startChild } from './compare/child.js';

const calls = Number(process.argv[2] ?? 3000);
const fake = await startChild<{ url: string }>('fakeSlack.ts', { token: 'xoxb-calls' });
const slackFetch = createSlackFetch();
const options = { slackApiUrl: fake.ready.url, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } };
const sides = [
  { name: 'WebClient on global fetch', client: new WebClient('xoxb-calls', options), cpu: 0, wall: 0 },
  { name: 'WebClient on slackFetch', client: new WebClient('xoxb-calls', { ...options, fetch: slackFetch.fetch }), cpu: 0, wall: 0 },
];
const blocks = Array.from({ length: 8 }, (_, i) => ({ type: 'section', text: { type: 'mrkdwn', text: `line ${i} `.repeat(20) } }));
const post = (client: WebClient, i: number) => client.chat.postMessage({ channel: `C${i % 5}`, text: 'card', blocks });
const cpuMs = () => {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
};
for (const side of sides) for (let i = 0; i < 300; i++) await post(side.client, i); // connections open, code warm
const ROUNDS = 6;
for (let round = 0; round < ROUNDS; round++) {
  for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
    const [cpu0, wall0] = [cpuMs(), performance.now()];
    for (let i = 0; i < calls / ROUNDS; i++) {
      const answer = await post(side.client, i);
      if (!answer.ok) throw new Error(`chat.postMessage: ${answer.error}`);
    }
    side.cpu += cpuMs() - cpu0;
    side.wall += performance.now() - wall0;
  }
}
const [fetchSide, ours] = sides as [(typeof sides)[0], (typeof sides)[0]];
for (const side of sides)
  console.log(`${side.name.padEnd(28)} CPU ${(side.cpu / calls).toFixed(3)} ms per call, ${(side.wall / calls).toFixed(3)} ms wall per call`);
console.log(`slackFetch: ${(ours.cpu / fetchSide.cpu).toFixed(2)}x the CPU of global fetch per call, ${(ours.wall / fetchSide.wall).toFixed(2)}x the time`);
await slackFetch.close();
await fake.stop();
process.exit(0);
