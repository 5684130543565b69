// @ts-check
/**
 * One countersign process for the comparison, on plain node from the build (dist/), wired by
 * startApp exactly as main.ts wires it (its own pools, runner, liveness lock, LISTEN connection),
 * with or without Slack (the fake Slack in the parent). Answers `run` (the author's Run, timed
 * here, in the process that handles it) and `close-pool` (the next run connects afresh).
 */
import { startApp } from '../../../dist/src/app.js';
import { loadConfigFile } from '../../../dist/src/config/load.js';
import { createLogger } from '../../../dist/src/log.js';
import { createDb } from '../../../dist/src/store/db.js';
import { serve } from './serve.mjs';

/** @type {{ databaseUrl: string; configPath: string; slack: { apiUrl: string; signingSecret: string; botToken: string } | null }} */
const args = JSON.parse(process.argv[2] ?? '{}');
const db = createDb(args.databaseUrl);
const app = await startApp({
  env: {
    slack: args.slack ? { signingSecret: args.slack.signingSecret, botToken: args.slack.botToken } : null,
    slackMissing: args.slack ? [] : ['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN'],
    slackApiUrl: args.slack?.apiUrl,
    port: 0,
  },
  config: loadConfigFile(args.configPath),
  db,
  databaseUrl: args.databaseUrl,
  log: createLogger(process.env.BENCH_LOG_LEVEL ?? 'silent'),
  host: '127.0.0.1',
});

serve(
  { url: app.url },
  {
    /** The author clicks Run: answers the wall clock (ms since the epoch, sub-ms) just before. */
    run: async (taskId) => {
      const clickedAt = performance.timeOrigin + performance.now();
      const result = await app.service.run(Number(taskId), 'UAUTHOR');
      if (!result.ok) throw new Error(result.message);
      return clickedAt;
    },
    'close-pool': () => {
      app.pool.closeAll();
      return null;
    },
  },
  async () => {
    await app.stop(5000);
    await db.destroy();
  },
);
