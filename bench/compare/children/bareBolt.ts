/**
 * The floor for acknowledgements: a bare Bolt app of the version countersign uses, with the same
 * receiver (ExpressReceiver on /slack/events), acking `/task` at once. Offline, Bolt needs an
 * `authorize` function (with `token` alone it calls auth.test first).
 */
import type { AddressInfo } from 'node:net';
import { App, ExpressReceiver, LogLevel } from '@slack/bolt';
import { serve } from './serve.mjs';

const { signingSecret } = JSON.parse(process.argv[2] ?? '{}') as { signingSecret: string };
const receiver = new ExpressReceiver({ signingSecret, endpoints: '/slack/events', logLevel: LogLevel.ERROR });
const app = new App({
  receiver,
  logLevel: LogLevel.ERROR,
  authorize: async () => ({ botToken: 'xoxb-bare', botId: 'BBARE', botUserId: 'UBARE' }),
});
app.command('/task', async ({ ack }) => {
  await ack({ response_type: 'ephemeral', text: 'ok' });
});
const server = await receiver.start({ port: 0, host: '127.0.0.1' });
const port = (server.address() as AddressInfo).port;
void app; // the receiver delivers to the app registered on it
serve({ url: `http://127.0.0.1:${port}` }, {}, async () => {
  await app.stop();
});
