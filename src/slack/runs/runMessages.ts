/**
 * Keeps a run's Slack messages in step with Postgres, through the shared machinery of
 * src/slack/messageSync.ts (as TaskMessages does for tasks): redraws serialised per run,
 * collapsed and retried; posts claimed in Postgres; each message recording the run's
 * view_version it shows; a reconciler for messages behind (every replica hears every change,
 * so a message already showing the version is not drawn again).
 *
 * A run's messages: its card (in its channel), its review request (in the combined policy's
 * channel, with every step in full, the rest uploaded to the thread), each approval step's
 * request (the step's channel, else the review channel, else the card's), each input step's
 * prompt and each http step's log (in the card's thread). Then, with Slack lookups: the
 * permalinks the messages and DMs link to, the review DMs of `dm: true` groups, and the DMs of
 * approval steps with `dm: true` — each DM claimed first, so it goes out once.
 */
import { shortHash } from '../../domain/contentVersion.js';
import { dmRecipients, type ReviewPolicy } from '../../domain/review.js';
import { runSubject, type Run, type RunStep } from '../../domain/run.js';
import type { PlannedStep } from '../../domain/runbook/index.js';
import type { RunService, RunView } from '../../service/runs.js';
import type { Db, Queryable } from '../../store/db.js';
import { appendEvent } from '../../store/events.js';
import {
  markReviewScriptPosted,
  recordMessageRendered,
  rowsWithMessagesBehind,
  runsWithStepMessagesBehind,
  type MessageSlot,
} from '../../store/slackMessages.js';
import type { SlackGateway } from '../gateway.js';
import type { TaskMessagesOptions } from '../taskMessages.js';
import {
  fetchPermalink,
  MessageViews,
  RedrawAttempt,
  sendDms,
  showMessage,
  turnKey,
  type MessagesLogger,
  type Redraw,
  type SlackLookups,
} from '../messageSync.js';
import { safePermalink } from '../render/reviewRequest.js';
import { renderRunCard } from '../render/runCard.js';
import { planText, renderRunReviewDm, renderRunReviewRequest } from '../render/runReviewRequest.js';
import { approvalDmRecipients, renderApprovalDm, renderApprovalRequest, renderHttpLog, renderInputPrompt } from '../render/runStepRequest.js';
import { postWholeScript } from '../wholeScript.js';

export interface RunSyncReport {
  /** Slack's error code when the card could not be posted or updated. */
  cardError: string | null;
  reviewError: string | null;
}

/** As a task's views: retries, the reconciler's pace, the log page, user groups, Slack lookups. */
export type RunMessagesOptions = TaskMessagesOptions;

/** Permalinks and DMs are caught up for runs this recent; older ones are left as they are. */
const LINKS_MAX_AGE_DAYS = 1;

interface RunLinks {
  /** null: not fetched yet; '': Slack refused to give one. */
  cardPermalink: string | null;
  reviewPermalink: string | null;
  reviewDmsSent: boolean;
}

export class RunMessages extends MessageViews<RunSyncReport> {
  constructor(
    private readonly db: Db,
    private readonly runs: RunService,
    private readonly gateway: SlackGateway,
    private readonly log: MessagesLogger,
    private readonly options: RunMessagesOptions,
  ) {
    super('run', log, options);
  }

  protected async candidates(): Promise<number[]> {
    const [behind, steps, unlinked] = await Promise.all([
      rowsWithMessagesBehind(this.db, 'runs', 100),
      runsWithStepMessagesBehind(this.db, 100),
      this.options.lookups ? runsWithLinksMissing(this.db, 100) : Promise.resolve([]),
    ]);
    return [...behind, ...steps, ...unlinked];
  }

  protected async redraw(runId: number): Promise<Redraw<RunSyncReport>> {
    const report: RunSyncReport = { cardError: null, reviewError: null };
    const attempt = new RedrawAttempt(this.log, { runId }, `run ${runId}`);
    const done = (): Redraw<RunSyncReport> => ({ report, attempt, failed: report.cardError !== null || report.reviewError !== null });
    if (this.queue.stopped) return done();
    const view = await this.runs.view(runId);
    if (!view) return done();
    const { run } = view;
    const resolved = await this.runs.resolvePolicy(run);
    const policy = resolved?.policy ?? null;
    const links = await readLinks(this.db, runId);
    const slot = (kind: 'card' | 'review'): MessageSlot => ({ table: 'runs', id: runId, kind });
    let cardTs = run.cardTs;
    let reviewTs = run.reviewTs;
    // A post whose channel's turn has not come ends this redraw's part for it (showMessage's
    // `waiting`): the run is drawn again when the turn comes, as a task is.
    let waiting = false;

    const showCard = async () => {
      if (!run.channelId) return;
      const card = () => renderRunCard(view, { policy, logUrl: this.options.logUrl ?? null, reviewPermalink: safePermalink(links.reviewPermalink) });
      try {
        const shown = await showMessage(this.db, this.gateway, slot('card'), { channel: run.channelId, ts: run.cardTs }, card, run.viewVersion, {
          skipIfShown: true,
        });
        if (shown.outcome === 'waiting') {
          waiting = true;
          return attempt.waitForTurn(shown.waitMs);
        }
        attempt.redo ||= shown.outcome === 'stale';
        cardTs = shown.ts;
      } catch (error) {
        report.cardError = attempt.failed(error, 'card');
      }
    };
    const showReview = async () => {
      if (!run.reviewChannel || !policy) return;
      const draw = () => renderRunReviewRequest(view, policy, { cardPermalink: links.cardPermalink || null });
      // Known once drawn; a message this process did not draw (shown already at this version) is drawn to learn it.
      let planClipped: boolean | null = null;
      const request = () => {
        const { planClipped: clipped, ...message } = draw();
        planClipped = clipped;
        return message;
      };
      try {
        const shown = await showMessage(this.db, this.gateway, slot('review'), { channel: run.reviewChannel, ts: run.reviewTs }, request, run.viewVersion, {
          skipIfShown: true,
        });
        if (shown.outcome === 'waiting') {
          waiting = true;
          return attempt.waitForTurn(shown.waitMs);
        }
        attempt.redo ||= shown.outcome === 'stale';
        reviewTs = shown.ts;
        // Reviewers must be able to read everything they approve: what was cut goes to the thread whole, named by version.
        if (!run.reviewScriptPosted && shown.ts && (planClipped ?? draw().planClipped)) {
          await postWholeScript(this.gateway, {
            channel: run.reviewChannel,
            threadTs: shown.ts,
            name: `run-${runId}-steps`,
            ref: `run ${runId}`,
            type: 'plan',
            script: planText(run),
            version: shortHash(run.contentVersion),
          });
          await markReviewScriptPosted(this.db, 'runs', runId, run.contentVersion);
        }
      } catch (error) {
        report.reviewError = attempt.failed(error, 'review request');
      }
    };
    await Promise.all([showCard(), showReview()]);
    // The steps' messages: the prompts and logs hang off the card's thread, so they come after it.
    for (const step of view.steps) await this.showStep(view, step, cardTs, links, attempt);

    const lookups = this.options.lookups;
    // Links and DMs once the card and the review request have both had their turn.
    if (lookups && !waiting) await this.linkAndNotify(view, policy, resolved?.unknown ?? [], links, lookups, cardTs, reviewTs, attempt);
    return done();
  }

  /** An approval step's request, an input step's prompt, an http step's log: once the step has started. */
  private async showStep(view: RunView, step: RunStep, cardTs: string | null, links: RunLinks, attempt: RedrawAttempt): Promise<void> {
    const { run } = view;
    if (step.startedAt === null) return;
    const planned = this.runs.plannedStep(run, step.stepId);
    if (!planned) return;
    const slot: MessageSlot = { table: 'run_steps', id: step.id, kind: 'request' };
    try {
      if (planned.kind === 'approval') {
        const channel = step.messageChannel ?? planned.approval.channel ?? run.reviewChannel ?? run.channelId;
        // Nowhere to ask (a run started outside Slack on unreviewed targets): the API and App Home remain.
        if (!channel) return void (await recordMessageRendered(this.db, slot, run.viewVersion));
        const message = () => renderApprovalRequest(view, step, planned, safePermalink(links.cardPermalink));
        const shown = await showMessage(this.db, this.gateway, slot, { channel, ts: step.messageTs }, message, run.viewVersion, {
          skipIfShown: true,
          recordChannel: true,
        });
        if (shown.outcome === 'waiting') return attempt.waitForTurn(shown.waitMs);
        attempt.redo ||= shown.outcome === 'stale';
      } else if (planned.kind === 'input') {
        if (!run.channelId) return void (await recordMessageRendered(this.db, slot, run.viewVersion));
        if (!cardTs) return; // the card first: the prompt goes in its thread (the reconciler comes back)
        const shown = await showMessage(
          this.db,
          this.gateway,
          slot,
          { channel: run.channelId, ts: step.messageTs },
          () => renderInputPrompt(view, step, planned),
          run.viewVersion,
          { skipIfShown: true, threadTs: cardTs, recordChannel: true },
        );
        if (shown.outcome === 'waiting') return attempt.waitForTurn(shown.waitMs);
        attempt.redo ||= shown.outcome === 'stale';
      } else if (planned.kind === 'http' && step.finishedAt !== null && step.output !== null && run.channelId && cardTs) {
        const posted = (await this.db('run_steps').where({ id: step.id }).first('log_ts')) as { log_ts: string | null } | undefined;
        const logSlot: MessageSlot = { table: 'run_steps', id: step.id, kind: 'log' };
        // Posted by another process: a turn this one was promised for it goes to the next post.
        if (posted?.log_ts) this.gateway.forgetTurn(run.channelId, turnKey(logSlot));
        else if (posted) {
          const shown = await showMessage(this.db, this.gateway, logSlot, { channel: run.channelId, ts: null }, () => renderHttpLog(step), run.viewVersion, {
            threadTs: cardTs,
          });
          if (shown.outcome === 'waiting') attempt.waitForTurn(shown.waitMs);
        }
      }
    } catch (error) {
      attempt.failed(error, `message of step ${step.stepId}`);
      attempt.retry = true;
    }
  }

  /**
   * After the messages are posted: the permalinks not known yet (the messages are redrawn to show
   * them), the review DMs of `dm: true` groups, the approval steps' DMs.
   */
  private async linkAndNotify(
    view: RunView,
    policy: ReviewPolicy | null,
    unknownUsergroups: readonly string[],
    links: RunLinks,
    lookups: SlackLookups,
    cardTs: string | null,
    reviewTs: string | null,
    attempt: RedrawAttempt,
  ): Promise<void> {
    const { run } = view;
    let linked = false;
    const fetchLink = async (kind: 'card' | 'review', channel: string, ts: string) => {
      const fetched = await fetchPermalink(this.db, lookups, { table: 'runs', id: run.id, kind }, channel, ts, attempt);
      linked ||= fetched.stored;
      if (fetched.url === null) return;
      if (kind === 'card') links.cardPermalink = fetched.url;
      else links.reviewPermalink = fetched.url;
    };
    const wanted: Promise<void>[] = [];
    // The card's link is shown on the review request and the approval requests.
    if (links.cardPermalink === null && cardTs && run.channelId && run.reviewChannel) wanted.push(fetchLink('card', run.channelId, cardTs));
    if (links.reviewPermalink === null && reviewTs && run.reviewChannel) wanted.push(fetchLink('review', run.reviewChannel, reviewTs));
    await Promise.all(wanted);
    if (linked) {
      await this.db('runs').where({ id: run.id }).increment('view_version', 1);
      attempt.redo = true;
    }

    if (!links.reviewDmsSent && (run.status !== 'pending-review' || !policy?.groups.some((g) => g.dm))) {
      // Nothing to send (no dm group, or the review is over): done, so the reconciler stops asking.
      if (run.status !== 'created') await this.db('runs').where({ id: run.id }).update({ review_dms_sent: true });
    } else if (policy && !links.reviewDmsSent && reviewTs && links.reviewPermalink !== null) {
      const permalink = links.reviewPermalink || null;
      const allSent = await sendDms(
        this.db,
        this.gateway,
        lookups,
        {
          ledger: { table: 'run_dms', key: { run_id: run.id, about: 'review' } },
          recipients: dmRecipients(policy, run.creator),
          render: (userId) =>
            renderRunReviewDm(
              run,
              policy.groups.filter((g) => g.dm && g.users.includes(userId)).map((g) => g.name),
              permalink,
            ),
          audit: (trx, userId, channel) =>
            appendEvent(trx, { taskId: null, subject: runSubject(run.id), type: 'run.review.dm-sent', actor: null, data: { user: userId, channel } }),
        },
        attempt,
      );
      // Members of a user group Slack could not list now get theirs once it can: the DMs are not done yet.
      const membersUnknown = policy.groups.some((group) => group.dm && group.usergroup && unknownUsergroups.includes(group.usergroup));
      if (membersUnknown) attempt.retry = true;
      else if (allSent) await this.db('runs').where({ id: run.id }).update({ review_dms_sent: true });
    }

    for (const step of view.steps) await this.approvalDms(run, step, lookups, attempt);
  }

  private async approvalDms(run: Run, step: RunStep, lookups: SlackLookups, attempt: RedrawAttempt): Promise<void> {
    if (step.kind !== 'approval' || step.startedAt === null) return;
    // Read again: the request may have been posted by this very redraw.
    const row = (await this.db('run_steps').where({ id: step.id }).first('message_dms_sent', 'message_permalink', 'message_ts', 'message_channel')) as
      | { message_dms_sent: boolean; message_permalink: string | null; message_ts: string | null; message_channel: string | null }
      | undefined;
    if (!row || row.message_dms_sent) return;
    const planned = this.runs.plannedStep(run, step.stepId) as Extract<PlannedStep, { kind: 'approval' }> | null;
    if (!planned?.approval.dm || step.phase !== 'paused') {
      await this.db('run_steps').where({ id: step.id }).update({ message_dms_sent: true });
      return;
    }
    if (!row.message_ts || !row.message_channel) return;
    let permalink = row.message_permalink;
    if (permalink === null)
      permalink = (await fetchPermalink(this.db, lookups, { table: 'run_steps', id: step.id, kind: 'request' }, row.message_channel, row.message_ts, attempt))
        .url;
    if (permalink === null) return;
    const members = planned.approval.usergroup && this.options.reviewers ? await this.options.reviewers.members(planned.approval.usergroup) : [];
    // Members Slack could not list now get theirs once it can: try again later.
    if (members === null) attempt.retry = true;
    // Capped (MAX_STEP_DMS): one step cannot make the bot DM a whole workspace; the request says so.
    const { recipients } = approvalDmRecipients([...planned.approval.users, ...(members ?? [])], run.creator);
    const allSent = await sendDms(
      this.db,
      this.gateway,
      lookups,
      {
        ledger: { table: 'run_dms', key: { run_id: run.id, about: step.stepId } },
        recipients,
        render: () => renderApprovalDm(run, step, permalink || null),
        audit: (trx, userId, channel) =>
          appendEvent(trx, {
            taskId: null,
            subject: runSubject(run.id),
            type: 'run.step.dm-sent',
            actor: null,
            data: { step: step.stepId, user: userId, channel },
          }),
      },
      attempt,
    );
    if (allSent && members !== null) await this.db('run_steps').where({ id: step.id }).update({ message_dms_sent: true });
  }
}

async function readLinks(db: Queryable, runId: number): Promise<RunLinks> {
  const row = (await db('runs').where({ id: runId }).first('card_permalink', 'review_permalink', 'review_dms_sent')) as
    | { card_permalink: string | null; review_permalink: string | null; review_dms_sent: boolean }
    | undefined;
  return { cardPermalink: row?.card_permalink ?? null, reviewPermalink: row?.review_permalink ?? null, reviewDmsSent: row?.review_dms_sent === true };
}

/** Recent runs with a permalink to fetch or DMs to send. */
async function runsWithLinksMissing(db: Queryable, limit: number): Promise<number[]> {
  const recent = db.raw('now() - make_interval(days => ?)', [LINKS_MAX_AGE_DAYS]);
  const runs: number[] = await db('runs')
    .where((q) =>
      q
        .where((a) => a.whereNotNull('card_ts').whereNotNull('review_channel').whereNull('card_permalink'))
        .orWhere((a) => a.whereNotNull('review_ts').whereNull('review_permalink'))
        .orWhere((a) => a.whereNotNull('review_ts').where({ review_dms_sent: false })),
    )
    .where('created_at', '>', recent)
    .orderBy('id', 'desc')
    .limit(limit)
    .pluck('id');
  const steps = (await db('run_steps as s')
    .join('runs as r', 'r.id', 's.run_id')
    .where({ 's.kind': 'approval', 's.message_dms_sent': false })
    .whereNotNull('s.message_ts')
    .where('r.created_at', '>', recent)
    .distinct('s.run_id')
    .orderBy('s.run_id', 'desc')
    .limit(limit)) as Array<{ run_id: number }>;
  return [...runs, ...steps.map((row) => Number(row.run_id))];
}
