/**
 * People's names as Slack shows them (users.info), for the places a person reads a user id as
 * text: the task page and its live stream. Slack renders `<@U…>` mentions itself, so Slack
 * messages keep mentions; the API keeps ids.
 *
 * Names go through the shared LookupCache: trusted for a day (a name is public in the workspace
 * and changes rarely), the last name known kept when Slack fails, asked again a minute after a
 * failure. A page never waits on Slack longer than `lookupTimeoutMs`: a name not known by then
 * is shown as the id, and is there the next time the page is drawn. Lookups run a few at a
 * time, so a page with many reviewers cannot fire a burst at Slack.
 */
import { LookupCache, lookupCacheOptions, type LookupCacheOptions } from './lookupCache.js';

/** Where names come from (Slack's Web API in production). */
export interface UserNameSource {
  /** The user's display name, or null when Slack knows no such user; throws when Slack cannot say. */
  displayName(userId: string): Promise<string | null>;
}

export type PeopleOptions = LookupCacheOptions & {
  /** Lookups under way at once, at most. */
  concurrency: number;
  log: { debug(context: Record<string, unknown>, message: string): void } | null;
};

export const DEFAULT_NAME_TTL_MS = 24 * 60 * 60_000;

/** Names asked for in one call, at most: the rest are shown as ids. */
const MAX_PER_CALL = 100;
const USER_ID = /^[UW][A-Z0-9]{2,20}$/;

export class PeopleDirectory {
  private readonly cache: LookupCache<string> | null;
  private running = 0;
  private readonly queue: Array<() => void> = [];
  private readonly concurrency: number;

  constructor(source: UserNameSource | null, options: Partial<PeopleOptions> = {}) {
    this.concurrency = options.concurrency ?? 4;
    const log = options.log ?? null;
    const settings = lookupCacheOptions({ retryMs: 60_000, lookupTimeoutMs: 250, ...options }, DEFAULT_NAME_TTL_MS);
    this.cache = source
      ? new LookupCache(
          // A user Slack does not know is shown by id (and asked about again once that is old).
          (userId) => this.paced(async () => (await source.displayName(userId)) ?? userId),
          settings,
          {
            failed: (userId, error, known) =>
              log?.debug(
                { err: error, user: userId },
                `could not look up the name of ${userId}: showing ${known === null ? 'the id' : 'the name known before'}`,
              ),
          },
        )
      : null;
  }

  /** A name for each id: Slack's display name when known in time, else the id itself. Never throws. */
  async names(ids: Iterable<string>): Promise<Map<string, string>> {
    const wanted = [...new Set(ids)].filter((id) => USER_ID.test(id)).slice(0, MAX_PER_CALL);
    const cache = this.cache;
    const names = await Promise.all(wanted.map(async (id) => (cache ? ((await cache.get(id).catch(() => null)) ?? id) : id)));
    return new Map(wanted.map((id, index) => [id, names[index]!]));
  }

  /** Runs `work` when fewer than `concurrency` lookups are under way. */
  private async paced<T>(work: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) this.running++;
    else await new Promise<void>((resolve) => this.queue.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** What users.info needs of a WebClient (structural, so the service layer needs no Slack SDK). */
export interface UsersInfoClient {
  users: {
    info(args: { user: string }): Promise<{
      ok?: boolean;
      error?: string;
      user?: { name?: string; real_name?: string; deleted?: boolean; profile?: { display_name?: string; real_name?: string } };
    }>;
  };
}

/** Slack's display name (as Slack itself picks it: display name, else full name, else handle), cleaned for showing. */
export function webApiUserNames(client: UsersInfoClient): UserNameSource {
  return {
    async displayName(userId) {
      let result: Awaited<ReturnType<UsersInfoClient['users']['info']>>;
      try {
        result = await client.users.info({ user: userId });
      } catch (error) {
        if ((error as { data?: { error?: string } }).data?.error === 'user_not_found') return null;
        throw error;
      }
      if (result.ok === false) {
        if (result.error === 'user_not_found') return null;
        throw new Error(`users.info failed: ${result.error ?? 'no user in the answer'}`);
      }
      const user = result.user;
      const name = [user?.profile?.display_name, user?.profile?.real_name, user?.real_name, user?.name].find((n) => typeof n === 'string' && n.trim() !== '');
      return name === undefined ? null : cleanName(name);
    },
  };
}

/** One line, no control characters, at most 80 characters: a name is shown, never interpreted. */
export function cleanName(name: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 79)}…` : flat;
}
