/** Values every replica must share, made once and kept in Postgres (the log-link signing secret). */
import { randomBytes } from 'node:crypto';
import type { Queryable } from './db.js';

/** Returns the setting, creating it with `make()` if absent; concurrent callers all get the first one written. */
export async function ensureSetting(db: Queryable, key: string, make: () => string): Promise<string> {
  await db('settings').insert({ key, value: make() }).onConflict('key').ignore();
  const row = await db('settings').where({ key }).first('value');
  if (!row) throw new Error(`setting ${key} vanished`);
  return row.value as string;
}

export const LINK_SECRET = 'log-link-secret';
export const newSecret = (): string => randomBytes(32).toString('base64url');
