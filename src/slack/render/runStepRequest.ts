/**
 * The messages a run's steps post: an approval step's request (in the step's channel, else the
 * review channel, else the run card's channel) naming its approvers with Approve / Reject; an
 * input step's prompt in the run card's thread with "Provide input" for the people asked; an
 * http step's log in the thread. Redrawn by the run's view version, like the card: once the
 * step is decided the buttons go and the outcome stays.
 */
import { runRef, type Run, type RunStep } from '../../domain/run.js';
import type { PlannedStep } from '../../domain/runbook/index.js';
import type { RunView } from '../../service/runs.js';
import { actions, button, context, RUN_ACTION, section, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, mention, safeText, slackDate } from './format.js';
import { failureText } from './runCard.js';
import { usergroupMention } from './reviewLines.js';
import { safePermalink } from './reviewRequest.js';

type ApprovalPlanned = Extract<PlannedStep, { kind: 'approval' }>;
type InputPlanned = Extract<PlannedStep, { kind: 'input' }>;

const stepValue = (run: Run, step: RunStep) => `${run.id}:${step.stepId}`;

/** A `dm: true` approval step DMs at most this many approvers (its users first, then its group's members). */
export const MAX_STEP_DMS = 25;

/** Who of an approval step's approvers get a DM, and how many were left out by the cap. */
export function approvalDmRecipients(approvers: readonly string[], creator: string): { recipients: string[]; leftOut: number } {
  const all = [...new Set(approvers)].filter((user) => user !== creator);
  return { recipients: all.slice(0, MAX_STEP_DMS), leftOut: Math.max(0, all.length - MAX_STEP_DMS) };
}

/** Who an approval step names: its users and its user group. */
export function approversText(planned: ApprovalPlanned, max = 20): string {
  const a = planned.approval;
  const who = [...a.users.slice(0, max).map(mention), ...(a.users.length > max ? ['…'] : []), ...(a.usergroup ? [usergroupMention(a.usergroup)] : [])];
  return who.join(', ') || '_nobody named_';
}

export function renderApprovalRequest(view: RunView, step: RunStep, planned: ApprovalPlanned, cardPermalink: string | null = null): SlackMessage {
  const { run } = view;
  const ref = runRef(run.id);
  const decisions = view.stepDecisions[step.id] ?? [];
  const approvals = decisions.filter((d) => d.verdict === 'approve').length;
  const blocks: Block[] = [
    section(
      `:raised_hand: *Approval needed* for step \`[${safeText(step.stepId, 80)}]\` of *${ref}* (runbook \`${safeText(run.reference, 64)}\`), started by ${mention(run.creator)}`,
    ),
    section(clip(`*Approvers*: ${planned.approval.approvals} of ${approversText(planned)}. The person who started the run cannot approve it.`, 3000)),
  ];
  if (run.message) blocks.push(section(`*Why*\n${safeText(run.message, 1500)}`));
  const lines = decisions
    .slice(0, 10)
    .map((d) =>
      d.verdict === 'approve'
        ? `:white_check_mark: Approved by ${mention(d.userId)} ${slackDate(d.at)}`
        : `:no_entry: Rejected by ${mention(d.userId)} ${slackDate(d.at)}${d.reason ? `: “${safeText(d.reason, 300)}”` : ''}`,
    );
  blocks.push(section(clip(`${approvals}/${planned.approval.approvals} approvals${lines.length > 0 ? `\n${lines.join('\n')}` : ''}`, 3000)));
  if (step.phase === 'paused') {
    if (step.timeoutAt) blocks.push(context(`Fails unless decided by ${slackDate(step.timeoutAt)}.`));
    // The DMs are capped: say so wherever the cap may cut (a group's size is only known when sending).
    if (planned.approval.dm && (planned.approval.users.length > MAX_STEP_DMS || planned.approval.usergroup !== null))
      blocks.push(
        context(`At most ${MAX_STEP_DMS} approvers get a DM (the users named first, then the group's members); everyone named can still decide here.`),
      );
    blocks.push(
      actions(`run_${run.id}_step_${step.id}`, [
        button(RUN_ACTION.stepApprove, 'Approve', stepValue(run, step), 'primary'),
        button(RUN_ACTION.stepReject, 'Reject', stepValue(run, step), 'danger'),
      ]),
    );
  } else {
    blocks.push(section(outcomeText(step)));
  }
  const card = safePermalink(cardPermalink);
  if (card) blocks.push(context(`<${card}|The run card>`));
  return { text: `Approval needed: ${step.stepId} of ${ref}`, blocks };
}

export function renderInputPrompt(view: RunView, step: RunStep, planned: InputPlanned): SlackMessage {
  const { run } = view;
  const from = planned.input.from;
  const who = from
    ? [...from.users.slice(0, 20).map(mention), ...(from.usergroup ? [usergroupMention(from.usergroup)] : [])].join(', ') || '_nobody named_'
    : mention(run.creator);
  const blocks: Block[] = [
    section(`:keyboard: *Input needed* for step \`[${safeText(step.stepId, 80)}]\` of *${runRef(run.id)}*: ${clip(who, 1500)}`),
    section(clip(`Fields: ${planned.input.fields.map((f) => `\`${safeText(f.label ?? f.name, 80)}\``).join(', ')}`, 3000)),
  ];
  if (step.phase === 'paused') {
    if (step.timeoutAt) blocks.push(context(`Fails unless given by ${slackDate(step.timeoutAt)}.`));
    blocks.push(actions(`run_${run.id}_input_${step.id}`, [button(RUN_ACTION.input, 'Provide input', stepValue(run, step), 'primary')]));
  } else {
    blocks.push(section(outcomeText(step)));
  }
  return { text: `Input needed: ${step.stepId} of ${runRef(run.id)}`, blocks };
}

/** An http step's log, posted once into the card's thread when it ends. */
export function renderHttpLog(step: RunStep): SlackMessage {
  const code = step.values?.http?.status;
  const status = typeof code === 'number' ? ` · status ${code}` : '';
  const head = `\`[${safeText(step.stepId, 80)}]\` http ${step.phase === 'succeeded' ? 'done' : step.phase}${status}${step.failureMessage ? ` — ${failureText(step.failureMessage, 300)}` : ''}`;
  return { text: head, blocks: [section(head), section(codeBlock(step.output ?? '', 2800))] };
}

/** The DM an approver of a `dm: true` approval step gets, linking to the request. */
export function renderApprovalDm(run: Run, step: RunStep, requestPermalink: string | null): SlackMessage {
  const link = safePermalink(requestPermalink);
  const text = `:raised_hand: ${mention(run.creator)}'s *${runRef(run.id)}* (runbook \`${safeText(run.reference, 64)}\`) waits for your approval of step \`[${safeText(step.stepId, 80)}]\`.`;
  return {
    text: `Approval needed: ${step.stepId} of ${runRef(run.id)}`,
    blocks: [section(text), section(link ? `<${link}|Open the request> to approve or reject it.` : 'The request with the buttons is in the review channel.')],
  };
}

function outcomeText(step: RunStep): string {
  if (step.phase === 'succeeded')
    return step.kind === 'input'
      ? `:white_check_mark: Given by ${step.decidedBy ? mention(step.decidedBy) : 'someone'}.`
      : `:white_check_mark: Approved${step.decidedBy ? ` (last by ${mention(step.decidedBy)})` : ''}.`;
  if (step.phase === 'failed') return `:x: ${step.failureMessage ? failureText(step.failureMessage, 1500) : 'Failed.'}`;
  if (step.phase === 'killed') return ':octagonal_sign: Ended: the run was stopped.';
  return step.phase;
}
