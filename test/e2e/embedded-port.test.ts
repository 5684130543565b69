/**
 * The embedded Postgres on a port another process took between our pick and Postgres's bind (test
 * files start servers side by side; the suite once failed a whole file on it): it starts on another
 * port. A port the caller named is tried once.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../src/store/embeddedPostgres.js';

describe('the embedded Postgres and a port taken under it', () => {
  const dirs: string[] = [];
  const listeners: Server[] = [];
  afterAll(() => {
    for (const listener of listeners) listener.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** A port something else is listening on, as a parallel test's server would. */
  async function takenPort(): Promise<number> {
    const listener = createServer();
    listeners.push(listener);
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    return (listener.address() as { port: number }).port;
  }
  function dataDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-port-'));
    // The server runs as the unprivileged postgres user, which must be able to enter this dir.
    chmodSync(dir, 0o755);
    dirs.push(dir);
    return dir;
  }

  it('starts on another port when the one it picked is taken before it binds', async () => {
    const taken = await takenPort();
    const picks: number[] = [];
    const server = await startEmbeddedPostgres({
      dataDir: dataDir(),
      fast: true,
      // The first pick is the taken port (the race lost), then a free one.
      pickPort: async () => {
        if (picks.length === 0) {
          picks.push(taken);
          return taken;
        }
        const free = await takenPort();
        listeners.pop()?.close();
        picks.push(free);
        return free;
      },
    });
    try {
      expect(picks).toHaveLength(2);
      expect(server.port).toBe(picks[1]);
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      await client.end();
    } finally {
      await server.stop();
    }
  }, 60_000);

  it('fails with what to do when the port it was told to use is taken', async () => {
    const taken = await takenPort();
    await expect(startEmbeddedPostgres({ dataDir: dataDir(), fast: true, port: taken })).rejects.toThrow(/did not start.*set DATABASE_URL/);
  }, 60_000);
});
