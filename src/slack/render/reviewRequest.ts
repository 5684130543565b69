/**
 * The review request, posted in the target's review channel: who asks, why, the script, each
 * group's progress, and Approve / Reject while the task waits for review. Once decided, the
 * buttons go and the outcome stays. When the script cannot be shown whole, the request says so
 * and `scriptClipped` tells the caller to put the whole script in the request's thread.
 */
import type { ReviewPolicy } from '../../domain/review.js';
import { taskRef, type TaskView } from '../../domain/task.js';
import { ACTION, actions, button, context, fitBlocks, section, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, fitsInCodeBlock, mention, safeText, STATUS_LABEL } from './format.js';
import { reviewText } from './reviewLines.js';

export const REVIEW_SCRIPT_CHARS = 2900;

export interface ReviewRequestMessage extends SlackMessage {
  scriptClipped: boolean;
}

export function renderReviewRequest(view: TaskView, policy: ReviewPolicy): ReviewRequestMessage {
  return fitBlocks((scale) => renderAtScale(view, policy, scale));
}

function renderAtScale(view: TaskView, policy: ReviewPolicy, scale: number): ReviewRequestMessage {
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
  if (scriptClipped) blocks.push(context(':page_facing_up: The script is too long to show here: the whole script is in this thread.'));
  const shownUsers = Math.max(3, Math.round(20 * scale));
  const members = policy.groups
    .map(
      (group) =>
        `*${safeText(group.name, 60)}* (${group.approvals} of ${group.users.slice(0, shownUsers).map(mention).join(', ')}${group.users.length > shownUsers ? ', …' : ''})`,
    )
    .join('; ');
  blocks.push(context(clip(`Needs approval from ${members}. Authors cannot approve their own tasks.`, budget(2000))));
  blocks.push(section(clip(reviewText(policy, task.author, decisions, scale), 3000)));
  if (task.status === 'pending-review') {
    blocks.push(
      actions(`review_${task.id}`, [button(ACTION.approve, 'Approve', String(task.id), 'primary'), button(ACTION.reject, 'Reject', String(task.id), 'danger')]),
    );
  }
  return { text: `Review requested: ${ref} on ${task.target} by ${task.author}`, blocks, scriptClipped };
}
