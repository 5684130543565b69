/**
 * The App Home tab: a button for a new task; tasks waiting for my review, with Approve and
 * Reject right there; what is running now; my recent tasks. At most 100 blocks (Slack's limit
 * for a view), however many tasks there are.
 */
import type * as types from '@slack/types';
import { taskRef, type Task } from '../../domain/task.js';
import { codeBlock, fitsInCodeBlock, safeText } from './format.js';
import { approvalFacts, hiddenCharactersWarning } from './approvalFacts.js';
import { ACTION, actions, button, context, section, type Block } from './blocks.js';
import { taskLine, type TaskLineFields } from './taskList.js';

/** A task waiting for review as Home shows it: `script` may be only the head of it (`scriptCut`). */
export type HomeReviewTask = TaskLineFields & Pick<Task, 'message' | 'contentVersion' | 'arguments' | 'type' | 'recipe'> & { scriptCut?: boolean };

export interface HomeData {
  pendingMyReview: readonly HomeReviewTask[];
  /** How many wait in all (Home shows the first few). */
  pendingCount?: number;
  running: readonly TaskLineFields[];
  mine: readonly TaskLineFields[];
  /** A line at the top: the answer to the user's last click here (Home has no ephemeral replies). */
  notice?: string | null;
}

const LIMITS = { pending: 10, running: 10, mine: 15 } as const;
const HOME_SCRIPT_CHARS = 1200;
const HOME_MESSAGE_CHARS = 500;

const header = (text: string): types.HeaderBlock => ({ type: 'header', text: { type: 'plain_text', text, emoji: true } });
const divider: types.DividerBlock = { type: 'divider' };

export function renderHome(data: HomeData): types.HomeView {
  const blocks: Block[] = [];
  if (data.notice) blocks.push(section(data.notice.slice(0, 2900)));
  blocks.push(section('*countersign* runs scripts on production after a second pair of eyes.'), actions('home_actions', [button(ACTION.homeNew, 'New task', 'new', 'primary')]));

  const pendingCount = Math.max(data.pendingCount ?? 0, data.pendingMyReview.length);
  blocks.push(divider, header(`Waiting for your review (${pendingCount})`));
  if (data.pendingMyReview.length === 0) blocks.push(context('Nothing waits for you.'));
  for (const task of data.pendingMyReview.slice(0, LIMITS.pending)) {
    blocks.push(section(taskLine(task)));
    // Approve only what is shown whole: a longer script or message, a recipe's arguments (not
    // shown here), or characters the reader cannot see send the reviewer to the review request
    // first. The content version covers all of it.
    const message = task.message ?? '';
    const hidden = hiddenCharactersWarning(`${task.script}\n${message}`, 'task');
    const whole = task.scriptCut !== true && fitsInCodeBlock(task.script, HOME_SCRIPT_CHARS) && (task.arguments ?? []).length === 0 && message.length <= HOME_MESSAGE_CHARS && hidden === null;
    blocks.push(section(`*Why* ${message === '' ? '_no message given_' : safeText(message, HOME_MESSAGE_CHARS)}`));
    blocks.push(section(codeBlock(task.script, HOME_SCRIPT_CHARS)));
    blocks.push(context(approvalFacts(task)));
    if (hidden) blocks.push(context(hidden));
    blocks.push(
      actions(`home_review_${task.id}`, [
        ...(whole ? [button(ACTION.approve, `Approve ${taskRef(task.id)}`, `${task.id}:${task.contentVersion}`, 'primary')] : []),
        button(ACTION.reject, 'Reject', String(task.id), 'danger'),
      ]),
    );
    if (!whole) blocks.push(context((task.arguments ?? []).length > 0 ? 'This task has arguments Home does not show: read them in the review request to approve it.' : hidden ? 'Read it in the review request to approve it.' : 'The script or message is longer than Home shows: read it whole in the review request to approve it.'));
  }
  const shown = Math.min(data.pendingMyReview.length, LIMITS.pending);
  if (pendingCount > shown) blocks.push(context(`${pendingCount - shown} more: \`/task list pending\`.`));

  blocks.push(divider, header('Running now'));
  if (data.running.length === 0) blocks.push(context('Nothing is running.'));
  else blocks.push(...packed(data.running.slice(0, LIMITS.running)));

  blocks.push(divider, header('Your recent tasks'));
  if (data.mine.length === 0) blocks.push(context('You have not asked for a task yet.'));
  else blocks.push(...packed(data.mine.slice(0, LIMITS.mine)));

  return { type: 'home', blocks: blocks.slice(0, 100) };
}

/** Several task lines per section (up to ~2900 characters each) to spare blocks. */
function packed(tasks: readonly TaskLineFields[]): Block[] {
  const sections: string[] = [];
  let current = '';
  for (const task of tasks) {
    const line = taskLine(task);
    if (current !== '' && current.length + line.length + 1 > 2900) {
      sections.push(current);
      current = line;
    } else current = current === '' ? line : `${current}\n${line}`;
  }
  if (current !== '') sections.push(current);
  return sections.map(section);
}
