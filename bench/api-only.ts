/** `npx tsx bench/api-only.ts`: just the API load benchmark. */
import { benchApiLoad } from './api-load.js';
import { startBenchEnv } from './env.js';

const env = await startBenchEnv();
try {
  await benchApiLoad(env);
} finally {
  await env.stop();
}
