/**
 * The server's content key: seals fixed argument values in content versions and recipe hashes
 * (src/domain/contentVersion.ts). Made once (by migration 008, or here on first use) and shared
 * by every replica through `settings`; it never leaves the server.
 */
import type { Queryable } from './db.js';
import { ensureSetting, newSecret } from './settings.js';

export const CONTENT_KEY = 'content-version-key';

export async function contentKey(db: Queryable): Promise<string> {
  const row = await db('settings').where({ key: CONTENT_KEY }).first('value');
  return row ? (row.value as string) : ensureSetting(db, CONTENT_KEY, newSecret);
}
