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
  /** Minimum time between two chat.postMessage calls to one channel. */
  postMessageSpacingMs: number;
}

export interface MessageArgs {
  channel: string;
  text: string;
  blocks?: KnownBlock[];
  threadTs?: string;
}

export class SlackGateway {
  private readonly nextPostAt = new Map<string, number>();
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

  /** Reserves the next free slot for a post to `channel`, so concurrent posters queue up instead of colliding. */
  private async waitForPostSlot(channel: string): Promise<void> {
    const now = Date.now();
    const slot = Math.max(now, this.nextPostAt.get(channel) ?? 0);
    this.nextPostAt.set(channel, slot + this.options.postMessageSpacingMs);
    if (slot > now) await sleep(slot - now);
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
