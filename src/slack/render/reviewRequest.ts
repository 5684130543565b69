/**
 * The review request, posted in the target's review channel: who asks, why, the script, each
 * group's progress, and Approve / Reject while the task waits for review. Once decided, the
 * buttons go and the outcome stays. When the script cannot be shown whole, the request says so
 * and `scriptClipped` tells the caller to put the whole script in the request's thread.
 */
import { reviewExpiresAt, type ReviewPolicy } from '../../domain/review.js';
import { taskRef, type Task, type TaskView } from '../../domain/task.js';
import { ACTION, actions, button, context, fitBlocks, section, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, fitsInCodeBlock, mention, safeText, safeTextWithMentions, slackDate, STATUS_LABEL } from './format.js';
import { groupWhoText, reviewText } from './reviewLines.js';
import { argumentLines } from './taskCard.js';
import { shortHash } from '../../domain/contentVersion.js';
import { approvalFacts, hiddenCharactersWarning } from './approvalFacts.js';
import { wholeScriptInThread } from '../wholeScript.js';

export const REVIEW_SCRIPT_CHARS = 2900;

export interface ReviewRequestMessage extends SlackMessage {
  scriptClipped: boolean;
}

export interface ReviewRequestContext {
  /** A permalink to the task's card, once known: the request says where the task was asked for. */
  cardPermalink?: string | null;
}

/** `policy` should be the resolved one (user group members in `users`), so progress counts them. */
export function renderReviewRequest(view: TaskView, policy: ReviewPolicy, ctx: ReviewRequestContext = {}): ReviewRequestMessage {
  return fitBlocks((scale) => renderAtScale(view, policy, ctx, scale));
}

/** A Slack permalink fit to put in a `<url|text>` link, or null. */
export function safePermalink(url: string | null | undefined): string | null {
  return url && /^https:\/\/[^\s<>|]+$/.test(url) ? url : null;
}

function renderAtScale(view: TaskView, policy: ReviewPolicy, ctx: ReviewRequestContext, scale: number): ReviewRequestMessage {
  const { task, decisions } = view;
  const ref = taskRef(task.id);
  const budget = (chars: number) => Math.max(40, Math.round(chars * scale));
  const scriptChars = budget(REVIEW_SCRIPT_CHARS);
  const scriptClipped = !fitsInCodeBlock(task.script, scriptChars);
  const blocks: Block[] = [
    section(`:mag: *Review requested*: ${mention(task.author)} wants to run *${ref}* on \`${safeText(task.target, 80)}\` · *${STATUS_LABEL[task.status]}*`),
    section(`*Why*\n${task.message ? safeText(task.message, budget(2800)) : '_no message given_'}`),
    section(codeBlock(task.script, scriptChars)),
  ];
  if (scriptClipped) blocks.push(context(wholeScriptInThread(shortHash(task.contentVersion))));
  const hidden = hiddenCharactersWarning(task.script);
  if (hidden) blocks.push(section(hidden));
  // The arguments run with the script, so the reviewer sees them too (fixed values stay hidden).
  if (task.arguments && task.arguments.length > 0) blocks.push(section(clip(`*Arguments*\n${argumentLines(task.arguments, budget)}`, 3000)));
  // What an approval names besides the script: interpreter, target, recipe, version (the API's ETag is the full one).
  blocks.push(context(approvalFacts(task)));
  const shownUsers = Math.max(3, Math.round(20 * scale));
  const members = policy.groups.map((group) => `*${safeText(group.name, 60)}* (${group.approvals} of ${groupWhoText(group, shownUsers)})`).join('; ');
  const expiresAt = task.status === 'pending-review' ? reviewExpiresAt(policy, task.statusChangedAt) : null;
  const expires = expiresAt ? ` Expires ${slackDate(expiresAt)} unless approved by then.` : '';
  // The expiry goes after the clip, so a long list of reviewers never cuts its date in half.
  const writer = task.recipe?.writtenBy;
  const writerNote = writer && writer !== task.author ? ` ${mention(writer)} wrote its recipe, so cannot approve it either.` : '';
  blocks.push(context(`${clip(`Needs approval from ${members}. Authors cannot approve their own tasks.${writerNote}`, budget(2000))}${expires}`));
  blocks.push(section(clip(reviewText(policy, task.author, decisions, scale), 3000)));
  // Set on a rejected task only by countersign itself (an expired review), never by a reviewer.
  if (task.status === 'rejected' && task.result.failureMessage) {
    blocks.push(section(`:hourglass: ${safeTextWithMentions(task.result.failureMessage, budget(1500))}`));
  }
  const card = safePermalink(ctx.cardPermalink);
  if (card && task.channelId && /^[CGD][A-Z0-9]+$/.test(task.channelId))
    blocks.push(context(`:speech_balloon: Asked in <#${task.channelId}>: <${card}|open the task card>`));
  if (task.status === 'pending-review') {
    blocks.push(
      // Approve carries the full content version it was drawn with: approving anything edited since is refused.
      actions(`review_${task.id}`, [
        button(ACTION.approve, 'Approve', `${task.id}:${task.contentVersion}`, 'primary'),
        button(ACTION.reject, 'Reject', String(task.id), 'danger'),
      ]),
    );
  }
  return { text: `Review requested: ${ref} on ${task.target} by ${mention(task.author)}`, blocks, scriptClipped };
}

/**
 * The direct message a member of a `dm: true` review group gets when a review is requested:
 * who asks, where, why, and a link to the review request (where the buttons are).
 */
export function renderReviewDm(task: Task, groups: readonly string[], reviewPermalink: string | null): SlackMessage {
  const ref = taskRef(task.id);
  const as = groups.length > 0 ? ` as a member of ${groups.map((name) => `*${safeText(name, 60)}*`).join(', ')}` : '';
  const link = safePermalink(reviewPermalink);
  const where = task.reviewChannel && /^[CGD][A-Z0-9]+$/.test(task.reviewChannel) ? ` in <#${task.reviewChannel}>` : '';
  const blocks: Block[] = [
    section(`:mag: ${mention(task.author)} asks for your review of task ${ref} on \`${safeText(task.target, 80)}\`${as}.`),
    section(`*Why*\n${task.message ? safeText(task.message, 2800) : '_no message given_'}`),
    section(
      link
        ? `<${link}|Open the review request>${where} to read the script and approve or reject it.`
        : `The review request with the script and the buttons is${where || ' in the review channel'}.`,
    ),
  ];
  return { text: `Review requested: ${ref} on ${task.target} by ${mention(task.author)}`, blocks };
}
