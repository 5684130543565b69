/**
 * People's names as Slack shows them (users.info), for the places a person reads a user id as
 * text: the task page and its live stream. Slack renders `<@U…>` mentions itself, so Slack
 * messages keep mentions; the API keeps ids.
 *
 * Names are cached (a day by default; a name is public in the workspace and changes rarely), a
 * stale name is shown while it is looked up again, and a failed or unknown lookup is not asked
 * again for a minute. A page never waits on Slack longer than `waitMs`: a name not known by then
 * is shown as the id, and is there the next time the page is drawn. Lookups run a few at a time,
 * so a page with many reviewers cannot fire a burst at Slack.
 */

/** Where names come from (Slack's Web API in production). */
export interface UserNameSource {
  /** The user's display name, or null when Slack knows no such user; throws when Slack cannot say. */
  displayName(userId: string): Promise<string | null>;
}

export interface PeopleOptions {
  /** How long a name is trusted before asking Slack again (it is still shown meanwhile). */
  ttlMs: number;
  /** After a failed or empty lookup, how long until Slack is asked again. */
  retryMs: number;
  /** The longest a caller waits for names it does not know yet. */
  waitMs: number;
  /** Names kept at most (the least recently asked for go first). */
  maxEntries: number;
  /** Lookups under way at once, at most. */
  concurrency: number;
  log: { debug(context: Record<string, unknown>, message: string): void } | null;
  now: () => number;
}

export const DEFAULT_PEOPLE_OPTIONS: Omit<PeopleOptions, 'log' | 'now'> = { ttlMs: 24 * 60 * 60_000, retryMs: 60_000, waitMs: 250, maxEntries: 10_000, concurrency: 4 };

/** Names asked for in one call, at most: the rest are shown as ids. */
const MAX_PER_CALL = 100;
const USER_ID = /^[UW][A-Z0-9]{2,20}$/;

interface Entry {
  name: string | null;
  /** When `name` was learnt, or when the last lookup failed. */
  at: number;
  pending: Promise<void> | null;
}

export class PeopleDirectory {
  private readonly entries = new Map<string, Entry>();
  private readonly options: PeopleOptions;
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(
    private readonly source: UserNameSource | null,
    options: Partial<PeopleOptions> = {},
  ) {
    this.options = { ...DEFAULT_PEOPLE_OPTIONS, log: null, now: Date.now, ...options };
  }

  /**
   * A name for each id: Slack's display name when known within `waitMs`, else the id itself.
   * Never throws, never waits longer than `waitMs`.
   */
  async names(ids: Iterable<string>, waitMs = this.options.waitMs): Promise<Map<string, string>> {
    const wanted = [...new Set(ids)].filter((id) => USER_ID.test(id)).slice(0, MAX_PER_CALL);
    const waiting: Promise<void>[] = [];
    for (const id of wanted) {
      const entry = this.touch(id);
      const stale = this.options.now() - entry.at >= (entry.name === null ? this.options.retryMs : this.options.ttlMs);
      if (stale && !entry.pending) entry.pending = this.lookUp(id, entry);
      // A known name is shown at once, even while a newer one is looked up.
      if (entry.name === null && entry.pending) waiting.push(entry.pending);
    }
    if (waiting.length > 0 && waitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(waiting), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    }
    return new Map(wanted.map((id) => [id, this.entries.get(id)?.name ?? id]));
  }

  /** The entry for `id`, made the most recently used; the least recently used go past maxEntries. */
  private touch(id: string): Entry {
    let entry = this.entries.get(id);
    if (entry) this.entries.delete(id);
    else entry = { name: null, at: Number.NEGATIVE_INFINITY, pending: null };
    this.entries.set(id, entry);
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    return entry;
  }

  private async lookUp(id: string, entry: Entry): Promise<void> {
    if (!this.source) {
      entry.at = this.options.now();
      entry.pending = null;
      return;
    }
    await this.slot();
    try {
      const name = await this.source.displayName(id);
      // A user Slack does not know keeps the id, and is asked about again later.
      if (name !== null) entry.name = name;
      entry.at = this.options.now();
    } catch (error) {
      // The last name known stays; it is asked for again after retryMs.
      entry.at = entry.name === null ? this.options.now() : this.options.now() - this.options.ttlMs + this.options.retryMs;
      this.options.log?.debug({ err: error, user: id }, `could not look up the name of ${id}: showing ${entry.name === null ? 'the id' : 'the name known before'}`);
    } finally {
      entry.pending = null;
      this.release();
    }
  }

  private slot(): Promise<void> {
    if (this.running < this.options.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running--;
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
