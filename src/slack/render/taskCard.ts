/**
 * The task card: the message in the channel where the task was asked for. Always shows the
 * status, target, author, message and script; the review; the result at the end; and the one
 * button that fits the state (Run when approved, Kill while queued or running, Run again once finished).
 */
import { formatDuration } from '../../domain/duration.js';
import { hostLabel } from '../../domain/plan.js';
import type { ReviewPolicy } from '../../domain/review.js';
import { taskRef, type TaskView } from '../../domain/task.js';
import { markFixedCopies, type TaskArgument } from '../../domain/recipe.js';
import { shortHash, type RecipeRef } from '../../domain/contentVersion.js';
import { ACTION, actions, button, context, fields, fitBlocks, section, withConfirm, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, mention, safeText, safeTextWithMentions, slackDate, STATUS_LABEL } from './format.js';
import { reviewText } from './reviewLines.js';
import { slackAgo } from './relative.js';
import { safePermalink } from './reviewRequest.js';

export const CARD_SCRIPT_CHARS = 1500;

export interface CardContext {
  targetDescription: string | null;
  policy: ReviewPolicy | null;
  /** The task page (a signed link), shown once the task has output to read. */
  logUrl?: string | null;
  /** A permalink to the task's review request, when it has one. */
  reviewPermalink?: string | null;
  /** A rejected task's resubmission: the new task, and its card's permalink once known. */
  resubmittedAs?: { id: number; permalink: string | null } | null;
  /** The clock, for tests; Date.now() otherwise. */
  now?: number;
}

export function renderTaskCard(view: TaskView, ctx: CardContext): SlackMessage {
  return fitBlocks((scale) => renderAtScale(view, ctx, scale));
}

function renderAtScale(view: TaskView, ctx: CardContext, scale: number): SlackMessage {
  const { task, execution } = view;
  const ref = taskRef(task.id);
  const budget = (chars: number) => Math.max(40, Math.round(chars * scale));
  const stopping = task.status === 'running' && execution?.desiredPhase === 'stopped';
  const blocks: Block[] = [];

  blocks.push(section(`*${ref}* on \`${safeText(task.target, 80)}\` · *${STATUS_LABEL[task.status]}*${stopping ? ' · :octagonal_sign: stopping' : ''}`));
  blocks.push(
    fields([
      `*Author*\n${mention(task.author)}`,
      `*Target*\n\`${safeText(task.target, 80)}\`${ctx.targetDescription ? ` · ${safeText(ctx.targetDescription, budget(200))}` : ''}`,
      `*Type*\n${task.type}`,
      `*Asked*\n${slackAgo(task.createdAt)}`,
    ]),
  );
  blocks.push(section(`*Why*\n${task.message ? safeText(task.message, budget(2800)) : '_no message given_'}`));
  blocks.push(section(codeBlock(task.script, budget(CARD_SCRIPT_CHARS))));
  if (task.arguments && task.arguments.length > 0) blocks.push(section(clip(`*Arguments*\n${argumentLines(task.arguments, budget)}`, 3000)));
  if (task.recipe) blocks.push(context(recipeLine(task.recipe)));
  if (ctx.policy) blocks.push(section(clip(`*Review*\n${reviewText(ctx.policy, task.author, view.decisions, scale)}`, 3000)));

  const result = resultText(view, budget);
  if (result) blocks.push(section(result));

  // A grace delay not over yet: it waits, and may be cancelled, until then.
  const waiting =
    task.runAfter !== null &&
    task.runAfter.getTime() > (ctx.now ?? Date.now()) &&
    (task.status === 'ready' || task.status === 'approved' || task.status === 'pending-review');
  if (waiting && task.runAfter)
    blocks.push(section(`:alarm_clock: Runs ${slackAgo(task.runAfter)} at the earliest${task.status === 'pending-review' ? ', once approved' : ''}.`));

  const buttons = [];
  if (task.status === 'approved') buttons.push(button(ACTION.run, 'Run', String(task.id), 'primary'));
  if (waiting) buttons.push(button(ACTION.cancel, 'Cancel', String(task.id), 'danger'));
  else if ((task.status === 'running' && !stopping) || task.status === 'ready') buttons.push(button(ACTION.kill, 'Kill', String(task.id), 'danger'));
  // A task is resubmitted once: after that the card points to the new one instead.
  const resubmitted = task.status === 'rejected' ? (ctx.resubmittedAs ?? null) : null;
  if (task.status === 'rejected' && !resubmitted) buttons.push(button(ACTION.resubmit, 'Edit and resubmit', String(task.id)));
  // A finished task may be asked for once more with the same content (reviewed again where its target requires it).
  // It carries the view version it was drawn at: a double click (or Slack's redelivery) of one drawing asks once (src/slack/againKey.ts).
  if (task.status === 'success' || task.status === 'failure' || task.status === 'killed')
    buttons.push(
      withConfirm(button(ACTION.again, 'Run again', `${task.id}:${task.viewVersion}`), {
        title: 'Run it again?',
        text: `Asks for a new task on ${task.target} with the same script${task.arguments && task.arguments.length > 0 ? ' and arguments' : ''} as ${ref} (shown on this card), as you. It waits for review again where the target requires review.`,
        confirm: 'Run again',
      }),
    );
  if (buttons.length > 0) blocks.push(actions(`task_${task.id}_actions`, buttons));
  if (resubmitted) {
    const permalink = safePermalink(resubmitted.permalink);
    const link = permalink ? `<${permalink}|${taskRef(resubmitted.id)}>` : `*${taskRef(resubmitted.id)}*`;
    blocks.push(context(`:arrows_counterclockwise: Resubmitted as ${link}.`));
  }
  if (ctx.reviewPermalink && task.status === 'pending-review') blocks.push(context(`<${ctx.reviewPermalink}|The review request>`));

  const page = ctx.logUrl && view.execution ? ` · <${ctx.logUrl}|Task page with the full log>` : '';
  if (task.status === 'running') blocks.push(context(`Output streams into this thread.${page}`));
  else if (page !== '') blocks.push(context(page.slice(3)));

  return { text: `${ref} on ${task.target}: ${task.status}`, blocks };
}

/** `from recipe restart-web @ 1a2b3c4d5e6f`: which recipe, and which version of it. */
export function recipeLine(recipe: RecipeRef): string {
  return `:scroll: From recipe \`${safeText(recipe.name, 64)}\` @ \`${shortHash(recipe.hash)}\``;
}

/** `$1 region = us`, in declared order; a fixed argument's value is never shown (•••). */
export function argumentLines(args: readonly TaskArgument[], budget: (chars: number) => number): string {
  return markFixedCopies(args)
    .map(
      (arg, index) =>
        `\`$${index + 1}\` *${safeText(arg.name, 64)}* = ${arg.kind === 'fixed' ? '•••' : arg.value === '' ? '_empty_' : `\`${safeText(arg.value, budget(300)).replace(/`/g, "'")}\``}`,
    )
    .join('\n');
}

function resultText(view: TaskView, budget: (chars: number) => number): string | null {
  const { task, execution } = view;
  const steps = execution?.steps ?? [];
  if (task.status === 'running') {
    const started = task.startedAt ? `Started ${slackDate(task.startedAt)}` : 'Starting';
    if (steps.length <= 1) return `${started}${steps[0] ? ` on ${hostLabel(steps[0])}` : ''}.`;
    const done = steps.filter((s) => s.phase !== 'pending' && s.phase !== 'running').length;
    const failed = steps.filter((s) => s.phase === 'failed').length;
    return `${started}: ${done}/${steps.length} hosts done${failed > 0 ? `, ${failed} failed` : ''}.`;
  }
  if (task.status === 'cancelled' || task.status === 'rejected')
    return task.result.failureMessage ? `:warning: ${safeTextWithMentions(task.result.failureMessage, budget(1500))}` : null;
  if (task.status !== 'success' && task.status !== 'failure' && task.status !== 'killed') return null;
  const parts: string[] = [];
  if (task.result.exitCode !== null) parts.push(`exit code *${task.result.exitCode}*`);
  if (task.result.signal) parts.push(`signal ${task.result.signal}`);
  if (task.result.durationMs !== null) parts.push(`in ${formatDuration(task.result.durationMs)}`);
  if (steps.length > 1) {
    const ok = steps.filter((s) => s.phase === 'succeeded').length;
    parts.push(`${ok}/${steps.length} hosts succeeded`);
  }
  const lines = [`*Result* ${parts.join(' · ') || '—'}`];
  if (task.result.failureMessage) lines.push(`:warning: ${safeTextWithMentions(task.result.failureMessage, budget(1500))}`);
  if (task.result.lastLine && task.status !== 'killed') lines.push(`Last line: \`${safeText(task.result.lastLine, budget(300)).replace(/`/g, "'")}\``);
  return clip(lines.join('\n'), 3000);
}
