/**
 * What keeps a row's Slack messages in step with Postgres, for any row that has them (a task's
 * card and review request, a run's card, review request and step messages). Each redraw re-reads
 * the row and renders it whole, so a failed or rate-limited call is simply made again later:
 *
 * - RedrawQueue: redraws of one row are serialised in this process and collapse into one
 *   pending redraw; a failed one is retried with backoff (Retry-After honoured); a reconciler
 *   finds rows whose messages are behind (after a Slack outage, a crash, a late /invite); a
 *   row whose post waits for its channel's turn waits as a timer, not as a redraw held open;
 * - showMessage: posting is claimed in Postgres when the channel's turn comes (not before a
 *   wait in its queue, where a claim could go stale), so two processes never post the same
 *   message; a post whose turn has not come is promised it and answers `waiting`; each message
 *   records the view_version it shows, so a redraw that lands after a newer one is noticed and
 *   redone;
 * - fetchPermalink and sendDms: a message's permalink is fetched once and stored; direct
 *   messages go out once per person whatever the number of processes (each claimed at its
 *   channel's turn, before it is sent).
 *
 * The callers (TaskMessages, RunMessages) decide what to draw where; this holds no state of
 * theirs beyond the queue.
 */
import { WebAPIPlatformError, WebAPIRateLimitedError, type WebClient } from '@slack/web-api';
import type { Db, Queryable } from '../store/db.js';
import {
  allDmsSent,
  claimDms,
  dmsToSend,
  claimMessagePost,
  recordDmSent,
  recordMessageRendered,
  releaseDm,
  releaseMessagePost,
  shownVersion,
  storePermalink,
  type DmLedger,
  type MessageSlot,
} from '../store/slackMessages.js';
import { SlackRateLimited, SlackRefused, type SlackGateway } from './gateway.js';
import type { SlackMessage } from './render/blocks.js';

export interface MessagesLogger {
  warn(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

/** The Slack reads the messages need besides posting and updating. Errors as SlackGateway's. */
export interface SlackLookups {
  /** chat.getPermalink. */
  permalink(channel: string, messageTs: string): Promise<string>;
  /** conversations.open with one user: the DM channel's id. */
  openDm(userId: string): Promise<string>;
  /** The user's DM channel if openDm has already answered it, without asking Slack. */
  knownDm(userId: string): string | undefined;
}

/** DM channels remembered (a user's DM channel with the app never changes); the oldest is dropped past this many. */
const DM_CHANNELS_KEPT = 10_000;

/**
 * SlackLookups over a WebClient (best the background one: no long retries, 429s rejected). A DM
 * channel is asked for once per user: conversations.open is Tier 3 (about 50 a minute), and a
 * burst of reviews on a `dm: true` target, each DM waiting for its turn, asked for the same few
 * reviewers' channels at every try.
 */
export function webApiLookups(client: WebClient): SlackLookups {
  /** A user's DM channel once answered, or the ask in flight. */
  const dmChannels = new Map<string, string | Promise<string>>();
  const call = async <T>(method: string, invoke: () => Promise<T>): Promise<T> => {
    try {
      return await invoke();
    } catch (error) {
      if (error instanceof WebAPIRateLimitedError) throw new SlackRateLimited(method, Math.max(1, error.retryAfter) * 1000);
      if (error instanceof WebAPIPlatformError) throw new SlackRefused(method, error.data.error);
      throw error;
    }
  };
  return {
    permalink: (channel, messageTs) =>
      call('chat.getPermalink', async () => {
        const result = await client.chat.getPermalink({ channel, message_ts: messageTs });
        if (typeof result.permalink !== 'string') throw new SlackRefused('chat.getPermalink', 'no_permalink');
        return result.permalink;
      }),
    openDm: (userId) => {
      // The ask itself is kept: the redraws of a burst ask for the same reviewers' channels at once.
      const known = dmChannels.get(userId);
      if (known !== undefined) return Promise.resolve(known);
      const channel = call('conversations.open', async () => {
        const result = await client.conversations.open({ users: userId });
        if (!result.channel?.id) throw new SlackRefused('conversations.open', 'no_channel');
        return result.channel.id;
      });
      if (dmChannels.size >= DM_CHANNELS_KEPT) dmChannels.delete(dmChannels.keys().next().value as string);
      dmChannels.set(userId, channel);
      // Kept as the id once answered (knownDm); a failed ask is asked again next time.
      channel.then(
        (id) => {
          if (dmChannels.get(userId) === channel) dmChannels.set(userId, id);
        },
        () => {
          if (dmChannels.get(userId) === channel) dmChannels.delete(userId);
        },
      );
      return channel;
    },
    knownDm: (userId) => {
      const known = dmChannels.get(userId);
      return typeof known === 'string' ? known : undefined;
    },
  };
}

/** A write that failed on our side (a dropped connection, a bug), not by Slack's answer: logged and retried. */
export const OUR_FAILURE = 'countersign:failed';

/**
 * One redraw's bookkeeping: what failed (Slack's error code per message), how long Slack asked
 * us to wait, whether something worth another try failed (a permalink, a DM), and whether a
 * newer redraw from another process landed first (then this one is redone).
 */
export class RedrawAttempt {
  retryAfterMs = 0;
  /** Something besides the messages' own errors failed and is worth another try. */
  retry = false;
  /** Another process drew a newer version first: draw again. */
  redo = false;
  /** A message's post or update waits for its turn (showMessage's `waiting`): draw again in this many ms (0: none waits). */
  turnInMs = 0;

  constructor(
    private readonly log: MessagesLogger,
    private readonly context: Record<string, unknown>,
    /** How people name the row: `task 12`, `run 3`. */
    private readonly ref: string,
  ) {}

  /** A message's write failed: the code to report ('ratelimited', Slack's error code, or OUR_FAILURE). */
  failed(error: unknown, what: string): string {
    if (error instanceof SlackRateLimited) {
      this.rateLimited(error);
      return 'ratelimited';
    }
    this.log.warn({ ...this.context, err: error }, `could not write the ${what} of ${this.ref} to Slack`);
    return error instanceof SlackRefused ? error.code : OUR_FAILURE;
  }

  /** A message's post or update waits `ms` for its turn: the row is drawn again when the first such turn comes. */
  waitForTurn(ms: number): void {
    this.turnInMs = this.turnInMs === 0 ? ms : Math.min(this.turnInMs, ms);
  }

  /** A lookup or DM failed in a way another try may fix. */
  failedExtra(error: unknown, what: string): void {
    this.retry = true;
    if (error instanceof SlackRateLimited) this.rateLimited(error);
    else this.log.warn({ ...this.context, err: error }, `could not ${what} for ${this.ref}`);
  }

  private rateLimited(error: SlackRateLimited): void {
    this.retryAfterMs = Math.max(this.retryAfterMs, error.retryAfterMs);
  }
}

export interface Redraw<R> {
  report: R;
  attempt: RedrawAttempt;
  /** A message failed (its code is in the report): retry. */
  failed: boolean;
}

export interface RedrawQueueOptions {
  /** First retry after a failed call; doubles each time. */
  retryBaseMs: number;
  /** How often the reconciler looks for rows with messages behind. */
  reconcileMs: number;
}

interface SyncState<R> {
  chain: Promise<unknown>;
  queued: Promise<R> | null;
  /** The queued redraw resumes one that waited for a message's turn (see RedrawQueue's redraw). */
  resumed: boolean;
  /** A redraw runs and has not reported yet: a follower added now hears its report. */
  running: boolean;
}

/** Told of each redraw's report of one row until it answers true (done) or `until` passes. */
interface Follower<R> {
  listener: (report: R) => boolean;
  until: number;
}

interface Failure {
  attempts: number;
  nextAt: number;
  timer: NodeJS.Timeout | null;
}

const MAX_BACKOFF_MS = 10 * 60_000;

/**
 * Serialised, collapsing, retried redraws of rows by id, and the reconciler that finds rows behind.
 * A redraw whose post must wait for its channel's turn ends at once (RedrawAttempt.waitForTurn)
 * and the row waits as a timer: in a burst, thousands of rows wait minutes for their turn, and a
 * redraw held open through the wait kept its task's view and a dozen suspended calls alive for
 * each (about 15 KB a card, copied again by every young-generation collection).
 */
export class RedrawQueue<R> {
  private readonly states = new Map<number, SyncState<R>>();
  private readonly failures = new Map<number, Failure>();
  /** Rows waiting for a message's turn in its channel: when, and the timer that redraws them then. */
  private readonly turns = new Map<number, { at: number; timer: NodeJS.Timeout }>();
  /** In the order they were added, all with the same lifetime: the expired ones are at the front. */
  private readonly followers = new Map<number, Follower<R>[]>();
  private reconciler: NodeJS.Timeout | null = null;
  stopped = false;

  constructor(
    /** `task` or `run`, for the log. */
    private readonly what: string,
    /** `resumed`: the row waited for a message's turn, and a message the wait did not hold up may already show its version. */
    private readonly redraw: (id: number, resumed: boolean) => Promise<Redraw<R>>,
    /** Rows worth a redraw now (messages behind, links or DMs missing). */
    private readonly candidates: () => Promise<number[]>,
    private readonly log: MessagesLogger,
    private readonly options: RedrawQueueOptions,
  ) {}

  /** Starts the reconciler (and runs it once now: messages left behind before a restart catch up). */
  start(): void {
    const tick = () => void this.reconcile().catch((error) => this.log.error({ err: error }, `reconciling the Slack messages of ${this.what}s failed`));
    this.reconciler = setInterval(tick, this.options.reconcileMs);
    this.reconciler.unref();
    tick();
  }

  /**
   * `afterTurn`: the redraw starts after the current turn of the event loop (the caller answers
   * its user first), but is under way at once for follow() and for collapsing.
   */
  sync(id: number, afterTurn = false, resumed = false): Promise<R> {
    let state = this.states.get(id);
    if (!state) {
      state = { chain: Promise.resolve(), queued: null, resumed: false, running: false };
      this.states.set(id, state);
    }
    state.resumed ||= resumed;
    if (state.queued) return state.queued;
    const current = state;
    const queued = current.chain
      .then(() => (afterTurn ? new Promise<void>((resolve) => setImmediate(resolve)) : undefined))
      .then(() => {
        current.queued = null;
        const wasResumed = current.resumed;
        current.resumed = false;
        current.running = true;
        return this.run(id, wasResumed, current);
      });
    current.queued = queued;
    current.chain = queued
      .catch((error) => {
        this.log.error({ err: error, [`${this.what}Id`]: id }, `redrawing the Slack messages of ${this.what} ${id} failed`);
        // Thrown (the database away, a bug): tried again with backoff, as a refused write is; a
        // row that waited for a turn keeps it (the same key asks for the same turn).
        this.scheduleRetry(id, 0);
      })
      .then(() => {
        // Forget idle rows, so the map does not grow with every row ever seen.
        if (!current.queued && this.states.get(id) === current) this.states.delete(id);
      });
    return queued;
  }

  /**
   * Hands `listener` the report of each redraw of this row from now on (one under way, one
   * waiting for its turn, or else a new one started now) until it answers true, for at most
   * `forMs`. It holds only the listener while the row waits: a command's answer about its card
   * follows the post without keeping a call suspended for each card of a burst.
   */
  follow(id: number, listener: (report: R) => boolean, forMs: number): void {
    const now = Date.now();
    for (const [rowId, list] of this.followers) {
      const kept = list.filter((follower) => follower.until > now);
      if (kept.length === list.length) break;
      if (kept.length > 0) this.followers.set(rowId, kept);
      else this.followers.delete(rowId);
    }
    const list = this.followers.get(id) ?? [];
    list.push({ listener, until: now + forMs });
    this.followers.set(id, list);
    const state = this.states.get(id);
    if (!state?.queued && !state?.running && !this.turns.has(id)) void this.sync(id);
  }

  /** Waits for the redraws under way, at most `timeoutMs` (what is left, the reconciler redoes later). */
  async idle(timeoutMs: number): Promise<void> {
    const all = Promise.all([...this.states.values()].map((state) => state.chain));
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  }

  stop(): void {
    this.stopped = true;
    if (this.reconciler) clearInterval(this.reconciler);
    for (const failure of this.failures.values()) if (failure.timer) clearTimeout(failure.timer);
    for (const turn of this.turns.values()) clearTimeout(turn.timer);
    this.turns.clear();
  }

  /** Rows waiting for a message's turn, and rows with a redraw queued or running. */
  get pending(): { waitingForTurn: number; redrawing: number } {
    return { waitingForTurn: this.turns.size, redrawing: this.states.size };
  }

  /**
   * Redraws every candidate row, except those waiting out a backoff and those this process is
   * redrawing already: in a burst most rows are behind while their posts wait for their channel's
   * turn, and queueing a second redraw behind each (and waiting for it) only doubled the work and
   * stalled the sweep for minutes. A row waiting for its turn is passed over too: its timer redraws
   * it then. A row still behind after its redraw is found at the next sweep.
   */
  async reconcile(): Promise<void> {
    const now = Date.now();
    for (const id of [...new Set(await this.candidates())]) {
      const failure = this.failures.get(id);
      if (failure && (failure.timer || failure.nextAt > now)) continue;
      if (this.states.has(id) || this.turns.has(id)) continue;
      await this.sync(id).catch(() => undefined);
    }
  }

  private async run(id: number, resumed: boolean, state: SyncState<R>): Promise<R> {
    let done: Redraw<R>;
    try {
      done = await this.redraw(id, resumed);
    } finally {
      state.running = false;
    }
    const { attempt } = done;
    if (done.failed || attempt.retry) this.scheduleRetry(id, attempt.retryAfterMs);
    // A redraw that only waited proves nothing: a post refused at its last turn keeps its backoff.
    else if (attempt.turnInMs === 0) this.clearFailure(id);
    if (attempt.turnInMs > 0) this.scheduleTurn(id, attempt.turnInMs);
    // A redraw from another process landed after ours was rendered: ours may now show an older state.
    if (attempt.redo && !this.stopped) void this.sync(id);
    this.tellFollowers(id, done.report);
    return done.report;
  }

  private tellFollowers(id: number, report: R): void {
    const list = this.followers.get(id);
    if (!list) return;
    const now = Date.now();
    const kept = list.filter((follower) => {
      if (follower.until <= now) return false;
      try {
        return !follower.listener(report);
      } catch (error) {
        this.log.error({ err: error, [`${this.what}Id`]: id }, `a follower of ${this.what} ${id}'s messages failed`);
        return false;
      }
    });
    if (kept.length > 0) this.followers.set(id, kept);
    else this.followers.delete(id);
  }

  /** Redraws the row when its first waiting message's turn comes (an earlier timer already set stands). */
  private scheduleTurn(id: number, inMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + inMs;
    const existing = this.turns.get(id);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.turns.delete(id);
      void this.sync(id, false, true);
    }, inMs);
    timer.unref();
    this.turns.set(id, { at, timer });
  }

  /** Postgres already holds the truth: retrying the redraw later is all it takes to catch up. */
  private scheduleRetry(id: number, retryAfterMs: number): void {
    if (this.stopped) return;
    const failure = this.failures.get(id) ?? { attempts: 0, nextAt: 0, timer: null };
    this.failures.set(id, failure);
    if (failure.timer) return;
    failure.attempts++;
    const delay = Math.min(MAX_BACKOFF_MS, Math.max(retryAfterMs, this.options.retryBaseMs * 2 ** (failure.attempts - 1)));
    failure.nextAt = Date.now() + delay;
    // Quick retries by timer; past a few, the reconciler takes over at the backoff's pace.
    if (failure.attempts <= 6) {
      failure.timer = setTimeout(() => {
        failure.timer = null;
        void this.sync(id);
      }, delay);
      failure.timer.unref();
    }
  }

  private clearFailure(id: number): void {
    const failure = this.failures.get(id);
    if (failure?.timer) clearTimeout(failure.timer);
    this.failures.delete(id);
  }
}

/**
 * What a row kind's Slack views (TaskMessages, RunMessages) offer the app: a redraw on demand,
 * the reconciler, shutdown. Subclasses say how one row is redrawn and which rows are behind.
 */
export abstract class MessageViews<R> {
  protected readonly queue: RedrawQueue<R>;

  constructor(what: string, log: MessagesLogger, options: RedrawQueueOptions) {
    this.queue = new RedrawQueue(
      what,
      (id, resumed) => this.redraw(id, resumed),
      () => this.candidates(),
      log,
      options,
    );
  }

  /**
   * Redraws every message of one row from Postgres. `resumed`: the row waited for a message's
   * turn, and a message drawn before the wait may already show the row's version.
   */
  protected abstract redraw(id: number, resumed: boolean): Promise<Redraw<R>>;
  /** Rows worth a redraw now (messages behind, links or DMs missing). */
  protected abstract candidates(): Promise<number[]>;

  /** Starts the reconciler (and runs it once now: messages left behind before a restart catch up). */
  start(): void {
    this.queue.start();
  }

  sync(id: number): Promise<R> {
    return this.queue.sync(id);
  }

  /** See RedrawQueue.follow. */
  follow(id: number, listener: (report: R) => boolean, forMs: number): void {
    this.queue.follow(id, listener, forMs);
  }

  /** Rows waiting for a message's turn, and rows with a redraw queued or running. */
  get pending(): { waitingForTurn: number; redrawing: number } {
    return this.queue.pending;
  }

  /** Waits for the redraws under way, at most `timeoutMs` (what is left, the reconciler redoes later). */
  idle(timeoutMs: number): Promise<void> {
    return this.queue.idle(timeoutMs);
  }

  stop(): void {
    this.queue.stop();
  }

  /** Redraws every row with messages behind, and catches up permalinks and DMs not done yet. */
  reconcile(): Promise<void> {
    return this.queue.reconcile();
  }
}

export interface ShowOptions {
  /** Post into this thread (a step's prompt under the run's card). */
  threadTs?: string;
  /** Skip the update when the message already shows this version (every replica hears a run's changes). */
  skipIfShown?: boolean;
  /** Record the channel with the ts (a slot whose channel is chosen when it is posted). */
  recordChannel?: boolean;
}

/** What showMessage did: `waitMs` only with `waiting`. */
export type ShowOutcome = { outcome: 'shown' | 'stale' | 'elsewhere'; ts: string | null } | { outcome: 'waiting'; ts: null; waitMs: number };

/**
 * Posts the message if it was never posted (claiming the post first), else updates it.
 * `stale`: the message turned out to show a newer version than this redraw, which must be
 * redone. `elsewhere`: another process holds the claim to post it; the reconciler follows up.
 * `waiting`: the turn for this post (the channel's) or update (the workspace's) has not come;
 * it is promised to it (gateway.postTurn, updateTurn) and the caller draws again in `waitMs`
 * (RedrawAttempt.waitForTurn) rather than waiting here with its whole redraw held open.
 */
export async function showMessage(
  db: Db,
  gateway: Pick<SlackGateway, 'postTurn' | 'forgetTurn' | 'updateTurn' | 'forgetUpdateTurn' | 'returnPostSlot' | 'postMessage' | 'update'>,
  slot: MessageSlot,
  place: { channel: string; ts: string | null },
  /** Drawn only when it is sent: an update skipped, a post waiting or claimed elsewhere draws nothing. */
  render: () => SlackMessage,
  version: number,
  options: ShowOptions = {},
): Promise<ShowOutcome> {
  let shownTs = place.ts;
  if (shownTs === null) {
    // The channel's turn first, then the claim: a claim held through a long wait in the channel's
    // queue would go stale (two minutes) and let another process post the message too. Nor is
    // a burst of commands slowed by claims that only wait.
    const waitMs = gateway.postTurn(place.channel, turnKey(slot));
    if (waitMs > 0) return { outcome: 'waiting', ts: null, waitMs };
    if (!(await claimMessagePost(db, slot))) {
      // Another process posts it (every replica redraws a run): this one's turn goes to the next post.
      gateway.returnPostSlot(place.channel);
      return { outcome: 'elsewhere', ts: null };
    }
    let fresh: boolean;
    try {
      let message: SlackMessage;
      try {
        message = render();
      } catch (error) {
        // Our bug, not the channel's: the turn goes to the next post.
        gateway.returnPostSlot(place.channel);
        throw error;
      }
      shownTs = (
        await gateway.postMessage({ channel: place.channel, ...message, ...(options.threadTs ? { threadTs: options.threadTs } : {}) }, { slotTaken: true })
      ).ts;
      // Its ts, the claim released and the version it shows: one statement.
      fresh = await recordMessageRendered(db, slot, version, { ts: shownTs, ...(options.recordChannel ? { channel: place.channel } : {}) });
    } catch (error) {
      await releaseMessagePost(db, slot);
      throw error;
    }
    return { outcome: fresh ? 'shown' : 'stale', ts: shownTs };
  } else {
    // Posted meanwhile by another process: a turn this one was promised for it goes to the next post.
    gateway.forgetTurn(place.channel, turnKey(slot));
    const already = options.skipIfShown ? await shownVersion(db, slot) : null;
    if (already !== null && already >= version) {
      gateway.forgetUpdateTurn(turnKey(slot));
      return { outcome: already > version ? 'stale' : 'shown', ts: shownTs };
    }
    // The workspace's update budget is shared by every message: a redraw whose turn has not come
    // ends here, as a post's does, and draws again when it comes.
    const waitMs = gateway.updateTurn(turnKey(slot));
    if (waitMs > 0) return { outcome: 'waiting', ts: null, waitMs };
    await gateway.update({ channel: place.channel, ts: shownTs, ...render() }, 'view', { turnTaken: true });
  }
  const fresh = await recordMessageRendered(db, slot, version);
  return { outcome: fresh ? 'shown' : 'stale', ts: shownTs };
}

/** What a post is promised its channel's turn under (gateway.postTurn). */
export const turnKey = (slot: MessageSlot): string => `${slot.table}:${slot.id}:${slot.kind}`;

/**
 * Asks Slack for a message's permalink: the URL, '' when Slack refuses one (the message is gone,
 * or Slack will not link it: asking again would not help), or null when the call failed in a way
 * another try may fix (the attempt is marked for a retry).
 */
export async function lookUpPermalink(lookups: SlackLookups, slot: MessageSlot, channel: string, ts: string, attempt: RedrawAttempt): Promise<string | null> {
  try {
    return await lookups.permalink(channel, ts);
  } catch (error) {
    if (error instanceof SlackRefused) return '';
    attempt.failedExtra(error, `get the permalink of a ${slot.kind} message`);
    return null;
  }
}

/**
 * Fetches and stores a message's permalink. `stored`: this call stored it (what shows it must
 * be redrawn). A refusal is stored as '' and never asked again; anything else is retried later.
 */
export async function fetchPermalink(
  db: Queryable,
  lookups: SlackLookups,
  slot: MessageSlot,
  channel: string,
  ts: string,
  attempt: RedrawAttempt,
): Promise<{ url: string | null; stored: boolean }> {
  const url = await lookUpPermalink(lookups, slot, channel, ts, attempt);
  if (url === null) return { url, stored: false };
  const stored = await storePermalink(db, slot, url);
  // Nothing shows a refusal: storing it only stops the asking.
  return { url, stored: stored && url !== '' };
}

export interface DmRound {
  ledger: DmLedger;
  recipients: readonly string[];
  render(userId: string): SlackMessage;
  /** The audit event of a DM sent, written with its ledger row. */
  audit(trx: Queryable, userId: string, channel: string): Promise<void>;
}

/** One DM's bookkeeping in Postgres, which sendOneDm calls in order. */
export interface DmSteps {
  /** Takes the DM for this process; false when another process sends it or sent it. */
  claim(): Promise<boolean>;
  render(): SlackMessage;
  /** Records it sent, with its audit event. */
  record(channel: string): Promise<void>;
  /** Gives the claim up after a failure, so a later try sends it. */
  release(): Promise<void>;
}

/**
 * Sends one DM, claimed when its DM channel's turn comes (as a message's post is: a claim held
 * through a long wait in the queue would go stale and let another process send the same DM). A
 * failure releases the claim, or gives the turn back when nothing was claimed, and is rethrown.
 * With `turnKey` the DM is promised its turn under that name (gateway.postTurn) and, when the turn
 * has not come, nothing is sent and the ms until it comes are answered: the caller's row waits as
 * a timer (RedrawAttempt.waitForTurn), not as a redraw held open. Without it (a schedule's review,
 * drawn outside a RedrawQueue), it waits here for the turn. Answers 0 once the DM is sent, or
 * taken by another process.
 */
export async function sendOneDm(
  gateway: Pick<SlackGateway, 'postSlot' | 'postTurn' | 'returnPostSlot' | 'postMessage'>,
  lookups: SlackLookups,
  userId: string,
  steps: DmSteps,
  turnKey?: string,
): Promise<number> {
  const channel = await lookups.openDm(userId);
  if (turnKey === undefined) await gateway.postSlot(channel);
  else {
    const waitMs = gateway.postTurn(channel, turnKey);
    if (waitMs > 0) return waitMs;
  }
  let claimed = false;
  try {
    claimed = await steps.claim();
    if (!claimed) {
      gateway.returnPostSlot(channel);
      return 0;
    }
    await gateway.postMessage({ channel, ...steps.render() }, { slotTaken: true });
    await steps.record(channel);
    return 0;
  } catch (error) {
    if (claimed) await steps.release();
    else gateway.returnPostSlot(channel);
    throw error;
  }
}

/** What a DM is promised its DM channel's turn under (gateway.postTurn): its ledger row's name. */
const dmTurnKey = (ledger: DmLedger, userId: string): string => `${ledger.table}:${Object.values(ledger.key).join(':')}:${userId}`;

/**
 * DMs each recipient nobody has DMed yet (sendOneDm). True when every recipient has had theirs
 * (another process may still be sending some: it finishes the job). A DM whose channel's turn has
 * not come waits with its row (RedrawAttempt.waitForTurn): the row is drawn again at the turn.
 */
export async function sendDms(
  db: Db,
  gateway: Pick<SlackGateway, 'postSlot' | 'postTurn' | 'forgetTurn' | 'returnPostSlot' | 'postMessage'>,
  lookups: SlackLookups,
  round: DmRound,
  attempt: RedrawAttempt,
): Promise<boolean> {
  if (round.recipients.length === 0) return true;
  let failed = false;
  let waiting = false;
  const toSend = await dmsToSend(db, round.ledger, round.recipients);
  // Sent (or being sent) by another process meanwhile: a turn promised here for it goes to the next
  // DM. A turn is promised only once its channel is known, so a channel not known had none.
  for (const userId of round.recipients) {
    const channel = toSend.includes(userId) ? undefined : lookups.knownDm(userId);
    if (channel !== undefined) gateway.forgetTurn(channel, dmTurnKey(round.ledger, userId));
  }
  for (const userId of toSend) {
    try {
      const waitMs = await sendOneDm(
        gateway,
        lookups,
        userId,
        {
          claim: async () => (await claimDms(db, round.ledger, [userId])).length > 0,
          render: () => round.render(userId),
          record: (channel) =>
            db.transaction(async (trx) => {
              await recordDmSent(trx, round.ledger, userId, channel);
              await round.audit(trx, userId, channel);
            }),
          release: () => releaseDm(db, round.ledger, userId),
        },
        dmTurnKey(round.ledger, userId),
      );
      if (waitMs > 0) {
        waiting = true;
        attempt.waitForTurn(waitMs);
      }
    } catch (error) {
      failed = true;
      attempt.failedExtra(error, `DM ${userId}`);
    }
  }
  return !failed && !waiting && (await allDmsSent(db, round.ledger, round.recipients));
}
