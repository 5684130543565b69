/**
 * The floors for acknowledgements: a bare Bolt app of the version countersign uses, with the same
 * receiver (ExpressReceiver on /slack/events) and options, acking `/task` at once. Offline, Bolt needs an
 * `authorize` function (with `token` alone it calls auth.test first).
 *
 * Given `databaseUrl`, it first stores the command with one plain INSERT (committed, as every
 * statement is by default) and acks with the row's id: the least a "task stored" ack must wait
 * for, on the same Postgres as countersign.
 */
import type { AddressInfo } from 'node:net';
import { App, ExpressReceiver, LogLevel } from '@slack/bolt';
import pg from 'pg';
import { serve } from './serve.mjs';

const { signingSecret, databaseUrl } = JSON.parse(process.argv[2] ?? '{}') as { signingSecret: string; databaseUrl?: string };
// Idle connections kept as long as knex keeps countersign's (30 s): the other sides' blocks run between this one's.
const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 10, idleTimeoutMillis: 30_000 }) : null;
await pool?.query(
  `CREATE TABLE IF NOT EXISTS bench_bolt_commands (
     id bigserial PRIMARY KEY, author text NOT NULL, channel text NOT NULL, text text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
);
const receiver = new ExpressReceiver({ signingSecret, endpoints: '/slack/events', logLevel: LogLevel.ERROR });
const app = new App({
  receiver,
  logLevel: LogLevel.ERROR,
  authorize: async () => ({ botToken: 'xoxb-bare', botId: 'BBARE', botUserId: 'UBARE' }),
  // As countersign runs Bolt: its conversation store is off there too.
  convoStore: false,
});
app.command('/task', async ({ ack, command }) => {
  if (!pool) return void (await ack({ response_type: 'ephemeral', text: 'ok' }));
  const { rows } = await pool.query<{ id: string }>('INSERT INTO bench_bolt_commands (author, channel, text) VALUES ($1, $2, $3) RETURNING id', [
    command.user_id,
    command.channel_id,
    command.text,
  ]);
  await ack({ response_type: 'ephemeral', text: `Stored #${rows[0]!.id}` });
});
const server = await receiver.start({ port: 0, host: '127.0.0.1' });
const port = (server.address() as AddressInfo).port;
void app; // the receiver delivers to the app registered on it
serve({ url: `http://127.0.0.1:${port}` }, {}, async () => {
  await app.stop();
  await pool?.end();
});
