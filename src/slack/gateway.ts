/**
 * All background writes to Slack (cards, review requests, thread output, uploads) go through
 * here, on a WebClient of their own so a 429 on log updates never stalls the listeners'
 * acknowledgements. It spaces chat.postMessage per channel (Slack allows about one a second),
 * honours Retry-After by holding back that method, and turns errors into two typed failures
 * the callers can act on: rate limited (try later) or refused (a platform error code).
 */
import type { KnownBlock } from '@slack/types';
import { WebAPIPlatformError, WebAPIRateLimitedError, type WebClient } from '@slack/web-api';

export class SlackRateLimited extends Error {
  constructor(
    readonly method: string,
    readonly retryAfterMs: number,
  ) {
    super(`${method} rate limited for ${retryAfterMs} ms`);
    this.name = 'SlackRateLimited';
  }
}

export class SlackRefused extends Error {
  constructor(
    readonly method: string,
    readonly code: string,
  ) {
    super(`${method} failed: ${code}`);
    this.name = 'SlackRefused';
  }
}

export interface GatewayOptions {
  /** chat.postMessage to one channel: one per this many ms on average (Slack: about one a second)... */
  postMessageSpacingMs: number;
  /** ...with short bursts of this many allowed, as Slack does. */
  postMessageBurst: number;
}

export interface MessageArgs {
  channel: string;
  text: string;
  blocks?: KnownBlock[];
  threadTs?: string;
}

export class SlackGateway {
  /** Per channel: tokens left (negative: posts already waiting) and when that was computed. */
  private readonly postBuckets = new Map<string, { tokens: number; at: number }>();
  private readonly blockedUntil = new Map<string, number>();
  readonly stats = { calls: 0, rateLimited: 0, failed: 0 };

  constructor(
    private readonly client: WebClient,
    private readonly options: GatewayOptions,
  ) {}

  async postMessage(args: MessageArgs): Promise<{ ts: string; channel: string }> {
    await this.waitForPostSlot(args.channel);
    const result = await this.call('chat.postMessage', () =>
      this.client.chat.postMessage({
        channel: args.channel,
        text: args.text,
        ...(args.blocks ? { blocks: args.blocks } : {}),
        ...(args.threadTs ? { thread_ts: args.threadTs } : {}),
        unfurl_links: false,
        unfurl_media: false,
      }),
    );
    return { ts: String(result.ts), channel: String(result.channel ?? args.channel) };
  }

  async update(args: MessageArgs & { ts: string }): Promise<void> {
    await this.call('chat.update', () =>
      this.client.chat.update({ channel: args.channel, ts: args.ts, text: args.text, ...(args.blocks ? { blocks: args.blocks } : { blocks: [] }) }),
    );
  }

  async uploadFile(args: { channel: string; threadTs: string; filename: string; title: string; content: Buffer; comment: string }): Promise<void> {
    await this.call('files.completeUploadExternal', () =>
      this.client.filesUploadV2({
        channel_id: args.channel,
        thread_ts: args.threadTs,
        file: args.content,
        filename: args.filename,
        title: args.title,
        initial_comment: args.comment,
      }),
    );
  }

  /**
   * Takes a token from the channel's bucket, waiting for one when it is empty. Taking before
   * waiting reserves a place, so concurrent posters queue up in order instead of colliding.
   */
  private async waitForPostSlot(channel: string): Promise<void> {
    const { postMessageSpacingMs: spacing, postMessageBurst: burst } = this.options;
    const now = Date.now();
    const bucket = this.postBuckets.get(channel) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) / spacing) - 1;
    bucket.at = now;
    this.postBuckets.set(channel, bucket);
    if (bucket.tokens < 0) await sleep(-bucket.tokens * spacing);
  }

  private async call<T>(method: string, invoke: () => Promise<T>): Promise<T> {
    const blocked = (this.blockedUntil.get(method) ?? 0) - Date.now();
    if (blocked > 0) await sleep(blocked);
    this.stats.calls++;
    try {
      return await invoke();
    } catch (error) {
      if (error instanceof WebAPIRateLimitedError) {
        const retryAfterMs = Math.max(1, error.retryAfter) * 1000;
        this.blockedUntil.set(method, Date.now() + retryAfterMs);
        this.stats.rateLimited++;
        throw new SlackRateLimited(method, retryAfterMs);
      }
      this.stats.failed++;
      if (error instanceof WebAPIPlatformError) throw new SlackRefused(method, error.data.error);
      throw new SlackRefused(method, error instanceof Error ? error.message : String(error));
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
