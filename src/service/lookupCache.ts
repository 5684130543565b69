/**
 * A cache for answers Slack gives slowly or sometimes not at all (a user group's members, a
 * channel's members, a person's name): each key's answer is trusted for `ttlMs`; a lookup waits
 * at most `lookupTimeoutMs` for Slack (a click must be answered within 3 s) and otherwise goes
 * on with what is known while the answer lands in the cache; when Slack fails, the last answer
 * it gave is kept and Slack is asked again after `retryMs`. Never a guess: with nothing known the
 * answer is null, and each caller decides what null means (nobody counts).
 *
 * The last answer is not kept for ever: older than `maxStaleMs` (15 min by default), it is no
 * longer used, and the answer is null until Slack answers again (fail closed). Someone removed
 * from a user group or a channel during a long Slack outage stops counting after that long.
 */

/** How long a last known answer is used while Slack fails, unless the cache is told otherwise. */
export const DEFAULT_MAX_STALE_MS = 15 * 60_000;

export interface LookupCacheOptions {
  /** How long an answer is trusted before asking again. */
  ttlMs: number;
  /** After a failed lookup, how long until asking again (meanwhile the last answer is used). */
  retryMs: number;
  /** A lookup waits at most this long, then goes on with what is known. */
  lookupTimeoutMs: number;
  /** An answer older than this is not used, even when Slack cannot give a newer one. */
  maxStaleMs: number;
  now: () => number;
}

interface Entry<V> {
  value: V | null;
  fetchedAt: number;
  failedAt: number | null;
  pending: Promise<void> | null;
}

export interface LookupHooks<V> {
  /** Called when a fetch failed; `known` is the answer still used (null: none). */
  failed?(key: string, error: unknown, known: V | null): void;
}

export function lookupCacheOptions(options: Partial<LookupCacheOptions>, defaultTtlMs: number): LookupCacheOptions {
  const ttlMs = options.ttlMs ?? defaultTtlMs;
  return {
    ttlMs,
    retryMs: options.retryMs ?? Math.min(ttlMs, 5_000),
    lookupTimeoutMs: options.lookupTimeoutMs ?? 1_500,
    maxStaleMs: Math.max(ttlMs, options.maxStaleMs ?? DEFAULT_MAX_STALE_MS),
    now: options.now ?? Date.now,
  };
}

export class LookupCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly fetchValue: (key: string) => Promise<V>,
    private readonly options: LookupCacheOptions,
    private readonly hooks: LookupHooks<V> = {},
  ) {}

  /** The answer for `key`: fresh, cached, or the last known one if not too old; null when nothing is known. */
  async get(key: string): Promise<V | null> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { value: null, fetchedAt: 0, failedAt: null, pending: null };
      this.entries.set(key, entry);
    }
    const now = this.options.now();
    const fresh = entry.value !== null && now - entry.fetchedAt < this.options.ttlMs;
    const waitingToRetry = entry.failedAt !== null && now - entry.failedAt < this.options.retryMs;
    if (fresh || waitingToRetry) return this.usable(entry);
    const current = entry;
    current.pending ??= this.fetch(key, current).finally(() => {
      current.pending = null;
    });
    // A slow Slack must not hold a click for long: go on with what is known, the answer lands in the cache.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      current.pending,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.lookupTimeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    return this.usable(current);
  }

  /** The entry's answer unless it is older than maxStaleMs. */
  private usable(entry: Entry<V>): V | null {
    return entry.value !== null && this.options.now() - entry.fetchedAt < this.options.maxStaleMs ? entry.value : null;
  }

  private async fetch(key: string, entry: Entry<V>): Promise<void> {
    try {
      entry.value = await this.fetchValue(key);
      entry.fetchedAt = this.options.now();
      entry.failedAt = null;
    } catch (error) {
      entry.failedAt = this.options.now();
      this.hooks.failed?.(key, error, this.usable(entry));
    }
  }
}
