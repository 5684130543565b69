/**
 * The content key's memo (src/store/contentKey.ts, real Postgres): read once per knex instance and
 * shared with its transactions, one per database, a failure not kept, and a key made inside a
 * transaction that rolls back never kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_KEY, contentKey } from '../../src/store/contentKey.js';
import { createDb, type Db } from '../../src/store/db.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const stored = async (db: Db): Promise<string | undefined> => (await db('settings').where({ key: CONTENT_KEY }).first('value'))?.value;

describe('contentKey', () => {
  let first: TestDatabase;
  let second: TestDatabase;
  const extra: Db[] = [];
  beforeAll(async () => {
    [first, second] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  });
  afterAll(async () => {
    for (const db of extra) await db.destroy();
    await Promise.all([first.drop(), second.drop()]);
  });

  it('is read once per knex instance, its transactions included, and each database has its own', async () => {
    // Both are clones of one template, so of one key: the second gets another.
    await second.db('settings').where({ key: CONTENT_KEY }).update({ value: 'the-second-database-key' });
    const key = await contentKey(first.db);
    expect(key).toBe(await stored(first.db));
    const otherKey = await contentKey(second.db);
    expect(otherKey).toBe('the-second-database-key');
    expect(key).not.toBe(otherKey);

    // Changed behind its back, the key is still the one read: no second read, in a transaction neither.
    await first.db('settings').where({ key: CONTENT_KEY }).update({ value: 'changed-behind-its-back' });
    expect(await contentKey(first.db)).toBe(key);
    expect(await first.db.transaction((trx) => contentKey(trx))).toBe(key);
    // Another knex instance on the same database reads for itself.
    const again = createDb(first.url);
    extra.push(again);
    expect(await contentKey(again)).toBe('changed-behind-its-back');
    await first.db('settings').where({ key: CONTENT_KEY }).update({ value: key });
  });

  it('does not keep a failure: the next call reads again', async () => {
    const db = createDb(second.url);
    extra.push(db);
    await second.db.schema.renameTable('settings', 'settings_away');
    try {
      await expect(contentKey(db)).rejects.toThrow(/settings/);
    } finally {
      await second.db.schema.renameTable('settings_away', 'settings');
    }
    expect(await contentKey(db)).toBe(await stored(second.db));
  });

  it('does not keep a key made in a transaction that rolled back', async () => {
    const db = createDb(second.url);
    extra.push(db);
    const kept = await stored(second.db);
    await second.db('settings').where({ key: CONTENT_KEY }).delete();
    let made = '';
    await expect(
      db.transaction(async (trx) => {
        made = await contentKey(trx);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(made).not.toBe('');
    expect(await stored(second.db)).toBeUndefined();
    const committed = await contentKey(db);
    expect(committed).not.toBe(made);
    expect(committed).toBe(await stored(second.db));
    await second.db('settings').where({ key: CONTENT_KEY }).update({ value: kept });
  });
});
