/**
 * The fake Slack Web API in a process of its own, for the sections that time requests: the
 * cards, review requests and Home views countersign posts after each ack are answered here, not
 * on the load generator's event loop (real Slack is another machine; a bare Bolt app posts
 * nothing, so sharing the generator's loop with the fake would charge countersign twice).
 */
import { startFakeSlack, type FakeSlackOptions } from '../../../test/support/fakeSlack.js';
import { serve } from './serve.mjs';

const options = JSON.parse(process.argv[2] ?? '{}') as FakeSlackOptions;
const fake = await startFakeSlack({ ...options, postMessageBurst: Number.POSITIVE_INFINITY });
serve({ url: fake.url }, { calls: () => fake.calls.length }, async () => {
  await fake.close();
});
