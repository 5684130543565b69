/**
 * The key ring that signs task-page links, kept in `settings` (one row per key, `link-key:<n>`)
 * so every replica signs and verifies with the same keys. New links are signed with the newest
 * live key; a revoked key's links are refused at once (every replica re-reads the ring within
 * seconds); rotating adds a key and leaves the old ones valid until their links expire.
 *
 * Version 1 takes over the secret that signed links before there was a ring (`log-link-secret`),
 * so links already in Slack keep working until they expire, or until key 1 is revoked.
 */
import type { Queryable } from './db.js';
import { LINK_SECRET, newSecret } from './settings.js';

export interface LinkKey {
  version: number;
  secret: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const PREFIX = 'link-key:';

interface StoredKey {
  secret: string;
  createdAt: string;
  revokedAt: string | null;
}

/** Every key, oldest first. */
export async function linkKeys(db: Queryable): Promise<LinkKey[]> {
  const rows = (await db('settings').where('key', 'like', `${PREFIX}%`).select('key', 'value')) as Array<{ key: string; value: string }>;
  return rows
    .map((row) => {
      const stored = JSON.parse(row.value) as StoredKey;
      return {
        version: Number(row.key.slice(PREFIX.length)),
        secret: stored.secret,
        createdAt: new Date(stored.createdAt),
        revokedAt: stored.revokedAt ? new Date(stored.revokedAt) : null,
      };
    })
    .filter((key) => Number.isSafeInteger(key.version) && key.version > 0)
    .sort((a, b) => a.version - b.version);
}

/** The key new links are signed with: the newest one not revoked. */
export function currentKey(keys: readonly LinkKey[]): LinkKey | null {
  return [...keys].reverse().find((key) => key.revokedAt === null) ?? null;
}

async function insertKey(db: Queryable, version: number, secret: string): Promise<boolean> {
  const inserted = await db('settings')
    .insert({ key: `${PREFIX}${version}`, value: db.raw(`json_build_object('secret', ?::text, 'createdAt', now(), 'revokedAt', null)::text`, [secret]) })
    .onConflict('key')
    .ignore()
    .returning('key');
  return inserted.length > 0;
}

/** Adds a key one version above the newest (two at once both succeed, one after the other). */
export async function rotateLinkKey(db: Queryable): Promise<LinkKey> {
  for (;;) {
    const keys = await linkKeys(db);
    const version = (keys.at(-1)?.version ?? 0) + 1;
    // Key 1 continues the secret links were signed with before the ring existed.
    const legacy = version === 1 ? ((await db('settings').where({ key: LINK_SECRET }).first('value')) as { value: string } | undefined)?.value : undefined;
    if (await insertKey(db, version, legacy ?? newSecret())) {
      const made = (await linkKeys(db)).find((key) => key.version === version);
      if (made) return made;
    }
  }
}

/** The ring, with a live key made first when there is none (a fresh database, or every key revoked). */
export async function ensureLinkKeys(db: Queryable): Promise<LinkKey[]> {
  const keys = await linkKeys(db);
  if (currentKey(keys)) return keys;
  await rotateLinkKey(db);
  return linkKeys(db);
}

/** Marks the key revoked; false when there is no such key or it was revoked already. */
export async function revokeLinkKey(db: Queryable, version: number): Promise<boolean> {
  const updated = await db('settings')
    .where({ key: `${PREFIX}${version}` })
    .whereRaw(`(value::jsonb ->> 'revokedAt') IS NULL`)
    .update({ value: db.raw(`jsonb_set(value::jsonb, '{revokedAt}', to_jsonb(now()))::text`) }, ['key']);
  return updated.length > 0;
}
