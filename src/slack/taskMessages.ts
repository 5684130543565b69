/**
 * Keeps a task's two Slack messages (the card in its channel, the review request in the
 * review channel) in step with Postgres, through the shared machinery of messageSync.ts:
 * redraws serialised per task and retried, posts claimed in Postgres, each message recording
 * the view_version it shows, a reconciler for messages behind.
 *
 * With Slack lookups given (permalinks, DMs), two more things follow a message's first post:
 * - each message's permalink is fetched once and stored, and the other message links to it
 *   (a change both messages show, so they are redrawn); a failure is retried later, the card
 *   never waits for it;
 * - members of review groups with `dm: true` get a direct message about the review, once per
 *   task and reviewer whatever the number of processes (each DM is claimed in Postgres first).
 */
import type { Config } from '../config/config.js';
import { dmRecipients, type ReviewPolicy } from '../domain/review.js';
import type { Task, TaskView } from '../domain/task.js';
import { shortHash } from '../domain/contentVersion.js';
import type { TaskChannels } from '../service/bus.js';
import { Reviewers } from '../service/reviewers.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { bornTaskView, readTaskView, SHOWN_UNKNOWN, type TaskLinks, type TaskViewRead } from '../store/taskView.js';
import { bumpViewVersion } from '../store/tasks.js';
import {
  claimDms as claimLedgerDms,
  markReviewScriptPosted,
  releaseDm as releaseLedgerDm,
  storeTaskPermalinks,
  rowsWithMessagesBehind,
  type DmLedger,
  type TaskMessageKind,
} from '../store/slackMessages.js';
import type { SlackGateway } from './gateway.js';
import {
  lookUpPermalink,
  MessageViews,
  RedrawAttempt,
  sendDms,
  showMessage,
  turnKey,
  type MessagesLogger,
  type Redraw,
  type SlackLookups,
} from './messageSync.js';
import { renderReviewDm, renderReviewRequest, safePermalink } from './render/reviewRequest.js';
import { renderTaskCard } from './render/taskCard.js';
import { postWholeScript } from './wholeScript.js';

export { webApiLookups, type MessagesLogger, type SlackLookups } from './messageSync.js';

export interface SyncReport {
  /** Slack's error code when the card could not be posted or updated. */
  cardError: string | null;
  reviewError: string | null;
  /** The card's post (its channel's turn) or update (the workspace's) waits: a later redraw makes it, and reports again. */
  cardWaiting: boolean;
  reviewWaiting: boolean;
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

/** Permalinks and DMs are caught up for tasks this recent; older ones are left as they are. */
const LINKS_MAX_AGE_DAYS = 1;

/**
 * A task with neither a card nor a review request (the API, a webhook, a schedule, a run's step)
 * has nothing in Slack to redraw. Both channels are set when it is created and never change.
 */
const hasMessages = (channels: TaskChannels): boolean => channels.channelId !== null || channels.reviewChannel !== null;

const reviewLedger = (taskId: number): DmLedger => ({ table: 'review_dms', key: { task_id: taskId } });

export class TaskMessages extends MessageViews<SyncReport> {
  private readonly reviewers: Reviewers;
  /** Targets with a `dm: true` review group. */
  private readonly dmTargets: string[];
  /**
   * Tasks whose next redraw can draw what this process knows instead of reading the task back,
   * because nothing else can have changed it since: a new task (the row its insert returned), and
   * a task whose links this process just stored (the statement answered the only version bump
   * since its last read). A change made in this process drops the entry (changed()); one made in
   * another process moves view_version past what the links' statement expects, so no entry is
   * kept. Only a read can say what either did.
   */
  private readonly knownViews = new Map<number, TaskViewRead>();
  /** The redraws under way (one per task at a time): whether changed() was called meanwhile. */
  private readonly drawing = new Map<number, { changed: boolean }>();

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly gateway: SlackGateway,
    private readonly log: MessagesLogger,
    private readonly options: TaskMessagesOptions,
  ) {
    super('task', log, options);
    this.reviewers = options.reviewers ?? new Reviewers(null);
    this.dmTargets = [...config.targets.values()].filter((target) => target.review?.groups.some((group) => group.dm)).map((target) => target.name);
  }

  /**
   * A task changed: redraw its messages. `channels`, when the emitter had the row at hand, spares
   * a task with no messages the read that would only find that out. `born`: the row its insert
   * returned, which its first redraw draws without reading it back.
   */
  changed(taskId: number, channels?: TaskChannels, born?: Task): void {
    if (channels && !hasMessages(channels)) return;
    // Any later change (a claim, a review) drops it: only the read can say what that did.
    if (born) this.knownViews.set(taskId, bornTaskView(born));
    else this.knownViews.delete(taskId);
    const under = this.drawing.get(taskId);
    if (under) under.changed = true;
    // After the current turn: the change's caller (a command's ack, a button's) answers first.
    void this.queue.sync(taskId, true).catch((error) => this.log.error({ err: error, taskId }, 'card sync failed'));
  }

  protected async candidates(): Promise<number[]> {
    const behind = await rowsWithMessagesBehind(this.db, 'tasks', 100);
    const unlinked = this.options.lookups ? await tasksWithLinksMissing(this.db, this.dmTargets, 100) : [];
    return [...behind, ...unlinked];
  }

  protected async redraw(taskId: number, resumed: boolean): Promise<Redraw<SyncReport>> {
    const under = { changed: false };
    this.drawing.set(taskId, under);
    try {
      const done = await this.draw(taskId, resumed);
      // What this redraw knows once its links are stored, unless it threw or the task changed here meanwhile.
      if (done.known && !under.changed) this.knownViews.set(taskId, done.known);
      return done.redraw;
    } finally {
      this.drawing.delete(taskId);
    }
  }

  /**
   * `resumed`: the task waited for a message's turn; a message the draw before the wait showed
   * and that still shows the task's version is left alone (its update would only spend a
   * chat.update of the workspace's fifty a minute).
   */
  private async draw(taskId: number, resumed: boolean): Promise<{ redraw: Redraw<SyncReport>; known: TaskViewRead | null }> {
    const report: SyncReport = { cardError: null, reviewError: null, cardWaiting: false, reviewWaiting: false };
    const attempt = new RedrawAttempt(this.log, { taskId }, `task ${taskId}`);
    const done = (known: TaskViewRead | null = null) => ({
      redraw: { report, attempt, failed: report.cardError !== null || report.reviewError !== null },
      known,
    });
    const known = this.knownViews.get(taskId);
    this.knownViews.delete(taskId);
    if (this.queue.stopped) return done();
    const read = known ?? (await readTaskView(this.db, taskId));
    if (!read || !hasMessages(read.view.task)) return done();
    const { view } = read;
    const { task } = view;
    const target = this.config.targets.get(task.target);
    // Progress counts user group members: render with the members as they are now.
    const resolved = target?.review ? await this.reviewers.resolve(target.review) : null;
    const policy = resolved?.policy ?? null;
    const lookups = this.options.lookups;
    const links = lookups ? read.links : null;
    let cardTs = task.cardTs;
    let reviewTs = task.reviewTs;
    let reviewScriptPosted = task.reviewScriptPosted;
    const slot = (kind: TaskMessageKind) => ({ table: 'tasks' as const, id: taskId, kind });

    // Shown by the draw before the wait (or by another process: a turn promised for it goes to the next).
    const upToDate = (kind: TaskMessageKind, channel: string, ts: string | null, shown: number | null) => {
      if (!resumed || ts === null || shown === null || shown < task.viewVersion) return false;
      this.gateway.forgetTurn(channel, turnKey(slot(kind)));
      this.gateway.forgetUpdateTurn(turnKey(slot(kind)));
      return true;
    };
    // The two messages live in different channels, each with its own pace: neither waits for the
    // other. A post whose turn has not come ends this redraw's part for it (showMessage's
    // `waiting`): the task is drawn again, from a fresh read, when the turn comes.
    const resubmittedAs = task.status === 'rejected' ? await resubmissionOf(this.db, taskId) : null;
    const showCard = async () => {
      if (!task.channelId || upToDate('card', task.channelId, task.cardTs, read.shown.card)) return;
      const card = () =>
        renderTaskCard(view, {
          targetDescription: target?.description ?? null,
          policy,
          logUrl: this.options.logUrl?.(view.task.id) ?? null,
          reviewPermalink: safePermalink(links?.reviewPermalink),
          resubmittedAs: resubmittedAs ? { id: resubmittedAs.id, permalink: safePermalink(resubmittedAs.permalink) } : null,
        });
      try {
        const shown = await showMessage(this.db, this.gateway, slot('card'), { channel: task.channelId, ts: task.cardTs }, card, task.viewVersion);
        if (shown.outcome === 'waiting') {
          report.cardWaiting = true;
          return attempt.waitForTurn(shown.waitMs);
        }
        attempt.redo ||= shown.outcome === 'stale';
        cardTs = shown.ts;
      } catch (error) {
        report.cardError = attempt.failed(error, 'card');
      }
    };
    const showReview = async () => {
      const reviewChannel = task.reviewChannel;
      if (!reviewChannel || !policy) return;
      const draw = () => renderReviewRequest(view, policy, { cardPermalink: links?.cardPermalink || null });
      // Known once drawn; a request not drawn here (shown already at this version) is drawn to learn it.
      let scriptClipped: boolean | null = null;
      const request = () => {
        const { scriptClipped: clipped, ...message } = draw();
        scriptClipped = clipped;
        return message;
      };
      try {
        if (!upToDate('review', reviewChannel, task.reviewTs, read.shown.review)) {
          const shown = await showMessage(this.db, this.gateway, slot('review'), { channel: reviewChannel, ts: task.reviewTs }, request, task.viewVersion);
          if (shown.outcome === 'waiting') {
            report.reviewWaiting = true;
            return attempt.waitForTurn(shown.waitMs);
          }
          attempt.redo ||= shown.outcome === 'stale';
          reviewTs = shown.ts;
        }
        // Reviewers must be able to read everything they approve: a clipped script goes to the thread whole.
        if (!task.reviewScriptPosted && reviewTs && (scriptClipped ?? draw().scriptClipped)) {
          // Named by version: after an edit the thread holds two files, and the reviewer must tell which one Approve covers.
          await postWholeScript(this.gateway, {
            channel: reviewChannel,
            threadTs: reviewTs,
            name: `task-${taskId}-script`,
            ref: `#${taskId}`,
            type: task.type,
            script: task.script,
            version: shortHash(task.contentVersion),
          });
          reviewScriptPosted = await markReviewScriptPosted(this.db, 'tasks', taskId, task.contentVersion);
        }
      } catch (error) {
        report.reviewError = attempt.failed(error, 'review request');
      }
    };
    await Promise.all([showCard(), showReview()]);

    // Links and DMs once both messages have had their turn, as before the wait: the redraw that
    // posts the last one does them (and the permalinks' one redraw updates both messages).
    if (lookups && links && !report.cardWaiting && !report.reviewWaiting) {
      const drawn: TaskView = { ...view, task: { ...task, cardTs, reviewTs, reviewScriptPosted } };
      const linked = await this.linkAndNotify(drawn, policy, resolved?.unknown ?? [], links, lookups, attempt);
      // Only when both messages are in Slack: a message another process posts has a ts only a read finds.
      const allPosted = (!task.channelId || cardTs !== null) && (!task.reviewChannel || !policy || reviewTs !== null);
      return done(linked && allPosted ? linked : null);
    }
    return done();
  }

  /**
   * After the messages are posted: fetches the permalinks not known yet and stores them in one
   * statement (both messages are then redrawn to show them, from what this redraw drew when
   * nothing else changed the task meanwhile), then sends the review DMs not sent yet. `drawn`:
   * the view this redraw drew, with the messages' ts as they are now. Answers what the redraw
   * that shows the links can draw without a read, when the links' statement says it may.
   */
  private async linkAndNotify(
    drawn: TaskView,
    policy: ReviewPolicy | null,
    unknownUsergroups: readonly string[],
    links: TaskLinks,
    lookups: SlackLookups,
    attempt: RedrawAttempt,
  ): Promise<TaskViewRead | null> {
    const { task } = drawn;
    let known: TaskViewRead | null = null;
    const { cardTs, reviewTs } = task;
    const lookUp = (kind: TaskMessageKind, channel: string, ts: string) =>
      lookUpPermalink(lookups, { table: 'tasks', id: task.id, kind }, channel, ts, attempt);
    // The card's link is shown on the review request; the request's on the card and in the DMs.
    const [card, review] = await Promise.all([
      links.cardPermalink === null && cardTs && task.channelId && task.reviewChannel ? lookUp('card', task.channelId, cardTs) : null,
      links.reviewPermalink === null && reviewTs && task.reviewChannel ? lookUp('review', task.reviewChannel, reviewTs) : null,
    ]);
    if (card !== null || review !== null) {
      const stored = await storeTaskPermalinks(this.db, task.id, card, review);
      links.cardPermalink = stored?.cardPermalink ?? links.cardPermalink ?? card;
      links.reviewPermalink = stored?.reviewPermalink ?? links.reviewPermalink ?? review;
      if (stored?.shown) {
        attempt.redo = true;
        // Our bump was the only change since the read: the redraw that shows the links needs none.
        if (stored.viewVersion === task.viewVersion + 1)
          known = { view: { ...drawn, task: { ...task, viewVersion: stored.viewVersion } }, links, shown: SHOWN_UNKNOWN };
      }
      // The card of the task this one resubmits links to this card: redraw it with the link.
      const original = stored?.cardShown ? resubmittedFrom(stored.sourceKey) : null;
      if (original !== null) {
        await bumpViewVersion(this.db, original);
        this.changed(original);
      }
    }

    // DMs go out once the request exists and can be linked to, while the review is still open.
    // Only a target with a `dm: true` group has DMs to send (and only those are looked for again).
    if (
      policy &&
      this.dmTargets.includes(task.target) &&
      task.status === 'pending-review' &&
      reviewTs &&
      !links.reviewDmsSent &&
      links.reviewPermalink !== null
    ) {
      const permalink = links.reviewPermalink || null;
      const allSent = await sendDms(
        this.db,
        this.gateway,
        lookups,
        {
          ledger: reviewLedger(task.id),
          recipients: dmRecipients(policy, task.author),
          render: (userId) =>
            renderReviewDm(
              task,
              policy.groups.filter((group) => group.dm && group.users.includes(userId)).map((group) => group.name),
              permalink,
            ),
          audit: (trx, userId, channel) => appendEvent(trx, { taskId: task.id, type: 'review.dm-sent', actor: null, data: { user: userId, channel } }),
        },
        attempt,
      );
      // Members of a user group Slack could not list now get theirs once it can: the DMs are not done yet.
      const membersUnknown = policy.groups.some((group) => group.dm && group.usergroup && unknownUsergroups.includes(group.usergroup));
      if (membersUnknown) attempt.retry = true;
      else if (allSent) {
        await this.db('tasks').where({ id: task.id }).update({ review_dms_sent: true });
        links.reviewDmsSent = true;
      }
    }
    return known;
  }
}

// ---------------------------------------------------------------- permalinks and DMs in Postgres

/** The task a rejected one was resubmitted as (its source key names it), with its card's permalink when known. */
async function resubmissionOf(db: Queryable, taskId: number): Promise<{ id: number; permalink: string | null } | null> {
  const row = await db('tasks')
    .where({ source_key: `resubmit:${taskId}` })
    .first('id', 'card_permalink');
  return row ? { id: Number(row.id), permalink: row.card_permalink || null } : null;
}

/** The rejected task a task with this source key resubmits, or null. */
function resubmittedFrom(sourceKey: string | null): number | null {
  const match = /^resubmit:(\d{1,15})$/.exec(sourceKey ?? '');
  return match ? Number(match[1]) : null;
}

/** Recent tasks with a permalink to fetch or review DMs to send (DMs only on `dmTargets`). */
async function tasksWithLinksMissing(db: Queryable, dmTargets: readonly string[], limit: number): Promise<number[]> {
  return db('tasks')
    .where((q) => {
      q.where((a) => a.whereNotNull('card_ts').whereNotNull('review_channel').whereNull('card_permalink')).orWhere((a) =>
        a.whereNotNull('review_ts').whereNull('review_permalink'),
      );
      if (dmTargets.length > 0) {
        q.orWhere((a) =>
          a
            .where({ status: 'pending-review', review_dms_sent: false })
            .whereNotNull('review_ts')
            .whereIn('target', [...dmTargets]),
        );
      }
    })
    .where('created_at', '>', db.raw('now() - make_interval(days => ?)', [LINKS_MAX_AGE_DAYS]))
    .orderBy('id', 'desc')
    .limit(limit)
    .pluck('id');
}

/** Claims the DMs about a task's review to these users that nobody has sent or is sending. Exported for tests. */
export function claimDms(db: Queryable, taskId: number, users: readonly string[]): Promise<string[]> {
  return claimLedgerDms(db, reviewLedger(taskId), users);
}

export function releaseDm(db: Queryable, taskId: number, userId: string): Promise<void> {
  return releaseLedgerDm(db, reviewLedger(taskId), userId);
}
