/**
 * The Slack surface of schedules: `/task schedule ...` answers, the schedule's review request
 * (posted in the target's review channel, redrawn after each decision), its Approve / Reject
 * buttons (Approve carries the content version it shows), the review DMs to members of
 * `dm: true` groups (once per reviewer and review round, whatever the number of processes), and
 * the poster of each firing's result.
 */
import type { AckFn, BlockButtonAction, RespondArguments, RespondFn, SlashCommand } from '@slack/bolt';
import type { ListenerTable } from './listenerTable.js';
import { dmRecipients } from '../domain/review.js';
import { SCHEDULE_HELP, scheduleRef, type Schedule, type ScheduleCommand } from '../domain/schedule.js';
import type { Logger } from '../log.js';
import type { ResolvedPolicy } from '../service/reviewers.js';
import type { ResultPoster } from '../service/scheduler.js';
import type { ScheduleService } from '../service/schedules.js';
import type { ScheduleQueries } from '../service/scheduleQueries.js';
import { reviewScriptKey } from '../store/schedules.js';
import { SlackRateLimited, SlackRefused, type SlackGateway } from './gateway.js';
import type { HomePublisher } from './home.js';
import { sendOneDm, type SlackLookups } from './messageSync.js';
import { postWholeScript } from './wholeScript.js';
import {
  readButtonValue,
  renderFiringResult,
  renderScheduleList,
  renderScheduleRejectModal,
  renderScheduleReviewRequest,
  renderScheduleReviewDm,
  renderScheduleShow,
  scheduleCreatedText,
  scheduleEditedText,
  SCHEDULE_ACTION,
  SCHEDULE_REASON_BLOCK,
  SCHEDULE_REASON_INPUT,
  SCHEDULE_REJECT_CALLBACK,
  shortVersion,
} from './render/schedule.js';
import { OUR_FAULT } from './answerWithin.js';

/** Schedules `/task schedule list` shows at most. */
const LIST_LIMIT = 50;

export interface ScheduleSlackDeps {
  schedules: ScheduleService;
  gateway: Pick<SlackGateway, 'postSlot' | 'postTurn' | 'returnPostSlot' | 'postMessage' | 'update' | 'uploadFile'>;
  log: Logger;
  now?: () => Date;
  /** Permalinks and DM channels; without them no review DMs are sent. */
  lookups?: SlackLookups | null;
  /**
   * Who may see which schedule: `list`, `show` and the changes answer a schedule the user may
   * not see as one that does not exist. Without it, every schedule is shown to everyone.
   */
  queries?: ScheduleQueries | null;
  /** App Home: a click there has no response_url, so its answer goes to the top of Home. */
  home?: Pick<HomePublisher, 'publish'> | null;
}

export class ScheduleSlack {
  /** Per schedule, the redraw under way: redraws of one schedule never overlap. */
  private readonly syncing = new Map<number, Promise<void>>();
  private readonly now: () => Date;
  private reconcileTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: ScheduleSlackDeps) {
    this.now = deps.now ?? (() => new Date());
    deps.schedules.onChange((id) => void this.sync(id));
  }

  /**
   * Answers `/task schedule ...` (already parsed): in the ack when the answer is ready within
   * 2 s, else the ack says so and the answer follows through response_url.
   */
  async command(
    parsed: ScheduleCommand,
    command: Pick<SlashCommand, 'user_id' | 'channel_id' | 'trigger_id'>,
    ack: AckFn<string | RespondArguments>,
    respond: RespondFn,
  ): Promise<void> {
    let answer: RespondArguments | null = null;
    const work = this.answer(parsed, command, (message) => {
      answer = message;
      return Promise.resolve();
    }).then(() => answer);
    const early = await Promise.race([work, new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 2000).unref())]);
    if (early !== 'late') {
      await ack(early ?? { response_type: 'ephemeral', text: `:x: ${OUR_FAULT}` });
      return;
    }
    await ack({ response_type: 'ephemeral', text: ':hourglass: Working on it…' });
    const late = await work;
    await respond({ response_type: 'ephemeral', replace_original: false, ...(late ?? { text: `:x: ${OUR_FAULT}` }) });
  }

  private async answer(
    parsed: ScheduleCommand,
    command: Pick<SlashCommand, 'user_id' | 'channel_id' | 'trigger_id'>,
    ack: (message: RespondArguments) => Promise<void>,
  ): Promise<void> {
    const { schedules, queries } = this.deps;
    const user = command.user_id;
    const viewer = queries?.viewer(user) ?? null;
    /** The schedule when it exists and the user may see it; null otherwise (the two look alike). */
    const visible = async (id: number): Promise<Schedule | null> => (queries && viewer ? queries.visible(id, viewer) : schedules.get(id));
    const notInChannel = (channel: string) =>
      ack({
        response_type: 'ephemeral',
        text: `:warning: You are not a member of <#${channel}> (or Slack cannot say so right now): its members would see this schedule. Pick a channel you are in, or leave \`--channel\` out for the target's own.`,
      });
    const noSuch = (id: number) =>
      ack({ response_type: 'ephemeral', text: `:warning: There is no schedule ${scheduleRef(id)}. \`/task schedule list\` shows those you may see.` });
    try {
      switch (parsed.action) {
        case 'help':
          await ack({ response_type: 'ephemeral', text: SCHEDULE_HELP });
          return;
        case 'list': {
          const { schedules: list, more } =
            queries && viewer
              ? await queries.page({ limit: LIST_LIMIT }, viewer).then((page) => ({ schedules: page.items, more: page.nextCursor !== null }))
              : await schedules.list(LIST_LIMIT);
          await ack({ response_type: 'ephemeral', ...renderScheduleList(list, more, this.now()) });
          return;
        }
        case 'show': {
          const schedule = await visible(parsed.id);
          if (!schedule) return void (await noSuch(parsed.id));
          await ack({
            response_type: 'ephemeral',
            ...renderScheduleShow(schedule, schedules.resultChannel(schedule), await schedules.firings(parsed.id), this.now()),
          });
          return;
        }
        case 'pause':
        case 'resume':
        case 'remove': {
          // Whoever may change a schedule may see it; anybody else learns nothing, not even that it exists.
          if (!(await visible(parsed.id))) return void (await noSuch(parsed.id));
          const result = await schedules[parsed.action](parsed.id, user);
          const done = { pause: 'Paused', resume: 'Resumed', remove: 'Removed' }[parsed.action];
          await ack({
            response_type: 'ephemeral',
            text: result.ok
              ? `:white_check_mark: ${done} ${scheduleRef(parsed.id)}.${parsed.action === 'resume' ? ' Firings missed while it was paused are not run.' : ''}`
              : `:warning: ${result.message}`,
          });
          return;
        }
        case 'add': {
          const { action: _action, ...rest } = parsed;
          if (rest.channel !== null && !(await this.mayNameChannel(rest.channel, rest.target, user))) return void (await notInChannel(rest.channel));
          const result = await schedules.add({ ...rest, author: user, originChannel: command.channel_id, sourceKey: `slack:${command.trigger_id}` });
          if (!result.ok) return void (await ack({ response_type: 'ephemeral', text: `:warning: ${result.message}` }));
          const policy = await schedules.resolvedPolicy(result.schedule.target);
          await ack({ response_type: 'ephemeral', text: scheduleCreatedText(result.schedule, result.created, policy, this.now()) });
          return;
        }
        case 'edit': {
          const { action: _action, id, ...changes } = parsed;
          const before = await visible(id);
          if (!before) return void (await noSuch(id));
          if (changes.channel !== null && !(await this.mayNameChannel(changes.channel, changes.target ?? before.target, user)))
            return void (await notInChannel(changes.channel));
          const result = await schedules.edit(id, user, changes);
          if (!result.ok) return void (await ack({ response_type: 'ephemeral', text: `:warning: ${result.message}` }));
          const policy = await schedules.resolvedPolicy(result.schedule.target);
          await ack({ response_type: 'ephemeral', text: scheduleEditedText(result.schedule, result.changed, result.reviewAgain, policy, this.now()) });
          return;
        }
      }
    } catch (error) {
      this.deps.log.error({ err: error, user }, 'a /task schedule command failed');
      await ack({ response_type: 'ephemeral', text: `:x: ${OUR_FAULT}` });
    }
  }

  /** A results channel lets its members see the schedule: only one the user is in (or the target's own). */
  private async mayNameChannel(channel: string, target: string, userId: string): Promise<boolean> {
    const { queries } = this.deps;
    return queries ? queries.mayNameChannel(channel, target, queries.viewer(userId)) : true;
  }

  /** Registers the review buttons and the reject modal (an optional reason). */
  register(table: ListenerTable): void {
    const { app } = table;
    const onButton = (
      actionId: string,
      handle: (id: number, version: string | null, userId: string, triggerId: string) => Promise<{ ok: boolean; message?: string }>,
    ) => {
      table.action<BlockButtonAction>(actionId, async ({ ack, body, action, respond }) => {
        await ack();
        const value = readButtonValue(action.value ?? '');
        if (!value) return;
        // Buttons on the Home tab have no response_url: answers go to the top of Home instead.
        const home = body.view?.type === 'home' ? this.deps.home : null;
        const tell = (text: string) =>
          home ? home.publish(body.user.id, `:warning: ${text}`) : respond({ response_type: 'ephemeral', replace_original: false, text });
        try {
          const result = await handle(value.id, value.version, body.user.id, body.trigger_id);
          if (!result.ok && result.message) await tell(result.message);
        } catch (error) {
          this.deps.log.error({ err: error, scheduleId: value.id, user: body.user.id }, 'a schedule button failed');
          await tell(OUR_FAULT);
        }
      });
    };
    // A button drawn before versions existed names none: it cannot say what its reviewer saw.
    onButton(SCHEDULE_ACTION.approve, (id, version, userId) => this.deps.schedules.approve(id, userId, version ?? 'unversioned'));
    onButton(SCHEDULE_ACTION.reject, async (id, _version, userId, triggerId) => {
      const allowed = await this.deps.schedules.checkMayReview(id, userId);
      if (!allowed.ok) return allowed;
      await app.client.views.open({ trigger_id: triggerId, view: renderScheduleRejectModal(id) });
      return { ok: true };
    });
    table.view(SCHEDULE_REJECT_CALLBACK, async ({ ack, body, view }) => {
      const id = Number((JSON.parse(view.private_metadata || '{}') as { scheduleId?: unknown }).scheduleId);
      const reason = view.state.values[SCHEDULE_REASON_BLOCK]?.[SCHEDULE_REASON_INPUT]?.value?.trim() || null;
      try {
        const result = await this.deps.schedules.reject(id, body.user.id, reason);
        if (!result.ok) return void (await ack({ response_action: 'errors', errors: { [SCHEDULE_REASON_BLOCK]: result.message } }));
        await ack();
      } catch (error) {
        this.deps.log.error({ err: error, scheduleId: id, user: body.user.id }, 'rejecting a schedule failed');
        await ack({ response_action: 'errors', errors: { [SCHEDULE_REASON_BLOCK]: OUR_FAULT } });
      }
    });
  }

  /**
   * Posts or redraws a schedule's review request from the database, then sees to its thread's
   * whole script and its DMs. `redraw: false` (the reconciler) posts a request never posted, but
   * leaves one already posted as it is: a retried upload or DM must not cost a redraw each time.
   */
  sync(id: number, options: { redraw?: boolean } = {}): Promise<void> {
    const previous = this.syncing.get(id) ?? Promise.resolve();
    const next = previous
      .then(() => this.draw(id, options.redraw ?? true))
      .catch((error) => this.deps.log.warn({ err: error, scheduleId: id }, 'drawing a schedule review request failed'));
    this.syncing.set(id, next);
    void next.finally(() => {
      if (this.syncing.get(id) === next) this.syncing.delete(id);
    });
    return next;
  }

  private async draw(id: number, redraw: boolean): Promise<void> {
    const { schedules, gateway } = this.deps;
    const schedule = await schedules.get(id);
    if (!schedule?.reviewChannel) return;
    const resolved = await schedules.resolve(schedule.target);
    if (!resolved) return;
    const message = renderScheduleReviewRequest(schedule, resolved.policy, await schedules.decisions(schedule), schedules.resultChannel(schedule), this.now());
    let reviewTs = schedule.reviewTs;
    if (reviewTs) {
      if (redraw) await gateway.update({ channel: schedule.reviewChannel, ts: reviewTs, text: message.text, blocks: message.blocks }, 'view');
    } else {
      // The channel's turn before the claim (see showMessage): a claim must not go stale in the queue.
      await gateway.postSlot(schedule.reviewChannel);
      if (!(await schedules.claimReviewPost(id))) {
        gateway.returnPostSlot(schedule.reviewChannel); // another process is posting it
        return;
      }
      try {
        reviewTs = (await gateway.postMessage({ channel: schedule.reviewChannel, text: message.text, blocks: message.blocks }, { slotTaken: true })).ts;
        await schedules.recordReviewPosted(id, reviewTs);
      } catch (error) {
        await schedules.releaseReviewPost(id);
        throw error;
      }
    }
    if (schedule.status !== 'pending-review') return;
    // Reviewers must be able to read everything they approve: a clipped script goes to the thread
    // whole, once per request and version (an edit that changes it posts the new one).
    await this.keepWholeScript(schedule, schedule.reviewChannel, reviewTs, message.scriptClipped);
    await this.sendReviewDms({ ...schedule, reviewTs }, resolved);
  }

  /** Once per request and version: the whole script into the thread when the request clips it (then, or never, noted as done). */
  private async keepWholeScript(schedule: Schedule, channel: string, reviewTs: string, clipped: boolean): Promise<void> {
    const { schedules, gateway } = this.deps;
    const key = reviewScriptKey(reviewTs, schedule.contentVersion);
    if (await schedules.reviewScriptPosted(schedule.id, key)) return;
    if (clipped) {
      await postWholeScript(gateway, {
        channel,
        threadTs: reviewTs,
        name: `schedule-${schedule.id}-script`,
        ref: scheduleRef(schedule.id),
        type: schedule.type,
        script: schedule.script,
        version: shortVersion(schedule.contentVersion),
      });
    }
    await schedules.recordReviewScriptPosted(schedule.id, key);
  }

  /** DMs each member of the `dm: true` groups (never the author) whom no process has DMed in this review round. */
  private async sendReviewDms(schedule: Schedule, resolved: ResolvedPolicy): Promise<void> {
    const { schedules, gateway, lookups } = this.deps;
    if (!lookups || !schedule.reviewChannel || !schedule.reviewTs) return;
    const { policy } = resolved;
    const recipients = dmRecipients(policy, schedule.author);
    if (recipients.length === 0) return;
    const toSend = await schedules.reviewDmsToSend(schedule, recipients);
    let failed: unknown = null;
    if (toSend.length > 0) {
      let permalink: string | null = null;
      try {
        permalink = await lookups.permalink(schedule.reviewChannel, schedule.reviewTs);
      } catch (error) {
        // Without a link the DM still says where the request is; a rate limit is worth waiting out.
        if (error instanceof SlackRateLimited) throw error;
        if (!(error instanceof SlackRefused)) this.deps.log.warn({ err: error, scheduleId: schedule.id }, 'no permalink for a schedule review request');
      }
      for (const userId of toSend) {
        const groups = policy.groups.filter((group) => group.dm && group.users.includes(userId)).map((group) => group.name);
        try {
          await sendOneDm(gateway, lookups, userId, {
            claim: async () => (await schedules.claimReviewDms(schedule, [userId])).length > 0,
            render: () => renderScheduleReviewDm(schedule, groups, permalink),
            record: (channel) => schedules.recordReviewDm(schedule, userId, channel),
            release: () => schedules.releaseReviewDm(schedule, userId),
          });
        } catch (error) {
          failed ??= error;
          this.deps.log.warn({ err: error, scheduleId: schedule.id, user: userId }, `could not DM ${userId} about the review of ${scheduleRef(schedule.id)}`);
        }
      }
    }
    if (failed) throw failed;
    // Members of a user group Slack could not list get theirs later: not done while any are unknown.
    const membersUnknown = policy.groups.some((group) => group.dm && group.usergroup && resolved.unknown.includes(group.usergroup));
    if (!membersUnknown) await schedules.finishReviewDms(schedule, recipients);
  }

  /** The scheduler's result poster, through the paced gateway. */
  poster(): ResultPoster {
    return async ({ channel, schedule, task, fireAt, tail, logUrl }) => {
      const message = renderFiringResult(schedule, task, fireAt, tail, logUrl);
      await this.deps.gateway.postMessage({ channel, text: message.text, blocks: message.blocks });
    };
  }

  /** Every `everyMs`, posts the review requests and DMs a failed call or a crash left unsent. */
  startReconcile(everyMs: number): void {
    if (this.reconcileTimer) return;
    this.reconcileTimer = setInterval(() => void this.reconcile(), everyMs);
    this.reconcileTimer.unref();
  }

  async reconcile(): Promise<void> {
    try {
      const { schedules } = this.deps;
      const ids = new Set([
        ...(await schedules.unpostedReviews()),
        ...(await schedules.wholeScriptsMissing()),
        ...(this.deps.lookups ? await schedules.reviewDmsMissing() : []),
      ]);
      await Promise.all([...ids].map((id) => this.sync(id, { redraw: false })));
    } catch (error) {
      this.deps.log.warn({ err: error }, 'looking for unsent schedule reviews failed');
    }
  }

  stop(): void {
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.reconcileTimer = null;
  }

  /** Waits for redraws under way (shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.syncing.values()]);
  }
}
