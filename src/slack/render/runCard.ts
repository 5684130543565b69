/**
 * The run card: the message in the channel where a run was asked for. It shows who started it
 * and how (trigger), why, the review, every step's state (waiting, running, paused for
 * approval or input, done, failed, skipped, killed) with its failure message and a link to its
 * log, the run's result, and the one button that fits the state: Cancel while it waits (review,
 * grace), Kill while it runs, Run again once it has ended. The step's output is in the thread.
 */
import type { ReviewPolicy } from '../../domain/review.js';
import { runRef, type Run, type RunStatus, type RunStep, type RunTrigger } from '../../domain/run.js';
import type { PlannedStep } from '../../domain/runbook/index.js';
import type { RunView } from '../../service/runs.js';
import { actions, button, context, fields, fitBlocks, RUN_ACTION, section, withConfirm, type Block, type SlackMessage } from './blocks.js';
import { clip, mention, safeText, slackDate, STATUS_LABEL } from './format.js';
import { reviewText } from './reviewLines.js';
import { slackAgo } from './relative.js';

/** A run's statuses are a task's, and read the same. */
export const RUN_STATUS_LABEL: Readonly<Record<RunStatus, string>> = STATUS_LABEL;

/** At most this many steps get a line each; the rest are counted. Each line is bounded too. */
const MAX_STEP_LINES = 40;
const STEP_LINES_PER_BLOCK = 10;

export interface RunCardContext {
  /** The combined review policy (resolved), when the run touches reviewed targets. */
  policy: ReviewPolicy | null;
  /** A script step's log: the signed page of its task. */
  logUrl?: ((taskId: number) => string) | null;
  /** A permalink to the run's review request, once known. */
  reviewPermalink?: string | null;
  /** The clock, for tests; Date.now() otherwise. */
  now?: number;
}

export function renderRunCard(view: RunView, ctx: RunCardContext): SlackMessage {
  return fitBlocks((scale) => renderAtScale(view, ctx, scale));
}

function renderAtScale(view: RunView, ctx: RunCardContext, scale: number): SlackMessage {
  const { run, steps } = view;
  const ref = runRef(run.id);
  const budget = (chars: number) => Math.max(40, Math.round(chars * scale));
  const stopping = run.status === 'running' && run.desiredPhase === 'stopped';
  const blocks: Block[] = [];
  blocks.push(
    section(
      `*${capital(ref)}* of runbook \`${safeText(run.reference, 64)}\` · *${RUN_STATUS_LABEL[run.status]}*${stopping ? ' · :octagonal_sign: stopping' : ''}`,
    ),
  );
  blocks.push(
    fields([
      `*Started by*\n${mention(run.creator)}`,
      `*Trigger*\n${triggerText(run.trigger)}`,
      `*Asked*\n${slackAgo(run.createdAt)}`,
      `*Targets*\n${run.plan.targets.length > 0 ? clip(run.plan.targets.map((t) => `\`${safeText(t, 80)}\``).join(', '), budget(600)) : '_none reviewed_'}`,
    ]),
  );
  if (run.message) blocks.push(section(`*Why*\n${safeText(run.message, budget(2000))}`));
  if (ctx.policy)
    blocks.push(
      section(
        clip(
          `*Review*\n${reviewText(
            ctx.policy,
            run.creator,
            view.decisions.filter((d) => d.verdict === 'reject' || d.contentVersion === run.contentVersion),
            scale,
          )}`,
          3000,
        ),
      ),
    );

  const lines = steps.slice(0, MAX_STEP_LINES).map((step) => stepLine(view, step, ctx, budget));
  if (steps.length > MAX_STEP_LINES) lines.push(`… and ${steps.length - MAX_STEP_LINES} more steps`);
  for (let i = 0; i < lines.length; i += STEP_LINES_PER_BLOCK) {
    const head = i === 0 ? '*Steps*\n' : '';
    blocks.push(section(clip(`${head}${lines.slice(i, i + STEP_LINES_PER_BLOCK).join('\n')}`, 3000)));
  }

  if (run.failureMessage && ['failure', 'killed', 'rejected', 'cancelled'].includes(run.status)) {
    blocks.push(section(`:warning: ${failureText(run.failureMessage, budget(1500))}`));
  }
  if (run.parentRunId !== null && run.trigger.kind !== 'after') blocks.push(context(`Follows run ${run.parentRunId}.`));

  // A grace delay not over yet: it waits, and may be cancelled, until then.
  const now = ctx.now ?? Date.now();
  const waiting = run.runAfter !== null && run.runAfter.getTime() > now && ['pending-review', 'approved', 'ready'].includes(run.status);
  if (waiting && run.runAfter)
    blocks.push(
      section(
        `:alarm_clock: Starts ${slackAgo(run.runAfter)} at the earliest${run.status === 'pending-review' ? ', once approved' : ''}. Cancel it before then if it should not run.`,
      ),
    );

  const buttons = [];
  if (waiting || run.status === 'pending-review' || run.status === 'approved') buttons.push(button(RUN_ACTION.cancel, 'Cancel', String(run.id), 'danger'));
  else if ((run.status === 'running' && !stopping) || run.status === 'ready') buttons.push(button(RUN_ACTION.kill, 'Kill', String(run.id), 'danger'));
  // Run again carries the view version it was drawn at: a double click (or Slack's redelivery) of one drawing starts one run (src/slack/againKey.ts).
  if (['success', 'failure', 'killed', 'rejected', 'cancelled'].includes(run.status))
    buttons.push(
      withConfirm(button(RUN_ACTION.again, 'Run again', `${run.id}:${run.viewVersion}`), {
        title: 'Run it again?',
        text: `Starts a new run of runbook ${run.reference} on ${run.plan.targets.length > 0 ? run.plan.targets.join(', ') : 'no reviewed target'}, with the same content and arguments as ${ref}, started by you. It waits for review again where its targets require review.`,
        confirm: 'Run again',
      }),
    );
  if (buttons.length > 0) blocks.push(actions(`run_${run.id}_actions`, buttons));
  if (ctx.reviewPermalink && run.status === 'pending-review') blocks.push(context(`<${ctx.reviewPermalink}|The review request>`));
  if (run.status === 'running') blocks.push(context("Each step's output goes to this thread, labelled with the step."));
  return { text: `${capital(ref)} of ${run.reference}: ${run.status}`, blocks };
}

const STEP_ICON: Readonly<Record<RunStep['phase'], string>> = {
  pending: ':white_circle:',
  running: ':runner:',
  paused: ':double_vertical_bar:',
  succeeded: ':white_check_mark:',
  failed: ':x:',
  skipped: ':fast_forward:',
  killed: ':octagonal_sign:',
};

/** One step: icon, `[id]`, kind, what it is doing or how it ended, and its log. */
function stepLine(view: RunView, step: RunStep, ctx: RunCardContext, budget: (chars: number) => number): string {
  const planned = findPlanned(view.run, step.stepId);
  const parts = [`${STEP_ICON[step.phase]} \`[${safeText(step.stepId, 80)}]\` ${kindText(planned, step)}: ${phaseText(view, step, planned)}`];
  if (step.failureMessage && (step.phase === 'failed' || step.phase === 'killed' || step.phase === 'skipped'))
    parts.push(`— ${failureText(step.failureMessage, budget(200))}`);
  if (step.taskId !== null && ctx.logUrl && step.phase !== 'pending') parts.push(`· <${ctx.logUrl(step.taskId)}|log>`);
  return clip(parts.join(' '), budget(600));
}

function kindText(planned: PlannedStep | null, step: RunStep): string {
  if (planned?.kind === 'script') return `script on \`${safeText(planned.script.target, 80)}\``;
  if (planned?.kind === 'http') return `${planned.http.method} request`;
  return step.kind;
}

function phaseText(view: RunView, step: RunStep, planned: PlannedStep | null): string {
  switch (step.phase) {
    case 'pending':
      return 'waiting';
    case 'running':
      return step.startedAt ? `running since ${slackDate(step.startedAt)}` : 'running';
    case 'paused': {
      if (planned?.kind === 'approval') {
        const approvals = (view.stepDecisions[step.id] ?? []).filter((d) => d.verdict === 'approve').length;
        return `*paused for approval* (${approvals}/${planned.approval.approvals})${step.timeoutAt ? `, until ${slackDate(step.timeoutAt)}` : ''}`;
      }
      if (planned?.kind === 'input')
        return `*paused for input* from ${planned.input.from ? 'the people it names' : mention(view.run.creator)}${step.timeoutAt ? `, until ${slackDate(step.timeoutAt)}` : ''}`;
      return 'paused';
    }
    case 'succeeded':
      if (step.kind === 'approval' && step.decidedBy) return `approved by ${mention(step.decidedBy)}`;
      if (step.kind === 'input' && step.decidedBy) return `given by ${mention(step.decidedBy)}`;
      return 'done';
    case 'failed':
      return '*failed*';
    case 'skipped':
      return 'skipped';
    case 'killed':
      return 'killed';
  }
}

function findPlanned(run: Run, stepId: string): PlannedStep | null {
  for (const group of run.plan.groups) for (const step of group) if (step.id === stepId) return step;
  return null;
}

export function triggerText(trigger: RunTrigger): string {
  switch (trigger.kind) {
    case 'manual':
      return trigger.again ? `by hand (again, from run ${trigger.again})` : 'by hand';
    case 'api':
      return trigger.again ? `API (again, from run ${trigger.again})` : 'API';
    case 'schedule':
      return trigger.schedule ? `schedule S${trigger.schedule}` : 'schedule';
    case 'webhook':
      return `webhook \`${safeText(trigger.hook, 64)}\``;
    case 'after':
      return `after run ${trigger.run} (${trigger.on})`;
    case 'workflow':
      return 'Slack workflow';
  }
}

/**
 * A failure message made safe: our messages name who acted with one leading mention
 * (`rejected by <@U1>: <reason>`, `killed by <@U1>`); that one is kept, everything after it
 * (a reviewer's reason, a script's last words) is text, so it can never ping anyone.
 */
export function failureText(message: string, max: number): string {
  const escaped = safeText(message, max);
  return escaped.replace(/^([a-z][a-z ]{0,40}) by &lt;@([UW][A-Z0-9]{1,20})&gt;/, '$1 by <@$2>');
}

const capital = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);
