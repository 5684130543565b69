/**
 * The review request, posted in the target's review channel: who asks, why, the script, each
 * group's progress, and Approve / Reject while the task waits for review. Once decided, the
 * buttons go and the outcome stays.
 */
import type { ReviewPolicy } from '../../domain/review.js';
import { taskRef, type TaskView } from '../../domain/task.js';
import { ACTION, actions, button, context, section, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, fitsInCodeBlock, mention, safeText, STATUS_LABEL } from './format.js';
import { decisionLines, groupProgressLine } from './reviewLines.js';

export const REVIEW_SCRIPT_CHARS = 2900;

/** True when the request cannot show the whole script, so the full script goes to its thread. */
export function reviewScriptIsClipped(script: string): boolean {
  return !fitsInCodeBlock(script, REVIEW_SCRIPT_CHARS);
}

export function renderReviewRequest(view: TaskView, policy: ReviewPolicy): SlackMessage {
  const { task, decisions } = view;
  const ref = taskRef(task.id);
  const blocks: Block[] = [
    section(`:mag: *Review requested*: ${mention(task.author)} wants to run *${ref}* on \`${safeText(task.target, 80)}\` · *${STATUS_LABEL[task.status]}*`),
    section(`*Why*\n${task.message ? safeText(task.message, 2800) : '_no message given_'}`),
    section(codeBlock(task.script, REVIEW_SCRIPT_CHARS)),
  ];
  if (reviewScriptIsClipped(task.script)) blocks.push(context(':page_facing_up: The script is too long to show here: the whole script is in this thread.'));
  const members = policy.groups
    .map((group) => `*${safeText(group.name, 60)}* (${group.approvals} of ${group.users.slice(0, 20).map(mention).join(', ')}${group.users.length > 20 ? ', …' : ''})`)
    .join('; ');
  blocks.push(context(clip(`Needs approval from ${members}. Authors cannot approve their own tasks.`, 2000)));
  const reviewText = [groupProgressLine(policy, task.author, decisions), decisionLines(decisions)].filter((line) => line !== '').join('\n');
  blocks.push(section(clip(reviewText, 3000)));
  if (task.status === 'pending-review') {
    blocks.push(
      actions(`review_${task.id}`, [button(ACTION.approve, 'Approve', String(task.id), 'primary'), button(ACTION.reject, 'Reject', String(task.id), 'danger')]),
    );
  }
  return { text: `Review requested: ${ref} on ${task.target} by ${task.author}`, blocks };
}
