/**
 * API access tokens. Only a SHA-256 hash of each token is stored: a leaked database does not
 * leak working tokens. Tokens are long random strings, so a plain (unsalted) hash is enough and
 * lets the lookup be one indexed equality.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Queryable } from './db.js';

export const TOKEN_PREFIX = 'cst_';

export interface ApiToken {
  id: number;
  name: string;
  userId: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

interface TokenRow {
  id: number;
  name: string;
  user_id: string;
  token_hash: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const toToken = (row: TokenRow): ApiToken => ({
  id: row.id,
  name: row.name,
  userId: row.user_id,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
  revokedAt: row.revoked_at,
});

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Creates a token for `userId`; the clear token is returned once and never stored. */
export async function createApiToken(db: Queryable, userId: string, name: string): Promise<{ token: string; record: ApiToken }> {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const [row] = await db<TokenRow>('api_tokens')
    .insert({ name, user_id: userId, token_hash: hashToken(token) })
    .returning('*');
  if (!row) throw new Error('token insert returned nothing');
  return { token, record: toToken(row) };
}

/** The live token with this clear value, or null. Marks it used (at most once a minute, to spare writes). */
export async function findApiToken(db: Queryable, token: string): Promise<ApiToken | null> {
  const row = await db<TokenRow>('api_tokens')
    .where({ token_hash: hashToken(token) })
    .whereNull('revoked_at')
    .first();
  if (!row) return null;
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    await db('api_tokens').where({ id: row.id }).update({ last_used_at: db.fn.now() });
  }
  return toToken(row);
}

export async function listApiTokens(db: Queryable): Promise<ApiToken[]> {
  return (await db<TokenRow>('api_tokens').orderBy('id')).map(toToken);
}

export async function revokeApiToken(db: Queryable, id: number): Promise<boolean> {
  const rows = await db('api_tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: db.fn.now() }, ['id']);
  return rows.length > 0;
}
