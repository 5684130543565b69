/**
 * All background writes to Slack (cards, review requests, thread output, uploads) go through
 * here, on a WebClient of their own so a 429 on log updates never stalls the listeners'
 * acknowledgements. It paces chat.postMessage per channel (Slack: about one a second, short
 * bursts) and chat.update across the workspace (Tier 3: about 50 a minute, shared by every
 * running task), where log output only uses what cards and review requests leave; honours
 * Retry-After by holding back that method; and turns errors into typed failures the callers
 * act on: rate limited or deferred (try later) or refused (a platform error code).
 */
import type { HomeView, KnownBlock } from '@slack/types';
import { WebAPIPlatformError, WebAPIRateLimitedError, type WebClient } from '@slack/web-api';
import { TokenBucket } from './tokenBucket.js';

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
  /** chat.update across the workspace per minute (Tier 3) and the burst allowed. */
  updatesPerMinute: number;
  updateBurst: number;
  /** Log output updates only run while at least this many chat.update tokens are left for views. */
  updateReserveForViews: number;
  /** Told of every call's outcome (for metrics). */
  onCall?: (method: string, outcome: 'ok' | 'ratelimited' | 'error') => void;
}

/** What a chat.update redraws: a card or review request (waits its turn) or log output (yields). */
export type UpdatePriority = 'view' | 'log';

export interface MessageArgs {
  channel: string;
  text: string;
  blocks?: KnownBlock[];
  threadTs?: string;
}

export class SlackGateway {
  private readonly postBuckets = new Map<string, TokenBucket>();
  private readonly updateBucket: TokenBucket;
  private readonly blockedUntil = new Map<string, number>();
  /**
   * Turns promised to posts that wait without a redraw in flight (postTurn): when each may go
   * out, by `<channel> <what is posted>`. Swept from the front (the order they were promised)
   * while stale: a turn far off in a busy channel holds back the sweep of those behind it, which
   * are all dropped once it is (every entry ages out, so the map stays bounded).
   */
  private readonly promisedTurns = new Map<string, number>();
  readonly stats = { calls: 0, rateLimited: 0, failed: 0 };

  constructor(
    private readonly client: WebClient,
    private readonly options: GatewayOptions,
  ) {
    this.updateBucket = new TokenBucket(options.updateBurst, options.updatesPerMinute / 60_000);
  }

  /**
   * `slotTaken`: the caller already has the channel's turn (postSlot, or postTurn answering 0), as
   * a post that must be claimed first does: its claim is taken when the post can go out, not
   * before a long wait.
   */
  async postMessage(args: MessageArgs, options: { slotTaken?: boolean } = {}): Promise<{ ts: string; channel: string }> {
    if (!options.slotTaken) await this.postSlot(args.channel);
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

  /**
   * `turnTaken`: a view whose turn updateTurn answered 0 for: the workspace's budget was already
   * spent on it.
   */
  async update(args: MessageArgs & { ts: string }, priority: UpdatePriority, options: { turnTaken?: boolean } = {}): Promise<void> {
    if (priority === 'log') {
      const wait = this.updateBucket.msUntil(this.options.updateReserveForViews + 1);
      if (wait > 0) throw new SlackRateLimited('chat.update', wait);
    }
    const wait = options.turnTaken ? 0 : this.updateBucket.take();
    if (wait > 0) await sleep(wait);
    await this.call('chat.update', () =>
      this.client.chat.update({ channel: args.channel, ts: args.ts, text: args.text, ...(args.blocks ? { blocks: args.blocks } : { blocks: [] }) }),
    );
  }

  /** Publishes a user's App Home tab (views.publish, Tier 4: ~100 a minute). */
  async publishHome(userId: string, view: HomeView): Promise<void> {
    await this.call('views.publish', () => this.client.views.publish({ user_id: userId, view }));
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
   * Takes a token from the channel's bucket, waiting in line for it when the bucket is empty
   * (a schedule's review request and its DMs wait here; cards, review requests and the DMs of
   * tasks and runs are promised their turn by postTurn and wait as rows). The post that uses the
   * token must follow at once (postMessage with slotTaken).
   */
  async postSlot(channel: string): Promise<void> {
    const wait = this.bucketOf(channel).take();
    if (wait > 0) await sleep(wait);
    // Slack asked us to hold back: the claim that follows this turn must not be held through it.
    const blocked = (this.blockedUntil.get('chat.postMessage') ?? 0) - Date.now();
    if (blocked > 0) await sleep(blocked);
  }

  /**
   * postSlot for a post that waits as a name rather than a pending call: the first ask takes the
   * channel's next turn and says how many ms away it is; later asks for the same `postKey` say how
   * long is left; 0 means the turn is now (it is used up: the post must follow at once, or the
   * turn be given back with returnPostSlot). A burst of thousands of cards in one channel waits
   * as this map's entries instead of thousands of suspended redraws holding their task's view.
   */
  postTurn(channel: string, postKey: string): number {
    return this.promiseTurn(`${channel} ${postKey}`, this.bucketOf(channel), 'chat.postMessage');
  }

  /**
   * The post promised a turn is not wanted any more (another process posted it): the turn goes
   * back to the channel's next post, as returnPostSlot does.
   */
  forgetTurn(channel: string, postKey: string): void {
    this.forgetPromised(`${channel} ${postKey}`, this.postBuckets.get(channel));
  }

  /**
   * postTurn for a card's or request's chat.update, on the workspace's budget (Tier 3, about 50 a
   * minute, shared by every message): after a burst, each task's redraw that shows its links
   * waits here rather than sleeping with its view held. 0: the turn is now (update with
   * `turnTaken`).
   */
  updateTurn(messageKey: string): number {
    return this.promiseTurn(`update ${messageKey}`, this.updateBucket, 'chat.update');
  }

  /** The update promised a turn is not wanted any more (the message already shows it): the turn goes to the next. */
  forgetUpdateTurn(messageKey: string): void {
    this.forgetPromised(`update ${messageKey}`, this.updateBucket);
  }

  /** Drops a promised turn and gives its token back to `bucket` (which keeps it only if it was the last in line). */
  private forgetPromised(key: string, bucket: TokenBucket | undefined): void {
    const at = this.promisedTurns.get(key);
    if (at === undefined) return;
    this.promisedTurns.delete(key);
    bucket?.giveBack(at);
  }

  /** A turn from `bucket`, promised under `key` until it comes (see postTurn). */
  private promiseTurn(key: string, bucket: TokenBucket, method: string): number {
    const now = Date.now();
    this.dropStaleTurns(now);
    let at = this.promisedTurns.get(key);
    if (at === undefined) at = now + bucket.take();
    // Slack asked us to hold back: the claim that follows this turn must not be held through it.
    at = Math.max(at, this.blockedUntil.get(method) ?? 0);
    // A timer set for the turn can fire a few ms early (timers count from the event loop's
    // cached clock): that is the turn, not another full draw for the last few ms.
    if (at > now + TURN_SLACK_MS) {
      this.promisedTurns.set(key, at);
      return at - now;
    }
    this.promisedTurns.delete(key);
    return 0;
  }

  /** Turns promised this long ago and never taken are forgotten (their rows come back with a fresh ask). */
  private dropStaleTurns(now: number): void {
    for (const [key, at] of this.promisedTurns) {
      if (at > now - STALE_TURN_MS) break;
      this.promisedTurns.delete(key);
    }
  }

  /** How many posts and updates wait for a promised turn. */
  get turnsPromised(): number {
    return this.promisedTurns.size;
  }

  /** Gives back a slot postSlot (or postTurn, answering 0) handed out for a post that did not happen (another process posts it). */
  returnPostSlot(channel: string): void {
    this.postBuckets.get(channel)?.giveBack();
  }

  private bucketOf(channel: string): TokenBucket {
    let bucket = this.postBuckets.get(channel);
    if (!bucket) {
      bucket = new TokenBucket(this.options.postMessageBurst, 1 / this.options.postMessageSpacingMs);
      this.postBuckets.set(channel, bucket);
    }
    return bucket;
  }

  private async call<T>(method: string, invoke: () => Promise<T>): Promise<T> {
    const blocked = (this.blockedUntil.get(method) ?? 0) - Date.now();
    if (blocked > 0) await sleep(blocked);
    this.stats.calls++;
    try {
      const result = await invoke();
      this.options.onCall?.(method, 'ok');
      return result;
    } catch (error) {
      this.options.onCall?.(method, error instanceof WebAPIRateLimitedError ? 'ratelimited' : 'error');
      if (error instanceof WebAPIRateLimitedError) {
        const retryAfterMs = Math.max(1, error.retryAfter) * 1000;
        this.blockedUntil.set(method, Date.now() + retryAfterMs);
        this.stats.rateLimited++;
        throw new SlackRateLimited(method, retryAfterMs);
      }
      this.stats.failed++;
      if (error instanceof WebAPIPlatformError) throw new SlackRefused(method, error.data.error);
      // Transport trouble (timeouts, resets) is not a refusal: callers try again later.
      throw error;
    }
  }
}

/** A promised turn not taken this long after it came is forgotten. */
const STALE_TURN_MS = 10 * 60_000;
/** A promised turn this close is taken now. */
const TURN_SLACK_MS = 10;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
