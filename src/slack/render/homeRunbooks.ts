/**
 * App Home's runbook sections: the runs waiting for me (a run's review, an approval step, an
 * input step) and the runbooks I can start. Each waiting run names what is asked and offers
 * the way to answer: an approval step's Approve / Reject and an input step's "Provide input"
 * (RUN_ACTION ids, handled with the run card's buttons), a run's review by a link to its review
 * request (Home does not show a run's whole content, so it never approves one), and the run's
 * card. Each startable runbook has a Start button opening its form. Both are bounded by the
 * blocks their caller gives them, and say how many more there are.
 */
import type * as types from '@slack/types';
import { shortHash } from '../../domain/contentVersion.js';
import { runRef, type RunStatus } from '../../domain/run.js';
import { slackAgo } from './relative.js';
import { actions, button, context, RUN_ACTION, section, type Block, type ButtonElement } from './blocks.js';
import { mention, safeText, STATUS_LABEL } from './format.js';

export interface HomeRunbook {
  reference: string;
  name: string;
  description: string | null;
  steps: number;
  hash: string;
}

export interface HomeWaitingRun {
  runId: number;
  reference: string;
  creator: string;
  message: string | null;
  /** `review`: the run's review; `approval` / `input`: a paused step (`stepId`, qualified). */
  kind: 'review' | 'approval' | 'input';
  stepId: string | null;
  /** The run card's link, and the review request's or step request's, when Slack gave them. */
  cardPermalink: string | null;
  permalink: string | null;
}

/** One of my runs, as "Your recent runs" lists it. */
export interface HomeMyRun {
  runId: number;
  reference: string;
  status: RunStatus;
  createdAt: Date;
  cardPermalink: string | null;
}

const header = (text: string): types.HeaderBlock => ({ type: 'header', text: { type: 'plain_text', text: text.slice(0, 150), emoji: true } });
const divider: types.DividerBlock = { type: 'divider' };
const linkButton = (actionId: string, text: string, url: string): ButtonElement => ({
  type: 'button',
  action_id: actionId,
  text: { type: 'plain_text', text, emoji: true },
  url,
});

/** Home's link buttons still send a click; it is acknowledged and ignored. */
export const HOME_LINK_ACTION = 'home_run_link';

function waitingRun(item: HomeWaitingRun, index: number): Block[] {
  const what =
    item.kind === 'review'
      ? 'waits for your review'
      : item.kind === 'approval'
        ? `step \`${safeText(item.stepId ?? '', 130)}\` waits for your approval`
        : `step \`${safeText(item.stepId ?? '', 130)}\` waits for your input`;
  const why = item.message ? `\n*Why* ${safeText(item.message, 300)}` : '';
  const blocks: Block[] = [section(`*${runRef(item.runId)}* \`${safeText(item.reference, 64)}\` by ${mention(item.creator)} ${what}${why}`)];
  const buttons: ButtonElement[] = [];
  const step = `${item.runId}:${item.stepId ?? ''}`;
  if (item.kind === 'approval')
    buttons.push(button(RUN_ACTION.stepApprove, 'Approve step', step, 'primary'), button(RUN_ACTION.stepReject, 'Reject', step, 'danger'));
  if (item.kind === 'input') buttons.push(button(RUN_ACTION.input, 'Provide input', step, 'primary'));
  if (item.permalink)
    buttons.push(linkButton(`${HOME_LINK_ACTION}_request`, item.kind === 'review' ? 'Open the review request' : 'Open the request', item.permalink));
  if (item.cardPermalink) buttons.push(linkButton(`${HOME_LINK_ACTION}_card`, 'Open the run', item.cardPermalink));
  if (buttons.length > 0) blocks.push(actions(`home_run_${item.runId}_${index}`, buttons));
  else if (item.kind === 'review') blocks.push(context('Read it whole in its review request (in the review channel) to approve it.'));
  return blocks;
}

/** "Runs waiting for you (N)": at most `maxBlocks` blocks, the rest counted. Empty when nothing waits. */
export function renderWaitingRuns(runs: readonly HomeWaitingRun[], total: number, maxBlocks: number): Block[] {
  const count = Math.max(total, runs.length);
  if (count === 0 || maxBlocks < 4) return [];
  const blocks: Block[] = [divider, header(`Runs waiting for you (${count})`)];
  let shown = 0;
  for (const [index, item] of runs.entries()) {
    const drawn = waitingRun(item, index);
    // Keep one block for "N more".
    if (blocks.length + drawn.length > maxBlocks - 1) break;
    blocks.push(...drawn);
    shown++;
  }
  if (count > shown)
    blocks.push(context(`and ${count - shown} more${shown === 0 ? ' waiting' : ''}: open their cards or review requests in Slack, or \`GET /api/v1/runs\`.`));
  return blocks;
}

/** "Runbooks you can start": a Start button each, at most `maxBlocks` blocks, the rest counted. */
export function renderStartableRunbooks(runbooks: readonly HomeRunbook[], total: number, maxBlocks: number): Block[] {
  const count = Math.max(total, runbooks.length);
  if (count === 0 || maxBlocks < 4) return [];
  const blocks: Block[] = [divider, header(`Runbooks you can start (${count})`)];
  let shown = 0;
  for (const runbook of runbooks) {
    if (blocks.length + 1 > maxBlocks - 1) break;
    const steps = `${runbook.steps} step${runbook.steps === 1 ? '' : 's'}`;
    blocks.push({
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `\`${safeText(runbook.reference, 64)}\`${runbook.name !== runbook.reference ? ` ${safeText(runbook.name, 150)}` : ''} · ${steps} · \`${shortHash(runbook.hash)}\`${runbook.description ? `\n${safeText(runbook.description, 300)}` : ''}`,
      },
      accessory: button(RUN_ACTION.start, 'Start', runbook.reference),
    });
    shown++;
  }
  if (count > shown) blocks.push(context(`and ${count - shown} more: \`/task runbook list\` shows them all, \`/task start &lt;reference&gt;\` starts one.`));
  return blocks;
}

/** "Your recent runs": one packed section (a line each, a link to its card where Slack gave one). Empty when there are none. */
export function renderMyRuns(runs: readonly HomeMyRun[]): Block[] {
  if (runs.length === 0) return [];
  const lines = runs.map((run) => {
    const ref = run.cardPermalink ? `<${run.cardPermalink}|*${runRef(run.runId)}*>` : `*${runRef(run.runId)}*`;
    return `${ref} ${STATUS_LABEL[run.status]} · \`${safeText(run.reference, 64)}\` · ${slackAgo(run.createdAt)}`;
  });
  return [divider, header('Your recent runs'), section(lines.join('\n').slice(0, 2900))];
}
