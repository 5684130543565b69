/**
 * Schedule messages: the review request (Approve / Reject with schedule-specific action ids),
 * the list and show answers, and each firing's result line in the schedule's channel.
 */
import type * as types from '@slack/types';
import type { ReviewDecision, ReviewPolicy } from '../../domain/review.js';
import { describeSchedule, nextFireTimes, scheduleRef, type Schedule, type ScheduleStatus } from '../../domain/schedule.js';
import { taskRef, type Task } from '../../domain/task.js';
import { formatDuration } from '../../domain/duration.js';
import { actions, button, context, fitBlocks, section, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, fitsInCodeBlock, mention, safeText, safeTextWithMentions, slackDate } from './format.js';
import { groupWhoText, reviewText } from './reviewLines.js';
import { REVIEW_SCRIPT_CHARS, safePermalink } from './reviewRequest.js';
import { wholeScriptInThread } from '../wholeScript.js';
import { hiddenCharactersWarning } from './approvalFacts.js';

export const SCHEDULE_ACTION = {
  approve: 'schedule_approve',
  reject: 'schedule_reject',
} as const;

export const SCHEDULE_STATUS_LABEL: Readonly<Record<ScheduleStatus, string>> = {
  'pending-review': ':hourglass_flowing_sand: waiting for review',
  active: ':large_green_circle: active',
  paused: ':double_vertical_bar: paused',
  rejected: ':no_entry: rejected',
  removed: ':wastebasket: removed',
};

/** An Approve button's value: the schedule and the content version it shows (a click approves that version only). */
export function approveValue(schedule: Pick<Schedule, 'id' | 'contentVersion'>): string {
  return `${schedule.id}:${schedule.contentVersion}`;
}

/** The schedule id and version a button carries (buttons drawn before versions existed carry the id alone). */
export function readButtonValue(value: string): { id: number; version: string | null } | null {
  const match = /^(\d{1,15})(?::([0-9a-f]{64}))?$/.exec(value);
  if (!match) return null;
  return { id: Number(match[1]), version: match[2] ?? null };
}

/** The first characters of a content version, as people compare them. */
export const shortVersion = (version: string): string => version.slice(0, 12);

export const SCHEDULE_REJECT_CALLBACK = 'schedule_reject_reason';
export const SCHEDULE_REASON_BLOCK = 'reason';
export const SCHEDULE_REASON_INPUT = 'reason_input';

/** Reject asks for an optional reason, as for a task. */
export function renderScheduleRejectModal(scheduleId: number): types.ModalView {
  const ref = scheduleRef(scheduleId);
  return {
    type: 'modal',
    callback_id: SCHEDULE_REJECT_CALLBACK,
    private_metadata: JSON.stringify({ scheduleId }),
    title: { type: 'plain_text', text: `Reject schedule ${ref}` },
    submit: { type: 'plain_text', text: 'Reject' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(`Rejecting ${ref} means it will never fire. The author sees your reason.`),
      {
        type: 'input',
        block_id: SCHEDULE_REASON_BLOCK,
        optional: true,
        label: { type: 'plain_text', text: 'Reason' },
        element: {
          type: 'plain_text_input',
          action_id: SCHEDULE_REASON_INPUT,
          multiline: true,
          max_length: 1000,
          placeholder: { type: 'plain_text', text: 'What should change before this can run?' },
        },
      },
    ],
  };
}

const safeChannel = (id: string | null): string | null =>
  id && /^[CGD][A-Z0-9]+$/.test(id) ? `<#${id}>` : id && /^#[a-z0-9][a-z0-9._-]{0,79}$/.test(id) ? id : null;

function optionsLine(schedule: Schedule, resultChannel: string | null): string {
  const where = safeChannel(resultChannel);
  return [
    `results ${schedule.notify === 'failure' ? 'on failure only' : 'every run'}${where ? ` in ${where}` : ''}`,
    `overlap: ${schedule.overlap}`,
    `catch-up: ${schedule.catchUp}`,
    `type: ${schedule.type}`,
  ].join(' · ');
}

export interface ScheduleReviewRequestMessage extends SlackMessage {
  /** The script could not be shown whole: the caller puts it in the request's thread. */
  scriptClipped: boolean;
}

export function renderScheduleReviewRequest(
  schedule: Schedule,
  policy: ReviewPolicy,
  decisions: readonly ReviewDecision[],
  resultChannel: string | null,
  now: Date,
): ScheduleReviewRequestMessage {
  return fitBlocks((scale) => {
    const ref = scheduleRef(schedule.id);
    const budget = (chars: number) => Math.max(40, Math.round(chars * scale));
    const scriptChars = budget(REVIEW_SCRIPT_CHARS);
    const scriptClipped = !fitsInCodeBlock(schedule.script, scriptChars);
    const next = schedule.status === 'pending-review' || schedule.status === 'active' ? nextFireTimes(schedule.cron, schedule.tz, now, 3) : [];
    const blocks: Block[] = [
      section(
        `:calendar: *Schedule review requested*: ${mention(schedule.author)} wants to run *${ref}* on \`${safeText(schedule.target, 80)}\` on ${safeText(describeSchedule(schedule), 200)} · *${SCHEDULE_STATUS_LABEL[schedule.status]}*`,
      ),
    ];
    const reason = statusReasonLine(schedule);
    if (reason) blocks.push(section(clip(reason, budget(1500))));
    blocks.push(
      section(`*Why*\n${schedule.message ? safeText(schedule.message, budget(2800)) : '_no message given_'}`),
      section(codeBlock(schedule.script, scriptChars)),
    );
    // Reviewers must be able to read everything they approve: the whole script goes to the thread.
    if (scriptClipped) blocks.push(context(wholeScriptInThread(shortVersion(schedule.contentVersion))));
    const hidden = hiddenCharactersWarning(`${schedule.script}\n${schedule.message ?? ''}`, 'schedule');
    if (hidden) blocks.push(section(hidden));
    blocks.push(
      context(
        clip(
          `${optionsLine(schedule, resultChannel)}${next.length > 0 ? ` · next: ${next.map(slackDate).join(', ')}` : ''} · version \`${shortVersion(schedule.contentVersion)}\``,
          2000,
        ),
      ),
      context(
        clip(
          `Once approved, every firing runs without a new review, as long as the approval still holds under the target's review groups at that time. Needs approval from ${policy.groups.map((g) => `*${safeText(g.name, 60)}* (${g.approvals} of ${groupWhoText(g, 10)})`).join('; ')}. Authors cannot approve their own schedules.`,
          budget(2000),
        ),
      ),
      section(clip(reviewText(policy, schedule.author, decisions, scale), 3000)),
    );
    if (schedule.status === 'pending-review') {
      blocks.push(
        actions(`schedule_review_${schedule.id}_${schedule.reviewRound}`, [
          button(SCHEDULE_ACTION.approve, 'Approve', approveValue(schedule), 'primary'),
          button(SCHEDULE_ACTION.reject, 'Reject', approveValue(schedule), 'danger'),
        ]),
      );
    }
    return { text: `Schedule review requested: ${ref} on ${schedule.target} by ${mention(schedule.author)}`, blocks, scriptClipped };
  });
}

/** Why the system put the schedule where it is (a review asked again, an expired review), or null. */
function statusReasonLine(schedule: Schedule): string | null {
  if (!schedule.statusReason) return null;
  if (schedule.status === 'pending-review')
    return `:warning: *Reviewed again*: its approval no longer holds: ${safeTextWithMentions(schedule.statusReason, 1400)}. It fires nothing until approved.`;
  if (schedule.status === 'rejected') return `:hourglass: ${safeText(schedule.statusReason, 500)}`;
  return null;
}

/** The DM to a member of a `dm: true` group when a schedule's review is asked for. */
export function renderScheduleReviewDm(schedule: Schedule, groups: readonly string[], reviewPermalink: string | null): SlackMessage {
  const ref = scheduleRef(schedule.id);
  const as = groups.length > 0 ? ` as a member of ${groups.map((name) => `*${safeText(name, 60)}*`).join(', ')}` : '';
  const link = safePermalink(reviewPermalink);
  const where = schedule.reviewChannel && /^[CGD][A-Z0-9]+$/.test(schedule.reviewChannel) ? ` in <#${schedule.reviewChannel}>` : '';
  const blocks: Block[] = [
    section(
      `:calendar: ${mention(schedule.author)} asks for your review of schedule ${ref} on \`${safeText(schedule.target, 80)}\` (${safeText(describeSchedule(schedule), 200)})${as}.`,
    ),
  ];
  const reason = statusReasonLine(schedule);
  if (reason) blocks.push(section(clip(reason, 1500)));
  blocks.push(
    section(`*Why*\n${schedule.message ? safeText(schedule.message, 2800) : '_no message given_'}`),
    section(
      link
        ? `<${link}|Open the review request>${where} to read the script and approve or reject it.`
        : `The review request with the script and the buttons is${where || ' in the review channel'}.`,
    ),
  );
  return { text: `Schedule review requested: ${ref} on ${schedule.target} by ${mention(schedule.author)}`, blocks };
}

/** What a one-line summary of a schedule shows. */
export type ScheduleLineFields = Pick<Schedule, 'id' | 'status' | 'target' | 'cron' | 'tz' | 'author' | 'message'>;

/** `*S3* `web-prod` `0 3 * * *` (UTC) · active · by @alice · next … · why`: lists and App Home. */
export function scheduleLine(s: ScheduleLineFields, now: Date, options: { author?: boolean; message?: boolean } = {}): string {
  const next = s.status === 'active' ? nextFireTimes(s.cron, s.tz, now, 1)[0] : undefined;
  const why = options.message !== false && s.message ? ` · ${safeText(s.message, 80)}` : '';
  return `*${scheduleRef(s.id)}* \`${safeText(s.target, 40)}\` ${safeText(describeSchedule(s), 120)} · ${SCHEDULE_STATUS_LABEL[s.status]}${options.author !== false ? ` · by ${mention(s.author)}` : ''}${next ? ` · next ${slackDate(next)}` : ''}${why}`;
}

export function renderScheduleList(schedules: Schedule[], more: boolean, now: Date): SlackMessage {
  if (schedules.length === 0) {
    const none = more ? 'None you may see among the most recent schedules.' : 'No schedules you may see yet. `/task schedule help` says how to add one.';
    return { text: none, blocks: [section(none)] };
  }
  const lines = schedules.slice(0, 40).map((s) => scheduleLine(s, now));
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i += 8) blocks.push(section(clip(lines.slice(i, i + 8).join('\n'), 3000)));
  if (more) blocks.push(context('Older schedules are not shown.'));
  return { text: `${schedules.length} schedule(s)`, blocks };
}

export function renderScheduleShow(
  schedule: Schedule,
  resultChannel: string | null,
  firings: Array<{ fireAt: Date; outcome: string; taskId: number | null; status: string | null }>,
  now: Date,
): SlackMessage {
  const ref = scheduleRef(schedule.id);
  const next = schedule.status === 'active' ? nextFireTimes(schedule.cron, schedule.tz, now, 3) : [];
  const history = firings.map((f) => `${slackDate(f.fireAt)}: ${f.outcome}${f.taskId !== null ? ` ${taskRef(f.taskId)} (${f.status ?? '?'})` : ''}`);
  const blocks: Block[] = [
    section(
      `*${ref}* on \`${safeText(schedule.target, 80)}\` ${safeText(describeSchedule(schedule), 200)} · ${SCHEDULE_STATUS_LABEL[schedule.status]} · by ${mention(schedule.author)}`,
    ),
  ];
  const reason = statusReasonLine(schedule);
  if (reason) blocks.push(section(clip(reason, 1500)));
  blocks.push(
    section(`*Why*\n${schedule.message ? safeText(schedule.message, 2800) : '_no message given_'}`),
    section(codeBlock(schedule.script, 2900)),
    context(
      clip(
        `${optionsLine(schedule, resultChannel)}${next.length ? ` · next: ${next.map(slackDate).join(', ')}` : ''} · version \`${shortVersion(schedule.contentVersion)}\``,
        2000,
      ),
    ),
  );
  if (history.length) blocks.push(section(clip(`*Last firings*\n${history.join('\n')}`, 3000)));
  return { text: `${ref} on ${schedule.target}`, blocks };
}

/** Last `count` non-empty lines of a log, each cut to 300 characters. */
export function lastLines(log: string, count: number): string[] {
  return log
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-count)
    .map((line) => (line.length > 300 ? `${line.slice(0, 300)}…` : line));
}

/**
 * A firing's result: one compact line on success; on failure the exit code (or why it failed),
 * the last lines of output and a link to the whole log.
 */
export function renderFiringResult(schedule: Schedule, task: Task, fireAt: Date, tail: string[], logUrl: string | null): SlackMessage {
  const ref = scheduleRef(schedule.id);
  const duration = task.result.durationMs !== null ? ` in ${formatDuration(task.result.durationMs)}` : '';
  const link = logUrl && /^https?:\/\/[^\s<>|]+$/.test(logUrl) ? `<${logUrl}|${taskRef(task.id)}>` : taskRef(task.id);
  const what = `${ref} \`${safeText(task.target, 60)}\`${schedule.message ? ` (${safeText(schedule.message, 120)})` : ''}`;
  if (task.status === 'success') {
    const text = `:white_check_mark: ${what} fired ${slackDate(fireAt)}: success${duration} · ${link}`;
    return { text: `${ref} succeeded (${taskRef(task.id)})`, blocks: [context(clip(text, 2900))] };
  }
  const why =
    task.status === 'killed'
      ? 'killed'
      : task.status === 'cancelled'
        ? 'cancelled'
        : task.result.exitCode !== null
          ? `exit code ${task.result.exitCode}`
          : task.result.signal
            ? `signal ${safeText(task.result.signal, 20)}`
            : 'failed';
  const blocks: Block[] = [section(clip(`:red_circle: ${what} fired ${slackDate(fireAt)}: *${why}*${duration} · ${link}`, 2900))];
  if (task.result.failureMessage) blocks.push(context(safeText(task.result.failureMessage, 500)));
  if (tail.length > 0) blocks.push(section(codeBlock(tail.join('\n'), 2500)));
  if (logUrl) blocks.push(context(`<${logUrl}|Full log of ${taskRef(task.id)}>`));
  return { text: `${ref} failed: ${why} (${taskRef(task.id)})`, blocks };
}

/** The ephemeral answer after `/task schedule add`. */
export function scheduleCreatedText(schedule: Schedule, created: boolean, policy: ReviewPolicy | null, now: Date): string {
  const ref = scheduleRef(schedule.id);
  if (!created) return `:information_source: This command already created *${ref}* (now ${schedule.status}); nothing new was made.`;
  const next = nextFireTimes(schedule.cron, schedule.tz, now, 1)[0];
  const when = next ? ` Next firing: ${slackDate(next)}.` : '';
  if (schedule.status === 'pending-review' && policy) {
    const where = safeChannel(policy.channel) ?? 'the review channel';
    return `:white_check_mark: Created schedule *${ref}* on \`${schedule.target}\` (${describeSchedule(schedule)}). It waits for review by ${policy.groups.map((g) => `*${safeText(g.name, 60)}*`).join(', ')} in ${where}; once approved it fires without further reviews.${when}`;
  }
  if (schedule.runbook) {
    return `:white_check_mark: Created schedule *${ref}*: it starts the runbook \`${safeText(schedule.runbook, 64)}\` (${describeSchedule(schedule)}); each firing is a run, reviewed where the runbook's targets need it.${when}`;
  }
  return `:white_check_mark: Created schedule *${ref}* on \`${schedule.target}\` (${describeSchedule(schedule)}); this target has no review, so it is active.${when}`;
}

/** The ephemeral answer after `/task schedule edit`. */
export function scheduleEditedText(schedule: Schedule, changed: readonly string[], reviewAgain: boolean, policy: ReviewPolicy | null, now: Date): string {
  const ref = scheduleRef(schedule.id);
  const names: Record<string, string> = { channelId: 'channel', catchUp: 'catch-up', tz: 'time zone' };
  const what = changed.map((field) => names[field] ?? field).join(', ');
  if (reviewAgain && policy) {
    const where = safeChannel(policy.channel) ?? 'the review channel';
    return `:white_check_mark: Changed *${ref}* (${what}). What it runs changed, so it waits for a new review by ${policy.groups.map((g) => `*${safeText(g.name, 60)}*`).join(', ')} in ${where} and fires nothing until approved; earlier approvals no longer count.`;
  }
  const next = schedule.status === 'active' ? nextFireTimes(schedule.cron, schedule.tz, now, 1)[0] : undefined;
  return `:white_check_mark: Changed *${ref}* (${what}); now ${safeText(describeSchedule(schedule), 200)}, ${SCHEDULE_STATUS_LABEL[schedule.status]}.${next ? ` Next firing: ${slackDate(next)}.` : ''}`;
}
