/**
 * The `/task start <reference>` form, for every runbook (a recipe is a one-step runbook): what it
 * runs (the runbooks it depends on first, then its own steps: kind, target, the first lines of
 * each script or request) and its version hash, one field per `options` / `input` argument
 * (argumentFields.ts), and an optional message. Fixed arguments are never shown, only counted.
 * The form carries the hash it showed (the plan hash, over the runbook and its dependencies): a
 * submit after any of them changed is refused. Opened as a
 * loading view (Slack's trigger expires in 3 s) and filled in with views.update. At most 100
 * blocks (Slack's limit for a view), however many steps and arguments.
 */
import type * as types from '@slack/types';
import { shortHash } from '../../domain/contentVersion.js';
import type { Runbook } from '../../domain/runbook/index.js';
import { ARG_VALUE, argumentInputs } from './argumentFields.js';
import { context, RUNBOOK_MODAL_CALLBACK, section } from './blocks.js';
import { safeText } from './format.js';
import { codeCharsFor, packTexts, stepTexts } from './runbookSteps.js';

export const RUNBOOK_MESSAGE_BLOCK = 'message';
export const RUNBOOK_VALUE = ARG_VALUE;

export interface RunbookFormMetadata {
  reference: string;
  channel: string | null;
  /** The plan version the form shows (64 hex): the runbook's hash, or with dependsOn the plan hash over them all. */
  hash?: string;
}

const MAX_BLOCKS = 100;
/** Blocks the steps may take at most; the rest is for the arguments and the message. */
const STEP_BLOCKS = 30;

const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const title = (text: string) => plain(clip(text, 24));

export function renderRunbookLoadingModal(reference: string): types.ModalView {
  return {
    type: 'modal',
    callback_id: RUNBOOK_MODAL_CALLBACK,
    title: title(`Start ${reference}`),
    close: plain('Cancel'),
    blocks: [section(':hourglass_flowing_sand: Loading the runbook…')],
  };
}

export function renderRunbookMissingModal(text: string): types.ModalView {
  return { type: 'modal', callback_id: RUNBOOK_MODAL_CALLBACK, title: title('Start a runbook'), close: plain('Close'), blocks: [section(text)] };
}

/**
 * `dependencies`: the runbooks that run first, in order (dependsOn, transitively); their steps
 * are shown qualified by their reference, as the run card will name them.
 */
export function renderRunbookModal(runbook: Runbook, metadata: RunbookFormMetadata & { hash: string }, dependencies: readonly Runbook[] = []): types.ModalView {
  const fixed = runbook.arguments.filter((a) => a.kind === 'fixed').length;
  const stepCount = [runbook, ...dependencies].reduce((n, r) => n + r.steps.flat().length, 0);
  const codeChars = codeCharsFor(stepCount);
  const steps = [
    ...dependencies.flatMap((dep) => stepTexts(dep, codeChars, `${dep.reference}.`)),
    ...stepTexts(runbook, codeChars, dependencies.length > 0 ? `${runbook.reference}.` : ''),
  ];
  const blocks: types.KnownBlock[] = [
    section(
      `*${safeText(runbook.name, 150)}* (\`${safeText(runbook.reference, 64)}\`)${runbook.description ? `\n${safeText(runbook.description, 2000)}` : ''}`,
    ),
  ];
  if (dependencies.length > 0) blocks.push(context(`Runs first: ${dependencies.map((d) => `\`${safeText(d.reference, 64)}\``).join(' → ')}`.slice(0, 2000)));
  const packed = packTexts(steps);
  const shown = packed.slice(0, STEP_BLOCKS);
  blocks.push(...shown.map((p) => section(p.text)));
  const hidden = steps.length - shown.reduce((n, p) => n + p.count, 0);
  blocks.push(
    context(
      `${stepCount} step${stepCount === 1 ? '' : 's'} · ${dependencies.length > 0 ? 'plan version (with what runs first)' : 'runbook version'} \`${shortHash(metadata.hash)}\`${hidden > 0 ? ` · ${hidden} more steps not shown` : ''} · \`/task runbook show ${safeText(runbook.reference, 64)}\` shows every step, \`/task runbook export\` the whole definition. Reviewers see the same content.`,
    ),
  );
  if (fixed > 0) blocks.push(context(`${fixed} fixed argument${fixed > 1 ? 's are' : ' is'} set by the runbook.`));
  // Room for the message block: arguments past Slack's 100 blocks could not be asked for anyway.
  blocks.push(...argumentInputs(runbook.arguments).slice(0, MAX_BLOCKS - blocks.length - 1));
  blocks.push({
    type: 'input',
    block_id: RUNBOOK_MESSAGE_BLOCK,
    label: plain('Why'),
    optional: true,
    element: {
      type: 'plain_text_input',
      action_id: RUNBOOK_VALUE,
      max_length: 2000,
      ...(runbook.message ? { initial_value: clip(runbook.message, 2000) } : {}),
    },
  });
  return {
    type: 'modal',
    callback_id: RUNBOOK_MODAL_CALLBACK,
    private_metadata: JSON.stringify(metadata),
    title: title(`Start ${runbook.reference}`),
    submit: plain('Start'),
    close: plain('Cancel'),
    blocks,
  };
}
