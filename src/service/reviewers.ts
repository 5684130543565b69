/**
 * Who is in each review group right now. A group may name a Slack user group (`usergroup:
 * S0789`); its members are looked up with usergroups.users.list, kept for a short while (Slack
 * rates that method at Tier 2, about 20 a minute) and merged into the group's users, so the
 * pure rules in src/domain/review.ts only ever see plain lists.
 *
 * When Slack cannot say (down, rate limited, a wrong id), the last members it told us are used;
 * with none known the group has only its listed users and a warning is logged. Nobody is ever
 * let in on a guess. Without a Slack connection at all, user groups have no members.
 */
import { usergroupsOf, withMembers, type ReviewPolicy } from '../domain/review.js';

/** Where user group members come from (Slack's Web API in production). */
export interface UsergroupDirectory {
  /** The user ids in the user group; throws when Slack cannot say. */
  members(usergroupId: string): Promise<string[]>;
}

export interface ResolvedPolicy {
  /** The policy with every user group's members in its groups' `users`. */
  policy: ReviewPolicy;
  /**
   * User groups whose members are unknown (Slack failed and nothing was known before): their
   * review groups have only their listed users for now, which may be too few for a while.
   */
  unknown: string[];
}

export interface ReviewersLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

export interface ReviewersOptions {
  /** How long a user group's members are trusted before asking Slack again. */
  ttlMs: number;
  /** After a failed lookup, how long until Slack is asked again (meanwhile the last known members are used). */
  retryMs: number;
  /** A rule check waits at most this long for Slack, then goes on with what is known. */
  lookupTimeoutMs: number;
  log: ReviewersLogger | null;
  now: () => number;
}

interface Entry {
  users: string[] | null;
  fetchedAt: number;
  failedAt: number | null;
  pending: Promise<void> | null;
}

export const DEFAULT_USERGROUP_TTL_MS = 60_000;

export class Reviewers {
  private readonly entries = new Map<string, Entry>();
  private readonly options: ReviewersOptions;

  constructor(
    private readonly directory: UsergroupDirectory | null,
    options: Partial<ReviewersOptions> = {},
  ) {
    const ttlMs = options.ttlMs ?? DEFAULT_USERGROUP_TTL_MS;
    this.options = {
      ttlMs,
      retryMs: options.retryMs ?? Math.min(ttlMs, 5_000),
      // Interactive paths (a click, a form) must answer Slack within 3 s: wait at most 1.5 s.
      lookupTimeoutMs: options.lookupTimeoutMs ?? 1_500,
      log: options.log ?? null,
      now: options.now ?? Date.now,
    };
  }

  /** The policy with its user groups' members in place (a policy without user groups comes back as it is). */
  async resolve(policy: ReviewPolicy): Promise<ResolvedPolicy> {
    const ids = usergroupsOf(policy);
    if (ids.length === 0) return { policy, unknown: [] };
    const members = new Map<string, string[]>();
    const unknown: string[] = [];
    await Promise.all(
      ids.map(async (id) => {
        const users = await this.members(id);
        if (users === null) unknown.push(id);
        else members.set(id, users);
      }),
    );
    return { policy: withMembers(policy, members), unknown };
  }

  /** A user group's members: fresh, cached, or the last known ones; null when nothing is known. */
  async members(usergroupId: string): Promise<string[] | null> {
    if (!this.directory) return [];
    let entry = this.entries.get(usergroupId);
    if (!entry) {
      entry = { users: null, fetchedAt: 0, failedAt: null, pending: null };
      this.entries.set(usergroupId, entry);
    }
    const now = this.options.now();
    const fresh = entry.users !== null && now - entry.fetchedAt < this.options.ttlMs;
    const waitingToRetry = entry.failedAt !== null && now - entry.failedAt < this.options.retryMs;
    if (fresh || waitingToRetry) return entry.users;
    const current = entry;
    current.pending ??= this.fetch(usergroupId, current).finally(() => {
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
    return current.users;
  }

  private async fetch(usergroupId: string, entry: Entry): Promise<void> {
    try {
      const users = await this.directory!.members(usergroupId);
      entry.users = [...new Set(users)];
      entry.fetchedAt = this.options.now();
      entry.failedAt = null;
    } catch (error) {
      entry.failedAt = this.options.now();
      this.options.log?.warn(
        { err: error, usergroup: usergroupId },
        entry.users !== null
          ? `could not look up the members of Slack user group ${usergroupId}: using the ${entry.users.length} members known before`
          : `could not look up the members of Slack user group ${usergroupId}: its review groups count only their listed users until Slack answers`,
      );
    }
  }
}

/** What usergroups.users.list needs of a WebClient (structural, so the service layer needs no Slack SDK). */
export interface UsergroupsClient {
  usergroups: {
    users: {
      list(args: { usergroup: string }): Promise<{ ok?: boolean; error?: string; users?: string[] }>;
    };
  };
}

/** Slack's Web API as a directory (the client should not retry for long: a rule check waits for it). */
export function webApiUsergroups(client: UsergroupsClient): UsergroupDirectory {
  return {
    async members(usergroupId) {
      const result = await client.usergroups.users.list({ usergroup: usergroupId });
      if (result.ok === false || !Array.isArray(result.users)) throw new Error(`usergroups.users.list failed: ${result.error ?? 'no users in the answer'}`);
      return result.users;
    },
  };
}
