import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';

describe('test database', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('is migrated and refuses to edit the audit trail', async () => {
    const tables = await database.db('pg_tables').where({ schemaname: 'public' }).pluck('tablename');
    expect(tables).toEqual(expect.arrayContaining(['tasks', 'reviews', 'executions', 'execution_steps', 'output_chunks', 'events']));
    await database.db('events').insert({ type: 'test', data: '{}' });
    await expect(database.db('events').update({ type: 'changed' })).rejects.toThrow(/append-only/);
    await expect(database.db('events').delete()).rejects.toThrow(/append-only/);
  });
});
