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
import { LookupCache, lookupCacheOptions, type LookupCacheOptions } from './lookupCache.js';

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

export type ReviewersOptions = LookupCacheOptions & { log: ReviewersLogger | null };

export const DEFAULT_USERGROUP_TTL_MS = 60_000;

export class Reviewers {
  private readonly cache: LookupCache<string[]> | null;

  constructor(directory: UsergroupDirectory | null, options: Partial<ReviewersOptions> = {}) {
    const log = options.log ?? null;
    this.cache = directory
      ? new LookupCache(async (usergroupId) => [...new Set(await directory.members(usergroupId))], lookupCacheOptions(options, DEFAULT_USERGROUP_TTL_MS), {
          failed: (usergroupId, error, known) =>
            log?.warn(
              { err: error, usergroup: usergroupId },
              known !== null
                ? `could not look up the members of Slack user group ${usergroupId}: using the ${known.length} members known before`
                : `could not look up the members of Slack user group ${usergroupId}: its review groups count only their listed users until Slack answers`,
            ),
        })
      : null;
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

  /** A user group's members: fresh, cached, or the last known ones; null when nothing is known. Without Slack, none. */
  async members(usergroupId: string): Promise<string[] | null> {
    if (!this.cache) return [];
    return this.cache.get(usergroupId);
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
