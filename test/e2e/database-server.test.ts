/**
 * Which server answers (review of issue 10, H3): the sweepers tell a restart or a failover from
 * the server's start time, and its cluster id and timeline when the role may read pg_control.
 * Some managed services revoke pg_control_system() from ordinary roles: the start time alone is
 * then used, and nothing fails.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/store/db.js';
import { databaseServer } from '../../src/store/executions.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('databaseServer', () => {
  let database: TestDatabase;
  let restricted: Db | null = null;
  const role = `app_${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await restricted?.destroy();
    if (!database) return;
    try {
      // Roles are the server's, not the database's: dropped while this database's connections are still open, and not left behind.
      await database.db.raw(`DROP ROLE IF EXISTS ${role}`);
      const left = await database.db('pg_roles').where({ rolname: role }).count<{ count: string }[]>('* as count');
      expect(Number(left[0]?.count), `role ${role} left behind`).toBe(0);
    } finally {
      await database.drop();
    }
  });

  it('names the server by start time, cluster id and timeline, and by start time alone when pg_control is not readable', async () => {
    const full = await databaseServer(database.db);
    expect(full.startedAt).toMatch(/^\d{4}-\d\d-\d\d /);
    expect(full.systemId).toMatch(/^\d+$/);
    expect(full.timeline).toBeGreaterThanOrEqual(1);
    expect(full.upMs).toBeGreaterThan(0);

    // An ordinary role in a database where pg_control_system() is revoked (functions are per database).
    await database.db.raw(`CREATE ROLE ${role} LOGIN PASSWORD 'secret-${role}'`);
    await database.db.raw('REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC');
    const url = new URL(database.url);
    url.username = role;
    url.password = `secret-${role}`;
    restricted = createDb(url.toString(), 2);
    for (let i = 0; i < 2; i++) {
      const limited = await databaseServer(restricted);
      expect(limited).toMatchObject({ startedAt: full.startedAt, systemId: null, timeline: null });
    }
  });
});
