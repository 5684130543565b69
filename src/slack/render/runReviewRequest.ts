/**
 * A run's review request, posted in the combined policy's channel: who asks and why, the
 * arguments (fixed ones hidden), every step's content in full (each script with its interpreter
 * and target, each http request, approval and input steps), each group's progress, and Approve
 * (carrying the run's content version) / Reject while it waits. What cannot be shown whole here
 * is uploaded to the thread as one file of every step (`planClipped`), named by content version:
 * anything cut — a step past the first 25, a script, an http request, a `with` value, an
 * argument, a list of people or options, a step's text over the block's 3000 characters — marks
 * the plan clipped, so a reviewer never approves what they could not read.
 */
import { shortHash } from '../../domain/contentVersion.js';
import { reviewExpiresAt, type ReviewPolicy } from '../../domain/review.js';
import { runRef, type Run } from '../../domain/run.js';
import type { PlannedStep } from '../../domain/runbook/index.js';
import { markFixedCopies, type TaskArgument } from '../../domain/recipe.js';
import { escapeSlackText } from '../../domain/slackText.js';
import type { RunView } from '../../service/runs.js';
import { wholeScriptInThread } from '../wholeScript.js';
import { hiddenCharactersWarning, runApprovalFacts, runsAs } from './approvalFacts.js';
import { actions, button, context, fitBlocks, RUN_ACTION, section, type Block, type SlackMessage } from './blocks.js';
import { clip, codeBlock, fitsInCodeBlock, mention, safeText, slackDate } from './format.js';
import { groupWhoText, reviewText, usergroupMention } from './reviewLines.js';
import { failureText, RUN_STATUS_LABEL } from './runCard.js';
import { safePermalink } from './reviewRequest.js';

export interface RunReviewRequestMessage extends SlackMessage {
  /** Some step is not shown whole: the caller uploads `planText(run)` into the thread. */
  planClipped: boolean;
}

export interface RunReviewContext {
  cardPermalink?: string | null;
}

/** Steps shown one block each; past this, the rest are in the uploaded file only. */
const MAX_STEP_BLOCKS = 25;
const STEP_CODE_CHARS = 2400;
const SECTION_CHARS = 3000;
/** People and options listed by name; past these, the rest are in the uploaded file only. */
const MAX_LISTED = 20;
const MAX_OPTIONS = 10;

/** Clips as safeText, clip and codeBlock do, and remembers whether anything was cut. */
class Cuts {
  any = false;
  text(value: string, max: number): string {
    if (escapeSlackText(value).length > max) this.any = true;
    return safeText(value, max);
  }
  section(text: string, max = SECTION_CHARS): string {
    if (text.length > max) this.any = true;
    return clip(text, max);
  }
  code(source: string, max: number): string {
    if (!fitsInCodeBlock(source, max)) this.any = true;
    return codeBlock(source, max);
  }
  list<T>(items: readonly T[], max: number): T[] {
    if (items.length > max) this.any = true;
    return items.slice(0, max);
  }
}

export function renderRunReviewRequest(view: RunView, policy: ReviewPolicy, ctx: RunReviewContext = {}): RunReviewRequestMessage {
  return fitBlocks((scale) => renderAtScale(view, policy, ctx, scale));
}

function renderAtScale(view: RunView, policy: ReviewPolicy, ctx: RunReviewContext, scale: number): RunReviewRequestMessage {
  const { run } = view;
  const ref = runRef(run.id);
  const budget = (chars: number) => Math.max(40, Math.round(chars * scale));
  const blocks: Block[] = [
    section(
      `:mag: *Review requested*: ${mention(run.creator)} wants to start *${ref}* of runbook \`${safeText(run.reference, 64)}\` · *${RUN_STATUS_LABEL[run.status]}*`,
    ),
    section(`*Why*\n${run.message ? safeText(run.message, budget(2000)) : '_no message given_'}`),
  ];
  const cuts = new Cuts();
  const args = argumentsText(run.arguments, budget, cuts);
  if (args) blocks.push(section(cuts.section(`*Arguments*\n${args}`)));
  const planned = run.plan.groups.flat();
  // One block for every step's hidden-character warning, not one each: 25 steps with a warning
  // apiece would pass Slack's 50 blocks, and the request would never be posted.
  const warnings: string[] = [];
  for (const step of cuts.list(planned, MAX_STEP_BLOCKS)) {
    const text = stepBlock(
      step,
      run.plan.groups.findIndex((g) => g.includes(step)),
      budget(STEP_CODE_CHARS),
      cuts,
    );
    blocks.push(section(text));
    const hidden = hiddenCharactersWarning(stepSource(step), `step ${step.id}`);
    if (hidden) warnings.push(hidden);
  }
  if (warnings.length > 0) blocks.push(section(safeText(warnings.join('\n'), 3000)));
  const planClipped = cuts.any;
  if (planClipped) blocks.push(context(wholeScriptInThread(shortHash(run.contentVersion), 'plan')));
  // What an approval names besides the steps: the runbook, its version, the targets, the content version.
  blocks.push(context(runApprovalFacts(run)));
  const shownUsers = Math.max(3, Math.round(20 * scale));
  const members = policy.groups.map((group) => `*${safeText(group.name, 80)}* (${group.approvals} of ${groupWhoText(group, shownUsers)})`).join('; ');
  const expiresAt = run.status === 'pending-review' ? reviewExpiresAt(policy, run.statusChangedAt) : null;
  const expires = expiresAt ? ` Expires ${slackDate(expiresAt)} unless approved by then.` : '';
  blocks.push(context(`${clip(`Needs approval from ${members}. Nobody approves their own run.`, budget(2000))}${expires}`));
  const current = view.decisions.filter((d) => d.verdict === 'reject' || d.contentVersion === run.contentVersion);
  blocks.push(section(clip(reviewText(policy, run.creator, current, scale), 3000)));
  if (run.status === 'rejected' && run.failureMessage) blocks.push(section(`:hourglass: ${failureText(run.failureMessage, budget(1500))}`));
  const card = safePermalink(ctx.cardPermalink);
  if (card && run.channelId && /^[CGD][A-Z0-9]+$/.test(run.channelId))
    blocks.push(context(`:speech_balloon: Asked in <#${run.channelId}>: <${card}|open the run card>`));
  if (run.status === 'pending-review') {
    // Approve carries the full content version it was drawn with: anything else is refused.
    blocks.push(
      actions(`run_review_${run.id}`, [
        button(RUN_ACTION.approve, 'Approve', `${run.id}:${run.contentVersion}`, 'primary'),
        button(RUN_ACTION.reject, 'Reject', String(run.id), 'danger'),
      ]),
    );
  }
  return { text: `Review requested: ${ref} of ${run.reference} by ${mention(run.creator)}`, blocks, planClipped };
}

/** One step as the reviewer reads it; what is cut to fit is recorded in `cuts`. */
function stepBlock(step: PlannedStep, group: number, codeChars: number, cuts: Cuts): string {
  const head = `*\`[${safeText(step.id, 80)}]\`*${step.name ? ` ${safeText(step.name, 100)}` : ''} · group ${group + 1}${step.continueOnFailure ? ' · continues on failure' : ''}`;
  switch (step.kind) {
    case 'script': {
      const withLines =
        step.script.with.length > 0
          ? `\nWith ${step.script.with.map((w) => `\`ARG_${cuts.text(w.name, 64)}\` = \`${cuts.text(w.value, 200).replace(/`/g, "'")}\``).join(', ')}`
          : '';
      const room = Math.max(60, codeChars - withLines.length);
      return cuts.section(`${head}\n${runsAs(step.script.type, step.script.target)}${withLines}\n${cuts.code(step.script.script, room)}`);
    }
    case 'http': {
      const target = step.http.target ? ` under \`${safeText(step.http.target, 80)}\`` : '';
      return cuts.section(`${head}\nHTTP request${target}\n${cuts.code(httpText(step), codeChars)}`);
    }
    case 'approval': {
      const a = step.approval;
      const users = cuts.list(a.users, MAX_LISTED);
      const who = [...users.map(mention), ...(users.length < a.users.length ? ['…'] : []), ...(a.usergroup ? [usergroupMention(a.usergroup)] : [])].join(', ');
      return cuts.section(
        `${head}\n:raised_hand: Approval: ${a.approvals} of ${who || '_nobody named_'}${a.timeoutMs ? `, within ${Math.round(a.timeoutMs / 1000)} s` : ''}`,
      );
    }
    case 'input': {
      const i = step.input;
      const users = i.from ? cuts.list(i.from.users, MAX_LISTED) : [];
      const from = i.from
        ? [...users.map(mention), ...(users.length < i.from.users.length ? ['…'] : []), ...(i.from.usergroup ? [usergroupMention(i.from.usergroup)] : [])].join(
            ', ',
          )
        : 'whoever started the run';
      const names = i.fields.map(
        (f) =>
          `\`${cuts.text(f.name, 64)}\`${f.kind === 'input' && f.pattern !== undefined ? ` matching \`/${cuts.text(f.pattern, 200).replace(/`/g, "'")}/\`` : ''}${
            f.kind === 'options'
              ? ` (one of ${cuts
                  .list(f.options, MAX_OPTIONS)
                  .map((o) => `\`${cuts.text(o, 75)}\``)
                  .join(', ')}${f.options.length > MAX_OPTIONS ? ', …' : ''})`
              : ''
          }`,
      );
      return cuts.section(`${head}\n:keyboard: Input from ${from}: ${names.join(', ')}`);
    }
  }
}

/** An http step as text: request line, headers, body, what counts as success. */
function httpText(step: Extract<PlannedStep, { kind: 'http' }>): string {
  const h = step.http;
  const lines = [`${h.method} ${h.url}`, ...h.headers.map((header) => `${header.name}: ${header.value}`)];
  if (h.body !== undefined) lines.push('', JSON.stringify(h.body, null, 2));
  lines.push(
    '',
    `success: status ${h.successStatus ? h.successStatus.join(' or ') : '2xx'}${h.successPattern !== null ? `, body matching ${h.successPattern}` : ''}; timeout ${Math.round(h.timeoutMs / 1000)} s${h.compress ? '; compressed' : ''}`,
  );
  return lines.join('\n');
}

/** The text a step's hidden characters are looked for in. */
function stepSource(step: PlannedStep): string {
  if (step.kind === 'script') return [step.script.script, ...step.script.with.map((w) => w.value)].join('\n');
  if (step.kind === 'http') return httpText(step);
  if (step.kind === 'input') return step.input.fields.map((f) => (f.kind === 'input' ? (f.pattern ?? '') : f.options.join('\n'))).join('\n');
  return '';
}

function argumentsText(args: Record<string, TaskArgument[]>, budget: (chars: number) => number, cuts: Cuts): string {
  return Object.entries(args)
    .filter(([, values]) => values.length > 0)
    .map(
      ([runbook, values]) =>
        `\`${safeText(runbook, 64)}\`: ${markFixedCopies(values)
          .map(
            (a) =>
              `*${cuts.text(a.name, 64)}* = ${a.kind === 'fixed' ? '•••' : a.value === '' ? '_empty_' : `\`${cuts.text(a.value, budget(300)).replace(/`/g, "'")}\``}`,
          )
          .join(', ')}`,
    )
    .join('\n');
}

/**
 * Everything that runs, in full, as plain text: the file uploaded to the review request's thread
 * when the request could not show it all. Every argument (fixed values, and values holding one,
 * as •••), every step's interpreter, target, script and `with` values (as written: templates,
 * filled in only when the step starts), every http request, approver and input field.
 */
export function planText(run: Run): string {
  const out: string[] = [`${runRef(run.id)} of runbook ${run.reference}, content version ${run.contentVersion}`, ''];
  const runbooks = run.plan.runbooks.filter((ref) => (run.arguments[ref] ?? []).length > 0);
  if (runbooks.length > 0) {
    out.push('== arguments');
    for (const ref of runbooks)
      for (const a of markFixedCopies(run.arguments[ref] ?? [])) out.push(`${ref}: ${a.name} = ${a.kind === 'fixed' ? '•••' : a.value}`);
    out.push('');
  }
  run.plan.groups.forEach((group, index) => {
    out.push(`== group ${index + 1}${group.length > 1 ? ' (steps run at once)' : ''}`);
    for (const step of group) {
      out.push(`-- [${step.id}] ${step.kind}${step.name ? `: ${step.name}` : ''}${step.continueOnFailure ? ' (continues on failure)' : ''}`);
      if (step.kind === 'script') {
        out.push(`runs as ${step.script.type} on ${step.script.target}`);
        for (const w of step.script.with) out.push(`with ARG_${w.name} = ${w.value}`);
        out.push('script:', step.script.script);
      } else if (step.kind === 'http') {
        if (step.http.target) out.push(`under target ${step.http.target}`);
        out.push(httpText(step));
      } else if (step.kind === 'approval') {
        const a = step.approval;
        out.push(
          `approval: ${a.approvals} of ${[...a.users, ...(a.usergroup ? [a.usergroup] : [])].join(', ')}${a.timeoutMs ? `, within ${Math.round(a.timeoutMs / 1000)} s` : ''}`,
        );
      } else {
        const i = step.input;
        out.push(`input from ${i.from ? [...i.from.users, ...(i.from.usergroup ? [i.from.usergroup] : [])].join(', ') : 'whoever started the run'}:`);
        for (const f of i.fields)
          out.push(
            `  ${f.name}${f.kind === 'input' && f.pattern !== undefined ? ` matching /${f.pattern}/` : ''}${f.kind === 'options' ? ` one of ${f.options.join(', ')}` : ''}`,
          );
      }
      out.push('');
    }
  });
  return out.join('\n');
}

/** The DM a member of a `dm: true` review group gets: who asks, which runbook, why, where to review. */
export function renderRunReviewDm(run: Run, groups: readonly string[], reviewPermalink: string | null): SlackMessage {
  const ref = runRef(run.id);
  const as = groups.length > 0 ? ` as a member of ${groups.map((name) => `*${safeText(name, 80)}*`).join(', ')}` : '';
  const link = safePermalink(reviewPermalink);
  const where = run.reviewChannel && /^[CGD][A-Z0-9]+$/.test(run.reviewChannel) ? ` in <#${run.reviewChannel}>` : '';
  return {
    text: `Review requested: ${ref} of ${run.reference} by ${mention(run.creator)}`,
    blocks: [
      section(`:mag: ${mention(run.creator)} asks for your review of *${ref}* of runbook \`${safeText(run.reference, 64)}\`${as}.`),
      section(`*Why*\n${run.message ? safeText(run.message, 2000) : '_no message given_'}`),
      section(
        link
          ? `<${link}|Open the review request>${where} to read every step and approve or reject it.`
          : `The review request with every step and the buttons is${where || ' in the review channel'}.`,
      ),
    ],
  };
}
