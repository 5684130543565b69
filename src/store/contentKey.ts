/**
 * The server's content key: seals fixed argument values in content versions and recipe hashes
 * (src/domain/contentVersion.ts). Made once (by migration 008, or here on first use) and shared
 * by every replica through `settings`; it never leaves the server.
 *
 * It never changes once made, so it is read once per database handle (knex instance) and kept:
 * reading it on every task insert was a round trip on the path of every `/task run` ack. The memo
 * is per knex instance, never per connection string: tests make many databases in one process,
 * and one dropped and made again under the same name has another key.
 */
import type { Knex } from 'knex';
import type { Queryable } from './db.js';
import { ensureSetting, newSecret } from './settings.js';

export const CONTENT_KEY = 'content-version-key';

/** Keyed by the knex instance's config object: see memoId. */
const keys = new WeakMap<object, Promise<string>>();

/**
 * One memo for a knex instance and its transactions. A transaction is a function of its own with a
 * client of its own, but knex gives that client its instance's config object (makeTxClient), and
 * each instance copies the config it was made with: so that object names the instance.
 */
function memoId(db: Queryable): object {
  return (db as { client?: { config?: object } }).client?.config ?? db;
}

export function contentKey(db: Queryable): Promise<string> {
  const id = memoId(db);
  const known = keys.get(id);
  if (known !== undefined) return known;
  // In a transaction a key made here could still roll back: only one read is kept.
  if ((db as Knex.Transaction).isTransaction === true) return readInTransaction(db, id);
  const reading = readOrMake(db).catch((error: unknown) => {
    // A failure is not kept: the next call tries again.
    if (keys.get(id) === reading) keys.delete(id);
    throw error;
  });
  keys.set(id, reading);
  return reading;
}

async function readOrMake(db: Queryable): Promise<string> {
  const row = await db('settings').where({ key: CONTENT_KEY }).first('value');
  return row ? (row.value as string) : ensureSetting(db, CONTENT_KEY, newSecret);
}

async function readInTransaction(db: Queryable, id: object): Promise<string> {
  const row = await db('settings').where({ key: CONTENT_KEY }).first('value');
  if (!row) return ensureSetting(db, CONTENT_KEY, newSecret);
  const value = row.value as string;
  if (!keys.has(id)) keys.set(id, Promise.resolve(value));
  return value;
}
