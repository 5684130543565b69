/**
 * `npm start`: validate env and config (a mistake stops the start, naming the field), open
 * Postgres (embedded under .data/ when DATABASE_URL is unset), migrate, serve, and on SIGTERM
 * stop taking work and let running tasks finish for a grace period.
 */
import { existsSync } from 'node:fs';
import { SHUTDOWN_MARGIN_MS, startApp } from './app.js';
import { DEFAULT_RUNNER_SETTINGS, type Config } from './config/config.js';
import { readEnv } from './config/env.js';
import { ConfigError } from './config/errors.js';
import { loadConfigFile } from './config/load.js';
import { createLogger } from './log.js';
import { createDb } from './store/db.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embeddedPostgres.js';
import { migrate } from './store/migrate.js';

async function main(): Promise<void> {
  const env = readEnv();
  const log = createLogger(env.logLevel);
  // A bug in one background job must not take every running task down with the process.
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));

  let config: Config;
  if (!env.configPathExplicit && !existsSync(env.configPath)) {
    log.warn(`no ${env.configPath} found: starting with no targets (copy countersign.example.yml to countersign.yml to add some)`);
    config = { runner: DEFAULT_RUNNER_SETTINGS, targets: new Map() };
  } else {
    config = loadConfigFile(env.configPath);
  }

  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = env.databaseUrl;
  if (databaseUrl === undefined) {
    log.info({ dir: env.dataDir }, 'DATABASE_URL is not set: starting the embedded Postgres');
    embedded = await startEmbeddedPostgres({ dataDir: env.dataDir, onLog: (line) => log.debug({ component: 'postgres' }, line) });
    databaseUrl = embedded.url;
  }
  const db = createDb(databaseUrl);
  const applied = await migrate(db);
  if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');

  const app = await startApp({ env, config, db, databaseUrl, log });
  log.info({ url: app.url, targets: [...config.targets.keys()] }, `countersign is ready on ${app.url} (health: ${app.url}/healthz)`);

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const limitMs = config.runner.shutdownGraceMs + config.runner.killGraceMs + SHUTDOWN_MARGIN_MS;
    log.info({ signal, limitMs }, 'shutting down: no new tasks; running ones get a grace period');
    // Whatever hangs (an SSH host, the database), the process ends within the limit: past it,
    // runs not yet stored are left to the other replicas, which see this runner's lock gone.
    setTimeout(() => {
      log.error({ limitMs }, 'shutdown did not finish in time; exiting anyway');
      process.exit(1);
    }, limitMs - 500);
    try {
      await app.stop(config.runner.shutdownGraceMs);
      await Promise.race([db.destroy(), new Promise((resolve) => setTimeout(resolve, 1000))]);
      await embedded?.stop();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`countersign cannot start: ${error.message}\n`);
  } else {
    process.stderr.write(`countersign cannot start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exit(1);
});
