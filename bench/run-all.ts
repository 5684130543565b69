/** `npm run bench`: every benchmark on one environment; prints figures, asserts nothing. */
import { benchAckLatency } from './ack-latency.js';
import { startBenchEnv } from './env.js';
import { benchRunToOutput } from './run-to-output.js';

const env = await startBenchEnv();
try {
  console.log(`countersign benchmarks on Node ${process.version}, loopback, embedded Postgres, OpenSSH sshd\n`);
  await benchAckLatency(env);
  await benchRunToOutput(env);
} finally {
  await env.stop();
}
