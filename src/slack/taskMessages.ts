/**
 * Keeps a task's two Slack messages (the card in its channel, the review request in the
 * review channel) in step with Postgres. Each redraw re-reads the task and renders it whole,
 * so a failed or rate-limited call is simply made again later:
 *
 * - calls for one task are serialised in this process and collapse into one pending redraw;
 * - posting is claimed in Postgres, so two processes never post the same message twice;
 * - each message records the view_version it shows, so a redraw that lands after a newer one
 *   (from another process) is noticed and redone, and a reconciler finds every message that is
 *   behind (after a Slack outage, a crash, a late /invite) and redraws it.
 *
 * With Slack lookups given (permalinks, DMs), two more things follow a message's first post:
 * - each message's permalink is fetched once and stored, and the other message links to it
 *   (a change both messages show, so they are redrawn); a failure is retried later, the card
 *   never waits for it;
 * - members of review groups with `dm: true` get a direct message about the review, once per
 *   task and reviewer whatever the number of processes (each DM is claimed in Postgres first).
 */
import { WebAPIPlatformError, WebAPIRateLimitedError, type WebClient } from '@slack/web-api';
import type { Config } from '../config/config.js';
import { dmRecipients, type ReviewPolicy } from '../domain/review.js';
import type { Task } from '../domain/task.js';
import { shortHash } from '../domain/contentVersion.js';
import { Reviewers } from '../service/reviewers.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { loadTaskView } from '../store/taskView.js';
import {
  bumpViewVersion,
  claimMessagePost,
  markReviewScriptPosted,
  recordMessagePosted,
  recordMessageRendered,
  releaseMessagePost,
  tasksWithMessagesBehind,
  type TaskMessageKind,
} from '../store/tasks.js';
import { SlackRateLimited, SlackRefused, type SlackGateway } from './gateway.js';
import type { SlackMessage } from './render/blocks.js';
import { renderReviewDm, renderReviewRequest, safePermalink } from './render/reviewRequest.js';
import { renderTaskCard } from './render/taskCard.js';
import { postWholeScript } from './wholeScript.js';

export interface SyncReport {
  /** Slack's error code when the card could not be posted or updated. */
  cardError: string | null;
  reviewError: string | null;
}

export interface MessagesLogger {
  warn(context: Record<string, unknown>, message: string): void;
  error(context: Record<string, unknown>, message: string): void;
}

export interface TaskMessagesOptions {
  /** First retry after a failed call; doubles each time. */
  retryBaseMs: number;
  /** How often the reconciler looks for messages behind their task. */
  reconcileMs: number;
  /** The task page's signed URL, linked from the card. */
  logUrl?: (taskId: number) => string;
  /** Resolves review groups' Slack user groups (shared with TaskService); without it user groups have no members. */
  reviewers?: Reviewers;
  /** Permalinks and DM channels; without them messages are not linked to each other and no DMs are sent. */
  lookups?: SlackLookups;
}

/** The Slack reads the messages need besides posting and updating. Errors as SlackGateway's. */
export interface SlackLookups {
  /** chat.getPermalink. */
  permalink(channel: string, messageTs: string): Promise<string>;
  /** conversations.open with one user: the DM channel's id. */
  openDm(userId: string): Promise<string>;
}

/** SlackLookups over a WebClient (best the background one: no long retries, 429s rejected). */
export function webApiLookups(client: WebClient): SlackLookups {
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
    openDm: (userId) =>
      call('conversations.open', async () => {
        const result = await client.conversations.open({ users: userId });
        if (!result.channel?.id) throw new SlackRefused('conversations.open', 'no_channel');
        return result.channel.id;
      }),
  };
}

interface TaskSyncState {
  chain: Promise<unknown>;
  queued: Promise<SyncReport> | null;
  /** The newest sync asked for (queued or running), until it completes. */
  latest: Promise<SyncReport> | null;
}

interface Failure {
  attempts: number;
  nextAt: number;
  timer: NodeJS.Timeout | null;
}

const MAX_BACKOFF_MS = 10 * 60_000;
/** Permalinks and DMs are caught up for tasks this recent; older ones are left as they are. */
const LINKS_MAX_AGE_DAYS = 1;
/** A DM claim older than this belonged to a process that died mid-send. */
const STALE_DM_CLAIM = "interval '2 minutes'";

export class TaskMessages {
  private readonly states = new Map<number, TaskSyncState>();
  private readonly failures = new Map<number, Failure>();
  private reconciler: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly reviewers: Reviewers;
  /** Targets with a `dm: true` review group. */
  private readonly dmTargets: string[];

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly gateway: SlackGateway,
    private readonly log: MessagesLogger,
    private readonly options: TaskMessagesOptions,
  ) {
    this.reviewers = options.reviewers ?? new Reviewers(null);
    this.dmTargets = [...config.targets.values()].filter((target) => target.review?.groups.some((group) => group.dm)).map((target) => target.name);
  }

  /** Starts the reconciler (and runs it once now: messages left behind before a restart catch up). */
  start(): void {
    const tick = () => void this.reconcile().catch((error) => this.log.error({ err: error }, 'reconciling Slack messages failed'));
    this.reconciler = setInterval(tick, this.options.reconcileMs);
    this.reconciler.unref();
    tick();
  }

  sync(taskId: number): Promise<SyncReport> {
    let state = this.states.get(taskId);
    if (!state) {
      state = { chain: Promise.resolve(), queued: null, latest: null };
      this.states.set(taskId, state);
    }
    if (state.queued) return state.queued;
    const current = state;
    const queued = current.chain.then(() => {
      current.queued = null;
      return this.syncNow(taskId);
    });
    current.queued = queued;
    current.latest = queued;
    current.chain = queued
      .catch((error) => this.log.error({ err: error, taskId }, `redrawing the Slack messages of task ${taskId} failed`))
      .then(() => {
        if (current.latest === queued) current.latest = null;
        // Forget idle tasks, so the map does not grow with every task ever seen.
        if (!current.queued && this.states.get(taskId) === current) this.states.delete(taskId);
      });
    return queued;
  }

  /** The report of the redraw already under way for this task, else of a new one. */
  current(taskId: number): Promise<SyncReport> {
    return this.states.get(taskId)?.latest ?? this.sync(taskId);
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
  }

  /**
   * Redraws every message that is behind its task, and catches up permalinks and DMs not done
   * yet, except for tasks waiting out a backoff.
   */
  async reconcile(): Promise<void> {
    const now = Date.now();
    const behind = await tasksWithMessagesBehind(this.db, 100);
    const unlinked = this.options.lookups ? await tasksWithLinksMissing(this.db, this.dmTargets, 100) : [];
    for (const taskId of [...new Set([...behind, ...unlinked])]) {
      const failure = this.failures.get(taskId);
      if (failure && (failure.timer || failure.nextAt > now)) continue;
      await this.sync(taskId).catch(() => undefined);
    }
  }

  private async syncNow(taskId: number): Promise<SyncReport> {
    const report: SyncReport = { cardError: null, reviewError: null };
    if (this.stopped) return report;
    const view = await loadTaskView(this.db, taskId);
    if (!view) return report;
    const { task } = view;
    const target = this.config.targets.get(task.target);
    // Progress counts user group members: render with the members as they are now.
    const resolved = target?.review ? await this.reviewers.resolve(target.review) : null;
    const policy = resolved?.policy ?? null;
    const lookups = this.options.lookups;
    const links = lookups ? await readLinks(this.db, taskId) : null;
    let retryAfterMs = 0;
    let redo = false;
    // A permalink or DM that failed: not an error of either message, but worth another try.
    let retryExtras = false;
    let cardTs = task.cardTs;
    let reviewTs = task.reviewTs;
    const failed = (error: unknown, what: string): string => {
      if (error instanceof SlackRateLimited) {
        retryAfterMs = Math.max(retryAfterMs, error.retryAfterMs);
        return 'ratelimited';
      }
      this.log.warn({ taskId, err: error }, `could not write the ${what} of task ${taskId} to Slack`);
      return error instanceof SlackRefused ? error.code : String(error);
    };

    // The two messages live in different channels, each with its own pace: neither waits for the other.
    const resubmittedAs = task.status === 'rejected' ? await resubmissionOf(this.db, taskId) : null;
    const showCard = async () => {
      if (!task.channelId) return;
      const card = renderTaskCard(view, {
        targetDescription: target?.description ?? null,
        policy,
        logUrl: this.options.logUrl?.(view.task.id) ?? null,
        reviewPermalink: safePermalink(links?.reviewPermalink),
        resubmittedAs: resubmittedAs ? { id: resubmittedAs.id, permalink: safePermalink(resubmittedAs.permalink) } : null,
      });
      try {
        const shown = await this.show(task, 'card', task.channelId, task.cardTs, card);
        redo ||= shown.outcome === 'stale';
        cardTs = shown.ts;
      } catch (error) {
        report.cardError = failed(error, 'card');
      }
    };
    const showReview = async () => {
      if (!task.reviewChannel || !policy) return;
      const { scriptClipped, ...request } = renderReviewRequest(view, policy, { cardPermalink: links?.cardPermalink || null });
      try {
        const shown = await this.show(task, 'review', task.reviewChannel, task.reviewTs, request);
        redo ||= shown.outcome === 'stale';
        reviewTs = shown.ts;
        // Reviewers must be able to read everything they approve: a clipped script goes to the thread whole.
        if (scriptClipped && !task.reviewScriptPosted && shown.ts) {
          // Named by version: after an edit the thread holds two files, and the reviewer must tell which one Approve covers.
          await postWholeScript(this.gateway, { channel: task.reviewChannel, threadTs: shown.ts, name: `task-${taskId}-script`, ref: `#${taskId}`, type: task.type, script: task.script, version: shortHash(task.contentVersion) });
          await markReviewScriptPosted(this.db, taskId);
        }
      } catch (error) {
        report.reviewError = failed(error, 'review request');
      }
    };
    await Promise.all([showCard(), showReview()]);

    if (lookups && links) {
      const extras = await this.linkAndNotify(task, policy, resolved?.unknown ?? [], links, lookups, cardTs, reviewTs);
      redo ||= extras.linked;
      retryExtras = extras.failed;
      retryAfterMs = Math.max(retryAfterMs, extras.retryAfterMs);
    }

    if (report.cardError || report.reviewError || retryExtras) this.scheduleRetry(taskId, retryAfterMs);
    else this.clearFailure(taskId);
    // A redraw from another process landed after ours was rendered: ours may now show an older state.
    if (redo && !this.stopped) void this.sync(taskId);
    return report;
  }

  /**
   * After the messages are posted: fetches the permalinks not known yet (`linked` when one was
   * stored: both messages must be redrawn to show it), then sends the review DMs not sent yet.
   */
  private async linkAndNotify(
    task: Task,
    policy: ReviewPolicy | null,
    unknownUsergroups: readonly string[],
    links: TaskLinks,
    lookups: SlackLookups,
    cardTs: string | null,
    reviewTs: string | null,
  ): Promise<{ linked: boolean; failed: boolean; retryAfterMs: number }> {
    let linked = false;
    let failed = false;
    let retryAfterMs = 0;
    const fetchLink = async (kind: 'card' | 'review', channel: string, ts: string): Promise<void> => {
      try {
        const url = await lookups.permalink(channel, ts);
        if (await storePermalink(this.db, task.id, kind, url)) {
          linked = true;
          // The card of the task this one resubmits links to this card: redraw it with the link.
          const original = kind === 'card' ? await resubmittedFrom(this.db, task.id) : null;
          if (original !== null) {
            await bumpViewVersion(this.db, original);
            void this.sync(original);
          }
        }
        if (kind === 'review') links.reviewPermalink = url;
        else links.cardPermalink = url;
      } catch (error) {
        if (error instanceof SlackRefused) {
          // The message is gone, or Slack will not link it: asking again would not help.
          this.log.warn({ taskId: task.id, err: error }, `Slack gives no permalink for the ${kind} of task ${task.id}`);
          await storePermalink(this.db, task.id, kind, '');
          return;
        }
        failed = true;
        if (error instanceof SlackRateLimited) retryAfterMs = Math.max(retryAfterMs, error.retryAfterMs);
        else this.log.warn({ taskId: task.id, err: error }, `could not get the permalink of the ${kind} of task ${task.id}`);
      }
    };
    const wanted: Promise<void>[] = [];
    // The card's link is shown on the review request; the request's on the card and in the DMs.
    if (links.cardPermalink === null && cardTs && task.channelId && task.reviewChannel) wanted.push(fetchLink('card', task.channelId, cardTs));
    if (links.reviewPermalink === null && reviewTs && task.reviewChannel) wanted.push(fetchLink('review', task.reviewChannel, reviewTs));
    await Promise.all(wanted);
    if (linked) await bumpViewVersion(this.db, task.id);

    // DMs go out once the request exists and can be linked to, while the review is still open.
    if (policy && task.status === 'pending-review' && reviewTs && !links.reviewDmsSent && links.reviewPermalink !== null) {
      // Members of a user group Slack could not list now get theirs once it can: the DMs are not done yet.
      const membersUnknown = policy.groups.some((group) => group.dm && group.usergroup && unknownUsergroups.includes(group.usergroup));
      const dms = await this.sendReviewDms(task, policy, links.reviewPermalink || null, !membersUnknown);
      failed ||= dms.failed;
      retryAfterMs = Math.max(retryAfterMs, dms.retryAfterMs);
    }
    return { linked, failed, retryAfterMs };
  }

  /** DMs each member of the `dm: true` groups (never the author) whom no process has DMed about this task. */
  private async sendReviewDms(task: Task, policy: ReviewPolicy, permalink: string | null, membersKnown: boolean): Promise<{ failed: boolean; retryAfterMs: number }> {
    const recipients = dmRecipients(policy, task.author);
    let failed = false;
    let retryAfterMs = 0;
    const claimed = recipients.length > 0 ? await claimDms(this.db, task.id, recipients) : [];
    for (const userId of claimed) {
      try {
        const channel = await this.options.lookups!.openDm(userId);
        const groups = policy.groups.filter((group) => group.dm && group.users.includes(userId)).map((group) => group.name);
        await this.gateway.postMessage({ channel, ...renderReviewDm(task, groups, permalink) });
        await recordDmSent(this.db, task.id, userId, channel);
      } catch (error) {
        failed = true;
        await releaseDm(this.db, task.id, userId);
        if (error instanceof SlackRateLimited) retryAfterMs = Math.max(retryAfterMs, error.retryAfterMs);
        else this.log.warn({ taskId: task.id, user: userId, err: error }, `could not DM ${userId} about the review of task ${task.id}`);
      }
    }
    // Done when everyone has had theirs (another process may still be sending some: it finishes the job).
    if (!membersKnown) return { failed: true, retryAfterMs };
    if (!failed && (await allDmsSent(this.db, task.id, recipients))) await markDmsSent(this.db, task.id);
    return { failed, retryAfterMs };
  }

  /**
   * Posts the message if it was never posted (claiming the post first), else updates it.
   * `stale`: the message turned out to show a newer version than this redraw, which must be
   * redone. `elsewhere`: another process holds the claim to post it; the reconciler follows up.
   */
  private async show(
    task: Task,
    kind: TaskMessageKind,
    channel: string,
    ts: string | null,
    message: SlackMessage,
  ): Promise<{ outcome: 'shown' | 'stale' | 'elsewhere'; ts: string | null }> {
    let shownTs = ts;
    if (shownTs === null) {
      if (!(await claimMessagePost(this.db, task.id, kind))) return { outcome: 'elsewhere', ts: null };
      try {
        shownTs = (await this.gateway.postMessage({ channel, ...message })).ts;
        await recordMessagePosted(this.db, task.id, kind, shownTs);
      } catch (error) {
        await releaseMessagePost(this.db, task.id, kind);
        throw error;
      }
    } else {
      await this.gateway.update({ channel, ts: shownTs, ...message }, 'view');
    }
    const fresh = await recordMessageRendered(this.db, task.id, kind, task.viewVersion);
    return { outcome: fresh ? 'shown' : 'stale', ts: shownTs };
  }

  /** Postgres already holds the truth: retrying the redraw later is all it takes to catch up. */
  private scheduleRetry(taskId: number, retryAfterMs: number): void {
    if (this.stopped) return;
    const failure = this.failures.get(taskId) ?? { attempts: 0, nextAt: 0, timer: null };
    this.failures.set(taskId, failure);
    if (failure.timer) return;
    failure.attempts++;
    const delay = Math.min(MAX_BACKOFF_MS, Math.max(retryAfterMs, this.options.retryBaseMs * 2 ** (failure.attempts - 1)));
    failure.nextAt = Date.now() + delay;
    // Quick retries by timer; past a few, the reconciler takes over at the backoff's pace.
    if (failure.attempts <= 6) {
      failure.timer = setTimeout(() => {
        failure.timer = null;
        void this.sync(taskId);
      }, delay);
      failure.timer.unref();
    }
  }

  private clearFailure(taskId: number): void {
    const failure = this.failures.get(taskId);
    if (failure?.timer) clearTimeout(failure.timer);
    this.failures.delete(taskId);
  }
}

// ---------------------------------------------------------------- permalinks and DMs in Postgres

interface TaskLinks {
  /** null: not fetched yet; '': Slack refused to give one. */
  cardPermalink: string | null;
  reviewPermalink: string | null;
  reviewDmsSent: boolean;
}

async function readLinks(db: Queryable, taskId: number): Promise<TaskLinks> {
  const row = await db('tasks').where({ id: taskId }).first('card_permalink', 'review_permalink', 'review_dms_sent');
  return { cardPermalink: row?.card_permalink ?? null, reviewPermalink: row?.review_permalink ?? null, reviewDmsSent: row?.review_dms_sent === true };
}

/** The task a rejected one was resubmitted as (its source key names it), with its card's permalink when known. */
async function resubmissionOf(db: Queryable, taskId: number): Promise<{ id: number; permalink: string | null } | null> {
  const row = await db('tasks').where({ source_key: `resubmit:${taskId}` }).first('id', 'card_permalink');
  return row ? { id: Number(row.id), permalink: row.card_permalink || null } : null;
}

/** The rejected task this one resubmits, or null. */
async function resubmittedFrom(db: Queryable, taskId: number): Promise<number | null> {
  const row = await db('tasks').where({ id: taskId }).first('source_key');
  const match = /^resubmit:(\d{1,15})$/.exec(String(row?.source_key ?? ''));
  return match ? Number(match[1]) : null;
}

/** Stores a permalink unless one is known already; true when this call stored it. */
async function storePermalink(db: Queryable, taskId: number, kind: 'card' | 'review', url: string): Promise<boolean> {
  const column = kind === 'card' ? 'card_permalink' : 'review_permalink';
  const rows = await db('tasks').where({ id: taskId }).whereNull(column).update({ [column]: url }, ['id']);
  return rows.length > 0;
}

/** Recent tasks with a permalink to fetch or review DMs to send (DMs only on `dmTargets`). */
async function tasksWithLinksMissing(db: Queryable, dmTargets: readonly string[], limit: number): Promise<number[]> {
  return db('tasks')
    .where((q) => {
      q.where((a) => a.whereNotNull('card_ts').whereNotNull('review_channel').whereNull('card_permalink'))
        .orWhere((a) => a.whereNotNull('review_ts').whereNull('review_permalink'));
      if (dmTargets.length > 0) {
        q.orWhere((a) => a.where({ status: 'pending-review', review_dms_sent: false }).whereNotNull('review_ts').whereIn('target', [...dmTargets]));
      }
    })
    .where('created_at', '>', db.raw('now() - make_interval(days => ?)', [LINKS_MAX_AGE_DAYS]))
    .orderBy('id', 'desc')
    .limit(limit)
    .pluck('id');
}

/** Claims the DMs to these users that nobody has sent or is sending: the users this caller must DM. Exported for tests. */
export async function claimDms(db: Queryable, taskId: number, users: readonly string[]): Promise<string[]> {
  const result = await db.raw(
    `INSERT INTO review_dms (task_id, user_id)
     SELECT ?, unnest(?::text[])
     ON CONFLICT (task_id, user_id) DO UPDATE SET claimed_at = now()
       WHERE review_dms.sent_at IS NULL AND review_dms.claimed_at < now() - ${STALE_DM_CLAIM}
     RETURNING user_id`,
    [taskId, [...users]],
  );
  return (result.rows as Array<{ user_id: string }>).map((row) => row.user_id);
}

async function recordDmSent(db: Db, taskId: number, userId: string, channel: string): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('review_dms').where({ task_id: taskId, user_id: userId }).update({ sent_at: trx.fn.now(), channel_id: channel });
    await appendEvent(trx, { taskId, type: 'review.dm-sent', actor: null, data: { user: userId, channel } });
  });
}

export async function releaseDm(db: Queryable, taskId: number, userId: string): Promise<void> {
  await db('review_dms').where({ task_id: taskId, user_id: userId }).whereNull('sent_at').delete();
}

async function allDmsSent(db: Queryable, taskId: number, users: readonly string[]): Promise<boolean> {
  const sent: string[] = await db('review_dms').where({ task_id: taskId }).whereNotNull('sent_at').whereIn('user_id', [...users]).pluck('user_id');
  return users.every((userId) => sent.includes(userId));
}

async function markDmsSent(db: Queryable, taskId: number): Promise<void> {
  await db('tasks').where({ id: taskId }).update({ review_dms_sent: true });
}
