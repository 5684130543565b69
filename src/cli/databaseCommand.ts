/**
 * What the operator commands that work on the database (`npm run token`, `npm run links`)
 * share: DATABASE_URL, else the embedded Postgres under .data/ (the running app's when it is
 * up, else started for the command), migrated; usage errors exit 2 with the usage, others 1.
 */
import { readEnv } from '../config/env.js';
import { createDb, type Db } from '../store/db.js';
import { runningEmbeddedUrl, startEmbeddedPostgres, type EmbeddedDatabase } from '../store/embeddedPostgres.js';
import { migrate } from '../store/migrate.js';

/** A mistake in the command line: answered with the usage. */
export class UsageError extends Error {}

export type DatabaseCommand = (args: string[], db: Db, out: (line: string) => void) => Promise<void>;

async function runOnDatabase(command: DatabaseCommand): Promise<void> {
  const env = readEnv();
  let embedded: EmbeddedDatabase | null = null;
  let url = env.databaseUrl ?? runningEmbeddedUrl(env.dataDir);
  if (!url) {
    embedded = await startEmbeddedPostgres({ dataDir: env.dataDir });
    url = embedded.url;
  }
  const db = createDb(url, 2);
  try {
    await migrate(db);
    await command(process.argv.slice(2), db, (line) => process.stdout.write(`${line}\n`));
  } finally {
    await db.destroy();
    await embedded?.stop();
  }
}

/** Runs `command` when `moduleUrl` is the script node was started with (not when a test imports it). */
export function runWhenMain(moduleUrl: string, name: string, usage: string, command: DatabaseCommand): void {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  runOnDatabase(command).catch((error: unknown) => {
    process.stderr.write(error instanceof UsageError ? `${error.message}\n${usage}\n` : `${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  });
}
