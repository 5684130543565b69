/**
 * The App Home tab: a button for a new task; tasks waiting for my review, with Approve and
 * Reject right there; schedules waiting for my review, likewise; what is running now; my recent
 * tasks; my schedules. At most 100 blocks (Slack's limit for a view), however many there are.
 */
import type * as types from '@slack/types';
import { scheduleRef } from '../../domain/schedule.js';
import { taskRef, type Task } from '../../domain/task.js';
import type { ScheduleSummary } from '../../store/schedules.js';
import { codeBlock, fitsInCodeBlock } from './format.js';
import { ACTION, actions, button, context, section, type Block } from './blocks.js';
import { approveValue, SCHEDULE_ACTION, scheduleLine } from './schedule.js';
import { taskLine, type TaskLineFields } from './taskList.js';

/** A task waiting for review as Home shows it: `script` may be only the head of it (`scriptCut`). */
export type HomeReviewTask = TaskLineFields & Pick<Task, 'message' | 'contentVersion' | 'arguments'> & { scriptCut?: boolean };

export interface HomeData {
  pendingMyReview: readonly HomeReviewTask[];
  /** How many wait in all (Home shows the first few). */
  pendingCount?: number;
  running: readonly TaskLineFields[];
  mine: readonly TaskLineFields[];
  /** A line at the top: the answer to the user's last click here (Home has no ephemeral replies). */
  notice?: string | null;
  /** Schedules waiting for my review (a head of each script: `scriptCut` when there is more). */
  schedulesToReview?: readonly ScheduleSummary[];
  /** How many wait in all. */
  schedulesToReviewCount?: number;
  /** My schedules (not removed), newest first. */
  mySchedules?: readonly ScheduleSummary[];
  /** The clock for next fire times (tests). */
  now?: Date;
}

const LIMITS = { pending: 10, running: 10, mine: 15, schedulesToReview: 5, mySchedules: 10 } as const;
const HOME_SCRIPT_CHARS = 1200;

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
    // Approve only what is shown whole: a longer script, or a recipe's arguments (not shown
    // here), are read in the review request first. The content version covers both.
    const whole = task.scriptCut !== true && fitsInCodeBlock(task.script, HOME_SCRIPT_CHARS) && (task.arguments ?? []).length === 0;
    blocks.push(section(codeBlock(task.script, HOME_SCRIPT_CHARS)));
    blocks.push(
      actions(`home_review_${task.id}`, [
        ...(whole ? [button(ACTION.approve, `Approve ${taskRef(task.id)}`, `${task.id}:${task.contentVersion}`, 'primary')] : []),
        button(ACTION.reject, 'Reject', String(task.id), 'danger'),
      ]),
    );
    if (!whole) blocks.push(context((task.arguments ?? []).length > 0 ? 'This task has arguments Home does not show: read them in the review request to approve it.' : 'The script is longer than Home shows: read it whole in the review request to approve it.'));
  }
  const shown = Math.min(data.pendingMyReview.length, LIMITS.pending);
  if (pendingCount > shown) blocks.push(context(`${pendingCount - shown} more: \`/task list pending\`.`));

  const now = data.now ?? new Date();
  const reviewSchedules = data.schedulesToReview ?? [];
  const scheduleCount = Math.max(data.schedulesToReviewCount ?? 0, reviewSchedules.length);
  // Shown only when something waits: most people review no schedules.
  if (scheduleCount > 0) {
    blocks.push(divider, header(`Schedules waiting for your review (${scheduleCount})`));
    for (const schedule of reviewSchedules.slice(0, LIMITS.schedulesToReview)) {
      blocks.push(section(scheduleLine(schedule, now)));
      // As for tasks: Approve only what is shown whole; the button names the version shown.
      const whole = !schedule.scriptCut && fitsInCodeBlock(schedule.script, HOME_SCRIPT_CHARS);
      blocks.push(section(codeBlock(schedule.script, HOME_SCRIPT_CHARS)));
      blocks.push(
        actions(`home_schedule_review_${schedule.id}_${schedule.reviewRound}`, [
          ...(whole ? [button(SCHEDULE_ACTION.approve, `Approve ${scheduleRef(schedule.id)}`, approveValue(schedule), 'primary')] : []),
          button(SCHEDULE_ACTION.reject, 'Reject', approveValue(schedule), 'danger'),
        ]),
      );
      if (!whole) blocks.push(context('The script is longer than Home shows: read it whole in the review request to approve it.'));
    }
    const shownSchedules = Math.min(reviewSchedules.length, LIMITS.schedulesToReview);
    if (scheduleCount > shownSchedules) blocks.push(context(`${scheduleCount - shownSchedules} more: \`/task schedule list\`.`));
  }

  blocks.push(divider, header('Running now'));
  if (data.running.length === 0) blocks.push(context('Nothing is running.'));
  else blocks.push(...packed(data.running.slice(0, LIMITS.running).map(taskLine)));

  blocks.push(divider, header('Your recent tasks'));
  if (data.mine.length === 0) blocks.push(context('You have not asked for a task yet.'));
  else blocks.push(...packed(data.mine.slice(0, LIMITS.mine).map(taskLine)));

  const mySchedules = data.mySchedules ?? [];
  if (mySchedules.length > 0) {
    blocks.push(divider, header('Your schedules'));
    blocks.push(...packed(mySchedules.slice(0, LIMITS.mySchedules).map((schedule) => scheduleLine(schedule, now, { author: false }))));
    blocks.push(context('`/task schedule show &lt;id&gt;` for its last firings · `/task schedule help`'));
  }

  return { type: 'home', blocks: blocks.slice(0, 100) };
}

/** Several lines per section (up to ~2900 characters each) to spare blocks. */
function packed(lines: readonly string[]): Block[] {
  const sections: string[] = [];
  let current = '';
  for (const line of lines) {
    if (current !== '' && current.length + line.length + 1 > 2900) {
      sections.push(current);
      current = line;
    } else current = current === '' ? line : `${current}\n${line}`;
  }
  if (current !== '') sections.push(current);
  return sections.map(section);
}
