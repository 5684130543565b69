/**
 * The App Home tab: a button for a new task; tasks waiting for my review, with Approve and
 * Reject right there; runs waiting for me (review, approval or input steps); schedules waiting
 * for my review; the runbooks I can start; what is running now; my recent tasks; my schedules.
 * At most 100 blocks (Slack's limit for a view), however many there are: every section keeps
 * its place and says how many more it left out.
 */
import type * as types from '@slack/types';
import { scheduleRef } from '../../domain/schedule.js';
import { taskRef, type Task } from '../../domain/task.js';
import type { ScheduleSummary } from '../../store/schedules.js';
import { codeBlock, fitsInCodeBlock, safeText } from './format.js';
import { approvalFacts, hiddenCharactersWarning } from './approvalFacts.js';
import { ACTION, actions, button, context, section, type Block } from './blocks.js';
import { approveValue, SCHEDULE_ACTION, scheduleLine } from './schedule.js';
import { taskLine, type TaskLineFields } from './taskList.js';
import { renderMyRuns, renderStartableRunbooks, renderWaitingRuns, type HomeMyRun, type HomeRunbook, type HomeWaitingRun } from './homeRunbooks.js';

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
  /** Schedules waiting for my review (a head of each script: `scriptCut` when there is more). */
  schedulesToReview?: readonly ScheduleSummary[];
  /** How many wait in all. */
  schedulesToReviewCount?: number;
  /** My schedules (not removed), newest first. */
  mySchedules?: readonly ScheduleSummary[];
  /** Runs waiting for me (their review, an approval or input step), oldest first, and how many in all. */
  waitingRuns?: readonly HomeWaitingRun[];
  waitingRunsCount?: number;
  /** Runbooks I can start (by hand), and how many in all. */
  startable?: readonly HomeRunbook[];
  startableCount?: number;
  /** My newest runs. */
  myRuns?: readonly HomeMyRun[];
  /** The clock for next fire times (tests). */
  now?: Date;
}

const LIMITS = { pending: 10, running: 10, mine: 15, schedulesToReview: 5, mySchedules: 10, myRuns: 10 } as const;
/** Blocks the runbook sections take at most: runs waiting for me, runbooks I can start. */
const RUN_BLOCKS = { waiting: 18, startable: 12 } as const;
const HOME_SCRIPT_CHARS = 1200;
/** Slack's limit for a view. */
const MAX_BLOCKS = 100;
const HOME_MESSAGE_CHARS = 500;

const header = (text: string): types.HeaderBlock => ({ type: 'header', text: { type: 'plain_text', text, emoji: true } });
const divider: types.DividerBlock = { type: 'divider' };

export function renderHome(data: HomeData): types.HomeView {
  const blocks: Block[] = [];
  if (data.notice) blocks.push(section(data.notice.slice(0, 2900)));
  blocks.push(
    section('*countersign* runs scripts on production after a second pair of eyes.'),
    actions('home_actions', [button(ACTION.homeNew, 'New task', 'new', 'primary')]),
  );

  const now = data.now ?? new Date();
  // The sections after the reviews are drawn first: the reviews get the blocks left, so however
  // much waits, every section keeps its place within Slack's 100.
  const tail: Block[] = [];
  tail.push(...renderStartableRunbooks(data.startable ?? [], data.startableCount ?? 0, RUN_BLOCKS.startable));
  tail.push(divider, header('Running now'));
  if (data.running.length === 0) tail.push(context('Nothing is running.'));
  else tail.push(...packed(data.running.slice(0, LIMITS.running).map(taskLine)));

  tail.push(divider, header('Your recent tasks'));
  if (data.mine.length === 0) tail.push(context('You have not asked for a task yet.'));
  else tail.push(...packed(data.mine.slice(0, LIMITS.mine).map(taskLine)));
  tail.push(...renderMyRuns((data.myRuns ?? []).slice(0, LIMITS.myRuns)));

  const mySchedules = data.mySchedules ?? [];
  if (mySchedules.length > 0) {
    tail.push(divider, header('Your schedules'));
    tail.push(...packed(mySchedules.slice(0, LIMITS.mySchedules).map((schedule) => scheduleLine(schedule, now, { author: false }))));
    tail.push(context('`/task schedule show &lt;id&gt;` for its last firings · `/task schedule help`'));
  }
  const waitingRuns = renderWaitingRuns(data.waitingRuns ?? [], data.waitingRunsCount ?? 0, RUN_BLOCKS.waiting);
  const reviewSchedules = data.schedulesToReview ?? [];
  const scheduleCount = Math.max(data.schedulesToReviewCount ?? 0, reviewSchedules.length);
  // Room kept for the schedules' header and their count, when any wait.
  const scheduleReserve = scheduleCount > 0 ? 3 : 0;

  const pendingCount = Math.max(data.pendingCount ?? 0, data.pendingMyReview.length);
  blocks.push(divider, header(`Waiting for your review (${pendingCount})`));
  if (data.pendingMyReview.length === 0) blocks.push(context('Nothing waits for you.'));
  // What the other sections leave, less one block for "N more".
  const lastTask = MAX_BLOCKS - tail.length - waitingRuns.length - scheduleReserve - 1;
  let shown = 0;
  for (const task of data.pendingMyReview.slice(0, LIMITS.pending)) {
    const drawn = taskReview(task);
    if (blocks.length + drawn.length > lastTask) break;
    blocks.push(...drawn);
    shown++;
  }
  if (pendingCount > shown)
    blocks.push(context(`${pendingCount - shown} ${shown === 0 && data.pendingMyReview.length > 0 ? 'wait' : 'more'}: \`/task list pending\`.`));
  blocks.push(...waitingRuns);

  // Shown only when something waits: most people review no schedules.
  if (scheduleCount > 0) {
    blocks.push(divider, header(`Schedules waiting for your review (${scheduleCount})`));
    // What the tail leaves, less one block for "N more".
    const last = MAX_BLOCKS - tail.length - 1;
    let shownSchedules = 0;
    for (const schedule of reviewSchedules.slice(0, LIMITS.schedulesToReview)) {
      const drawn = scheduleReview(schedule, now);
      if (blocks.length + drawn.length > last) break;
      blocks.push(...drawn);
      shownSchedules++;
    }
    if (scheduleCount > shownSchedules)
      blocks.push(context(`${scheduleCount - shownSchedules} ${shownSchedules === 0 ? 'wait' : 'more'}: \`/task schedule list\`.`));
  }

  blocks.push(...tail);
  return { type: 'home', blocks: blocks.slice(0, MAX_BLOCKS) };
}

/**
 * A task waiting for review, as Home shows it. Approve only what is shown whole: a longer script
 * or message, a recipe's arguments (not shown here), or characters the reader cannot see send
 * the reviewer to the review request first. The content version covers all of it.
 */
function taskReview(task: HomeReviewTask): Block[] {
  const blocks: Block[] = [section(taskLine(task))];
  const message = task.message ?? '';
  const hidden = hiddenCharactersWarning(`${task.script}\n${message}`, 'task');
  const whole =
    task.scriptCut !== true &&
    fitsInCodeBlock(task.script, HOME_SCRIPT_CHARS) &&
    (task.arguments ?? []).length === 0 &&
    message.length <= HOME_MESSAGE_CHARS &&
    hidden === null;
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
  if (!whole)
    blocks.push(
      context(
        (task.arguments ?? []).length > 0
          ? 'This task has arguments Home does not show: read them in the review request to approve it.'
          : hidden
            ? 'Read it in the review request to approve it.'
            : 'The script or message is longer than Home shows: read it whole in the review request to approve it.',
      ),
    );
  return blocks;
}

/**
 * A schedule waiting for review, as Home shows it. As for tasks: Approve only what is shown
 * whole and can be read as it runs; the button names the version shown (which covers target,
 * type, script and message).
 */
function scheduleReview(schedule: ScheduleSummary, now: Date): Block[] {
  const message = schedule.message ?? '';
  const hidden = hiddenCharactersWarning(`${schedule.script}\n${message}`, 'schedule');
  const whole = !schedule.scriptCut && fitsInCodeBlock(schedule.script, HOME_SCRIPT_CHARS) && message.length <= HOME_MESSAGE_CHARS && hidden === null;
  const blocks: Block[] = [
    section(`${scheduleLine(schedule, now, { message: false })}\n*Why* ${message === '' ? '_no message given_' : safeText(message, HOME_MESSAGE_CHARS)}`),
    section(codeBlock(schedule.script, HOME_SCRIPT_CHARS)),
    context(approvalFacts({ ...schedule, recipe: null })),
  ];
  if (hidden) blocks.push(context(hidden));
  blocks.push(
    actions(`home_schedule_review_${schedule.id}_${schedule.reviewRound}`, [
      ...(whole ? [button(SCHEDULE_ACTION.approve, `Approve ${scheduleRef(schedule.id)}`, approveValue(schedule), 'primary')] : []),
      button(SCHEDULE_ACTION.reject, 'Reject', approveValue(schedule), 'danger'),
    ]),
  );
  if (!whole)
    blocks.push(
      context(
        hidden
          ? 'Read it in the review request to approve it.'
          : 'The script or message is longer than Home shows: read it whole in the review request to approve it.',
      ),
    );
  return blocks;
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
