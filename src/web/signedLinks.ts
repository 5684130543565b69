/**
 * Links to a task's page that carry their own permission: an HMAC over the task id and an
 * expiry, made with a key of the ring in Postgres (src/store/linkKeys.ts), whose version the
 * link names (`kv`). Anyone holding the link may read that one task's page until it expires,
 * or until its key is revoked; nothing else.
 *
 * Signing is synchronous (cards and answers are drawn without waiting): it uses the ring as
 * last read. Reading the ring again is due every `cacheMs`, so a key rotated or revoked on any
 * replica, or with `npm run links`, takes effect everywhere within that time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { currentKey, type LinkKey } from '../store/linkKeys.js';

export type LinkCheck = 'ok' | 'expired' | 'invalid' | 'revoked';

/** The parts of a link's query string that carry its permission. */
export interface LinkParams {
  expires?: string | undefined;
  sig?: string | undefined;
  kv?: string | undefined;
}

export interface LinkSigner {
  /** The page's URL for `taskId`, valid for the signer's TTL from `now`. */
  taskUrl(taskId: number, now?: number): string;
  verify(taskId: number, link: LinkParams, now?: number): Promise<LinkCheck>;
  /** Reads the ring now. */
  refresh(): Promise<void>;
}

export interface LinkSignerOptions {
  /** Reads the key ring (with a live key in it). */
  loadKeys: () => Promise<LinkKey[]>;
  /** Read at each use: the app learns its own URL only once it listens. */
  publicUrl: () => string;
  ttlMs: number;
  /** How long a read of the ring is trusted. */
  cacheMs?: number;
  onRefreshError?: (error: unknown) => void;
}

export const DEFAULT_LINK_TTL_MS = 24 * 3600_000;
export const DEFAULT_KEY_CACHE_MS = 5_000;
/** A link naming a key this process does not know makes it read the ring again, at most this often. */
const UNKNOWN_KEY_REFRESH_MS = 1_000;

const sign = (secret: string, taskId: number, expires: number) => createHmac('sha256', secret).update(`task:${taskId}:${expires}`).digest('base64url');

export async function createLinkSigner(options: LinkSignerOptions): Promise<LinkSigner> {
  const cacheMs = options.cacheMs ?? DEFAULT_KEY_CACHE_MS;
  let keys = await options.loadKeys();
  let loadedAt = Date.now();
  let loading: Promise<void> | null = null;

  const refresh = (): Promise<void> => {
    loading ??= options
      .loadKeys()
      .then((fresh) => {
        keys = fresh;
        loadedAt = Date.now();
      })
      .finally(() => {
        loading = null;
      });
    return loading;
  };
  /** Reads the ring again when the last read is older than `maxAgeMs`; a failed read keeps the last one. */
  const freshen = async (maxAgeMs: number): Promise<void> => {
    if (Date.now() - loadedAt < maxAgeMs) return;
    try {
      await refresh();
    } catch (error) {
      options.onRefreshError?.(error);
    }
  };

  return {
    taskUrl(taskId, now = Date.now()) {
      if (Date.now() - loadedAt >= cacheMs) void freshen(cacheMs);
      const key = currentKey(keys);
      if (!key) throw new Error('no live link key (every key revoked): run `npm run links -- rotate`');
      const expires = Math.floor((now + options.ttlMs) / 1000);
      return `${options.publicUrl().replace(/\/+$/, '')}/tasks/${taskId}?expires=${expires}&sig=${sign(key.secret, taskId, expires)}&kv=${key.version}`;
    },
    async verify(taskId, link, now = Date.now()) {
      const { expires, sig } = link;
      if (!expires || !sig || !/^\d{1,12}$/.test(expires)) return 'invalid';
      // A link from before the ring named no key: it was signed with what became key 1.
      if (link.kv !== undefined && !/^[1-9]\d{0,8}$/.test(link.kv)) return 'invalid';
      const version = link.kv === undefined ? 1 : Number(link.kv);
      await freshen(cacheMs);
      let key = keys.find((k) => k.version === version);
      if (!key) {
        await freshen(UNKNOWN_KEY_REFRESH_MS);
        key = keys.find((k) => k.version === version);
      }
      // A key nobody knows was revoked long ago or never existed: either way the link is dead.
      if (!key) return 'revoked';
      const expected = Buffer.from(sign(key.secret, taskId, Number(expires)));
      const given = Buffer.from(sig);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
      if (key.revokedAt !== null) return 'revoked';
      return Number(expires) * 1000 < now ? 'expired' : 'ok';
    },
    refresh,
  };
}
