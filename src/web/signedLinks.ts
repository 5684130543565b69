/**
 * Links to a task's log page that carry their own permission: an HMAC over the task id and an
 * expiry, with a secret every replica shares (kept in Postgres). Anyone holding the link may read
 * that one task's page until it expires; nothing else.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface LinkSigner {
  /** The page's URL for `taskId`, valid for the signer's TTL from now. */
  taskUrl(taskId: number, now?: number): string;
  verify(taskId: number, expires: string | undefined, signature: string | undefined, now?: number): 'ok' | 'expired' | 'invalid';
}

/** `publicUrl` is read at each use: the app learns its own URL only once it listens. */
export function createLinkSigner(secret: string, publicUrl: () => string, ttlMs: number): LinkSigner {
  const sign = (taskId: number, expires: number) => createHmac('sha256', secret).update(`task:${taskId}:${expires}`).digest('base64url');
  return {
    taskUrl(taskId, now = Date.now()) {
      const expires = Math.floor((now + ttlMs) / 1000);
      return `${publicUrl().replace(/\/+$/, '')}/tasks/${taskId}?expires=${expires}&sig=${sign(taskId, expires)}`;
    },
    verify(taskId, expires, signature, now = Date.now()) {
      if (!expires || !signature || !/^\d{1,12}$/.test(expires)) return 'invalid';
      const expected = Buffer.from(sign(taskId, Number(expires)));
      const given = Buffer.from(signature);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
      return Number(expires) * 1000 < now ? 'expired' : 'ok';
    },
  };
}
