/**
 * The task form (`/task`, `/task new`, Home's "New task", Resubmit after a reject): target
 * (only those the user may use, with their descriptions), script, type, why, and an optional
 * grace delay. It is opened as a loading view at once (Slack's trigger expires in 3 s) and
 * then filled in with views.update.
 */
import type * as types from '@slack/types';
import { SCRIPT_TYPES } from '../../domain/scriptTypes.js';
import { taskRef } from '../../domain/task.js';
import { context, section, TASK_FIELD, TASK_MODAL_CALLBACK } from './blocks.js';

/** Slack: a plain_text_input holds at most 3000 characters. */
export const MODAL_SCRIPT_CHARS = 3000;
const MAX_OPTIONS = 100;

export interface TaskFormMetadata {
  /** Where the card goes (the channel the command was typed in), if anywhere. */
  channel: string | null;
  resubmitOf: number | null;
}

export interface TaskFormDefaults {
  target?: string;
  script?: string;
  message?: string | null;
  type?: string;
}

const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
const clipPlain = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function renderLoadingModal(): types.ModalView {
  return {
    type: 'modal',
    callback_id: TASK_MODAL_CALLBACK,
    title: plain('New task'),
    close: plain('Cancel'),
    blocks: [section(':hourglass_flowing_sand: Loading your targets…')],
  };
}

export function renderTaskModal(
  targets: ReadonlyArray<{ name: string; description: string | null }>,
  metadata: TaskFormMetadata,
  defaults: TaskFormDefaults = {},
): types.ModalView {
  const title = metadata.resubmitOf ? `Resubmit ${taskRef(metadata.resubmitOf)}` : 'New task';
  if (targets.length === 0) {
    return {
      type: 'modal',
      callback_id: TASK_MODAL_CALLBACK,
      title: plain(clipPlain(title, 24)),
      close: plain('Close'),
      blocks: [section('There is no target you can use: each one needs reviewers other than you, or none is configured. Ask the countersign admins.')],
    };
  }
  const options = targets.slice(0, MAX_OPTIONS).map((target) => ({
    text: plain(clipPlain(target.name, 75)),
    value: target.name,
    ...(target.description ? { description: plain(clipPlain(target.description, 75)) } : {}),
  }));
  const initialTarget = options.find((option) => option.value === defaults.target);
  const typeOptions = SCRIPT_TYPES.map((type) => ({ text: plain(type), value: type }));
  const initialType = typeOptions.find((option) => option.value === defaults.type);
  const scriptTooLong = (defaults.script ?? '').length > MODAL_SCRIPT_CHARS;
  const blocks: types.KnownBlock[] = [
    {
      type: 'input',
      block_id: TASK_FIELD.target,
      label: plain('Target'),
      element: {
        type: 'static_select',
        action_id: 'value',
        placeholder: plain('Where it runs'),
        options,
        ...(initialTarget ? { initial_option: initialTarget } : {}),
      },
    },
    {
      type: 'input',
      block_id: TASK_FIELD.script,
      label: plain('Script'),
      hint: plain(`Up to ${MODAL_SCRIPT_CHARS} characters here; longer scripts: /task run with a fenced block (64 KiB).`),
      element: {
        type: 'plain_text_input',
        action_id: 'value',
        multiline: true,
        max_length: MODAL_SCRIPT_CHARS,
        placeholder: plain('df -h /var'),
        ...(defaults.script && !scriptTooLong ? { initial_value: defaults.script } : {}),
      },
    },
    {
      type: 'input',
      block_id: TASK_FIELD.type,
      optional: true,
      label: plain('Type'),
      hint: plain("The interpreter; the target's own type when left empty."),
      element: {
        type: 'static_select',
        action_id: 'value',
        placeholder: plain("Target's default"),
        options: typeOptions,
        ...(initialType ? { initial_option: initialType } : {}),
      },
    },
    {
      type: 'input',
      block_id: TASK_FIELD.message,
      optional: true,
      label: plain('Why'),
      hint: plain('Reviewers see this first.'),
      element: {
        type: 'plain_text_input',
        action_id: 'value',
        max_length: 1000,
        placeholder: plain('Disk is filling up on web-3'),
        ...(defaults.message ? { initial_value: defaults.message.slice(0, 1000) } : {}),
      },
    },
    {
      type: 'input',
      block_id: TASK_FIELD.delay,
      optional: true,
      label: plain('Run in'),
      hint: plain('A grace delay such as 10m or 2h; until then anyone allowed can cancel it.'),
      element: { type: 'plain_text_input', action_id: 'value', max_length: 10, placeholder: plain('now') },
    },
  ];
  if (scriptTooLong)
    blocks.splice(
      1,
      0,
      context(
        `The script of ${taskRef(metadata.resubmitOf ?? 0)} is longer than a form holds (${MODAL_SCRIPT_CHARS} characters): paste the edited script, or resubmit it with /task run.`,
      ),
    );
  if (targets.length > MAX_OPTIONS) blocks.push(context(`Showing ${MAX_OPTIONS} of ${targets.length} targets; use /task run for the others.`));
  return {
    type: 'modal',
    callback_id: TASK_MODAL_CALLBACK,
    private_metadata: JSON.stringify(metadata),
    title: plain(clipPlain(title, 24)),
    submit: plain('Create'),
    close: plain('Cancel'),
    blocks,
  };
}

/** What the form's answer became: shown in place of the form. */
export function renderCreatedModal(text: string): types.ModalView {
  return { type: 'modal', callback_id: `${TASK_MODAL_CALLBACK}_done`, title: plain('Task created'), close: plain('Close'), blocks: [section(text)] };
}
