/** `npm run bench`: every benchmark on one environment; prints figures, asserts nothing. */
import { benchAckLatency } from './ack-latency.js';
import { benchApiLoad } from './api-load.js';
import { benchBigOutput } from './big-output.js';
import { startBenchEnv } from './env.js';
import { benchRunLatency } from './run-latency.js';
import { benchRunToOutput } from './run-to-output.js';
import { benchThroughput } from './throughput.js';

const env = await startBenchEnv();
try {
  console.log(`countersign benchmarks on Node ${process.version}, loopback, embedded Postgres, OpenSSH sshd\n`);
  await benchAckLatency(env);
  await benchRunToOutput(env);
  await benchRunLatency(env);
  await benchThroughput(env, 'open');
  await benchThroughput(env, 'wide');
  await benchBigOutput(env);
  await benchApiLoad(env);
} finally {
  await env.stop();
}
