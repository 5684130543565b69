/**
 * Who is in a Slack channel, for "members of the channel a task's card is in may see it".
 * Members come from conversations.members (paginated), are kept per channel for a short while
 * (Slack rates the method at Tier 4, and a list or App Home asks about many tasks), and a
 * lookup waits at most `lookupTimeoutMs` for Slack. When Slack cannot say (down, rate limited,
 * the bot is not in the channel), the last members it told us are used; with none known,
 * nobody counts as a member. Without a Slack connection nobody is a member of anything.
 */

/** Where channel members come from (Slack's Web API in production). */
export interface ChannelDirectory {
  /** The user ids in the channel; throws when Slack cannot say. `complete` is false when the list was cut. */
  members(channelId: string): Promise<{ users: string[]; complete: boolean }>;
}

export interface ChannelMembersLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

export interface ChannelMembersOptions {
  /** How long a channel's members are trusted before asking Slack again. */
  ttlMs: number;
  /** After a failed lookup, how long until Slack is asked again (meanwhile the last known members are used). */
  retryMs: number;
  /** A check waits at most this long for Slack, then goes on with what is known. */
  lookupTimeoutMs: number;
  log: ChannelMembersLogger | null;
  now: () => number;
}

interface Entry {
  users: ReadonlySet<string> | null;
  fetchedAt: number;
  failedAt: number | null;
  pending: Promise<void> | null;
}

export const DEFAULT_CHANNEL_MEMBERS_TTL_MS = 60_000;

export class ChannelMembers {
  private readonly entries = new Map<string, Entry>();
  private readonly options: ChannelMembersOptions;

  constructor(
    private readonly directory: ChannelDirectory | null,
    options: Partial<ChannelMembersOptions> = {},
  ) {
    const ttlMs = options.ttlMs ?? DEFAULT_CHANNEL_MEMBERS_TTL_MS;
    this.options = {
      ttlMs,
      retryMs: options.retryMs ?? Math.min(ttlMs, 5_000),
      // Slash commands must answer within 3 s: wait at most 1.5 s, the answer lands in the cache.
      lookupTimeoutMs: options.lookupTimeoutMs ?? 1_500,
      log: options.log ?? null,
      now: options.now ?? Date.now,
    };
  }

  /** Is `userId` in `channelId` as far as Slack said lately? False when nothing is known. */
  async isMember(channelId: string, userId: string): Promise<boolean> {
    return (await this.members(channelId))?.has(userId) ?? false;
  }

  private async members(channelId: string): Promise<ReadonlySet<string> | null> {
    if (!this.directory) return null;
    let entry = this.entries.get(channelId);
    if (!entry) {
      entry = { users: null, fetchedAt: 0, failedAt: null, pending: null };
      this.entries.set(channelId, entry);
    }
    const now = this.options.now();
    const fresh = entry.users !== null && now - entry.fetchedAt < this.options.ttlMs;
    const waitingToRetry = entry.failedAt !== null && now - entry.failedAt < this.options.retryMs;
    if (fresh || waitingToRetry) return entry.users;
    const current = entry;
    current.pending ??= this.fetch(channelId, current).finally(() => {
      current.pending = null;
    });
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

  private async fetch(channelId: string, entry: Entry): Promise<void> {
    try {
      const { users, complete } = await this.directory!.members(channelId);
      entry.users = new Set(users);
      entry.fetchedAt = this.options.now();
      entry.failedAt = null;
      if (!complete) this.options.log?.warn({ channel: channelId, members: users.length }, `channel ${channelId} has more members than countersign reads: only the first ${users.length} may see its tasks through the channel`);
    } catch (error) {
      entry.failedAt = this.options.now();
      this.options.log?.warn(
        { err: error, channel: channelId },
        entry.users !== null
          ? `could not look up the members of channel ${channelId}: using the ${entry.users.size} members known before`
          : `could not look up the members of channel ${channelId}: nobody sees its tasks through the channel until Slack answers`,
      );
    }
  }
}

/** What conversations.members needs of a WebClient (structural, so the service layer needs no Slack SDK). */
export interface ConversationsClient {
  conversations: {
    members(args: { channel: string; cursor?: string; limit?: number }): Promise<{ ok?: boolean; error?: string; members?: string[]; response_metadata?: { next_cursor?: string } }>;
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
        if (result.ok === false || !Array.isArray(result.members)) throw new Error(`conversations.members failed: ${result.error ?? 'no members in the answer'}`);
        users.push(...result.members);
        cursor = result.response_metadata?.next_cursor || undefined;
        if (!cursor) return { users, complete: true };
      }
      return { users, complete: false };
    },
  };
}
