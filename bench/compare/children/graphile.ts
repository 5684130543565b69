/**
 * The alternative queue: graphile-worker with the settings of its own perfTest
 * (perfTest/graphile.config.js: 24 concurrent jobs, a pool of 25, a local queue of 500 refetched
 * after 10 ms, completions and failures not batched), running the same ssh2 jobs as the raw
 * floors: `exec true`, and countersign's remote wrapper (what a run does on the host), on a
 * pooled connection per host, at most 9 channels at once per connection.
 */
import { run } from 'graphile-worker';
import { serve } from './serve.mjs';
import { encodeStdin, newRunToken, remoteCommand } from '../../../src/exec/remoteCommand.js';
import { Channels, connect, exec, type RawHost } from '../rawSsh.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { databaseUrl: string; hosts: RawHost[] };
const CONCURRENT_JOBS = 24;
const pools = new Map<number, Promise<Channels>>();
const channelsFor = (index: number): Promise<Channels> => {
  let pool = pools.get(index);
  if (!pool) {
    pool = connect(args.hosts[index]!).then((client) => new Channels(client, 9));
    pools.set(index, pool);
  }
  return pool;
};

const runner = await run({
  noHandleSignals: true,
  taskList: {
    ssh_true: async (payload) => {
      const { host } = payload as { host: number };
      const channels = await channelsFor(host);
      const code = await channels.run((client) => exec(client, 'true'));
      if (code !== 0) throw new Error(`exit ${code}`);
    },
    // What a countersign run does on the host: its wrapper, with a fresh token, fed the script on stdin.
    ssh_wrapper: async (payload) => {
      const { host } = payload as { host: number };
      const channels = await channelsFor(host);
      const command = remoteCommand({ type: 'sh', token: newRunToken(), scriptBytes: 4, runAs: null });
      const code = await channels.run((client) => exec(client, command, encodeStdin(new Map(), 'true')));
      if (code !== 0) throw new Error(`exit ${code}`);
    },
  },
  preset: {
    worker: {
      connectionString: args.databaseUrl,
      concurrentJobs: CONCURRENT_JOBS,
      maxPoolSize: CONCURRENT_JOBS + 1,
      localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  },
  logger: new (await import('graphile-worker')).Logger(() => () => undefined),
});
// Connections opened before timing starts, as countersign's and the raw floor's are.
await Promise.all(args.hosts.map((_, index) => channelsFor(index)));

serve({ pid: process.pid }, {}, async () => {
  await runner.stop();
  for (const pool of pools.values()) (await pool).client.end();
});
