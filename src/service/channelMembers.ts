/**
 * Who is in a Slack channel, for "members of the channel a task's card is in may see it".
 * Members come from conversations.members (paginated), are kept per channel for a short while
 * (Slack rates the method at Tier 4, and a list or App Home asks about many tasks), and a
 * lookup waits at most `lookupTimeoutMs` for Slack. When Slack cannot say (down, rate limited,
 * the bot is not in the channel), the last members it told us are used; with none known,
 * nobody counts as a member. Without a Slack connection nobody is a member of anything.
 */
import { LookupCache, lookupCacheOptions, type LookupCacheOptions } from './lookupCache.js';

/** Where channel members come from (Slack's Web API in production). */
export interface ChannelDirectory {
  /** The user ids in the channel; throws when Slack cannot say. `complete` is false when the list was cut. */
  members(channelId: string): Promise<{ users: string[]; complete: boolean }>;
}

export interface ChannelMembersLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

export type ChannelMembersOptions = LookupCacheOptions & { log: ChannelMembersLogger | null };

export const DEFAULT_CHANNEL_MEMBERS_TTL_MS = 60_000;

export class ChannelMembers {
  private readonly cache: LookupCache<ReadonlySet<string>> | null;

  constructor(directory: ChannelDirectory | null, options: Partial<ChannelMembersOptions> = {}) {
    const log = options.log ?? null;
    this.cache = directory
      ? new LookupCache(
          async (channelId) => {
            const { users, complete } = await directory.members(channelId);
            if (!complete)
              log?.warn(
                { channel: channelId, members: users.length },
                `channel ${channelId} has more members than countersign reads: only the first ${users.length} may see its tasks through the channel`,
              );
            return new Set(users);
          },
          lookupCacheOptions(options, DEFAULT_CHANNEL_MEMBERS_TTL_MS),
          {
            failed: (channelId, error, known) =>
              log?.warn(
                { err: error, channel: channelId },
                known !== null
                  ? `could not look up the members of channel ${channelId}: using the ${known.size} members known before`
                  : `could not look up the members of channel ${channelId}: nobody sees its tasks through the channel until Slack answers`,
              ),
          },
        )
      : null;
  }

  /** Is `userId` in `channelId` as far as Slack said lately? False when nothing is known. */
  async isMember(channelId: string, userId: string): Promise<boolean> {
    return (await this.cache?.get(channelId))?.has(userId) ?? false;
  }
}

/** What conversations.members needs of a WebClient (structural, so the service layer needs no Slack SDK). */
export interface ConversationsClient {
  conversations: {
    members(args: {
      channel: string;
      cursor?: string;
      limit?: number;
    }): Promise<{ ok?: boolean; error?: string; members?: string[]; response_metadata?: { next_cursor?: string } }>;
  };
}

/** Members per page (Slack allows up to 999 and recommends 200 or fewer per call). */
const PAGE_SIZE = 200;

/**
 * Slack's Web API as a channel directory. A channel with more than `maxPages` pages of members
 * is cut there: those read count, the rest do not (never a guess in their favour).
 */
export function webApiChannelMembers(client: ConversationsClient, maxPages = 50): ChannelDirectory {
  return {
    async members(channelId) {
      const users: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < maxPages; page++) {
        const result = await client.conversations.members({ channel: channelId, limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) });
        if (result.ok === false || !Array.isArray(result.members))
          throw new Error(`conversations.members failed: ${result.error ?? 'no members in the answer'}`);
        users.push(...result.members);
        cursor = result.response_metadata?.next_cursor || undefined;
        if (!cursor) return { users, complete: true };
      }
      return { users, complete: false };
    },
  };
}
