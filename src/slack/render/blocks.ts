/** Block Kit shapes we build, from @slack/types (re-exported by Bolt), plus tiny constructors. */
import type * as types from '@slack/types';

export type Block = types.KnownBlock;
export type ButtonElement = types.Button;

export interface SlackMessage {
  /** Notification and fallback text. */
  text: string;
  blocks: Block[];
}

export const section = (text: string): types.SectionBlock => ({ type: 'section', text: { type: 'mrkdwn', text } });

export const fields = (items: string[]): types.SectionBlock => ({
  type: 'section',
  fields: items.slice(0, 10).map((text) => ({ type: 'mrkdwn', text })),
});

export const context = (text: string): types.ContextBlock => ({ type: 'context', elements: [{ type: 'mrkdwn', text }] });

export const button = (actionId: string, text: string, value: string, style?: 'primary' | 'danger'): ButtonElement => ({
  type: 'button',
  action_id: actionId,
  text: { type: 'plain_text', text, emoji: true },
  value,
  ...(style ? { style } : {}),
});

/** Slack's limits of a confirm dialog: title 100 characters, text 300, each button 30. */
const fitPlain = (text: string, max: number) => ({ type: 'plain_text' as const, text: text.length > max ? `${text.slice(0, max - 1)}…` : text, emoji: true });

/**
 * A button that asks before it acts (Slack shows the dialog; the click is sent only once
 * confirmed). Plain text: nothing in it can mention anyone.
 */
export const withConfirm = (element: ButtonElement, dialog: { title: string; text: string; confirm: string; deny?: string }): ButtonElement => ({
  ...element,
  confirm: {
    title: fitPlain(dialog.title, 100),
    text: fitPlain(dialog.text, 300),
    confirm: fitPlain(dialog.confirm, 30),
    deny: fitPlain(dialog.deny ?? 'Cancel', 30),
  },
});

export const actions = (blockId: string, elements: ButtonElement[]): types.ActionsBlock => ({ type: 'actions', block_id: blockId, elements });

/**
 * Slack refuses a message whose blocks add up past roughly 12-13k characters of JSON
 * (msg_blocks_too_long); quotes, backslashes and newlines count twice there. We stay below.
 */
export const MAX_BLOCKS_JSON = 11_500;

/**
 * Renders with the full budgets, then with smaller ones until the blocks' JSON fits. `scale`
 * multiplies each part's character budget; the renderer decides what shrinks.
 */
export function fitBlocks<T extends SlackMessage>(render: (scale: number) => T): T {
  for (const scale of [1, 0.6, 0.35, 0.2, 0.1]) {
    const message = render(scale);
    if (JSON.stringify(message.blocks).length <= MAX_BLOCKS_JSON) return message;
  }
  return render(0.05);
}

/** The action ids our buttons carry; listeners match on them. */
export const ACTION = {
  approve: 'task_approve',
  reject: 'task_reject',
  run: 'task_run',
  kill: 'task_kill',
  cancel: 'task_cancel',
  resubmit: 'task_resubmit',
  again: 'task_again',
  homeNew: 'home_new_task',
} as const;

/**
 * The action ids of runs' buttons. Values: `<run id>` or `<run id>:<content version>` (Approve),
 * `<run id>:<qualified step id>` (a step's buttons), `<reference>` (Start).
 */
export const RUN_ACTION = {
  approve: 'run_approve',
  reject: 'run_reject',
  kill: 'run_kill',
  cancel: 'run_cancel',
  again: 'run_again',
  stepApprove: 'run_step_approve',
  stepReject: 'run_step_reject',
  input: 'run_step_input',
  start: 'runbook_start',
} as const;

export const RUN_REJECT_CALLBACK = 'run_reject_reason';
export const RUN_STEP_REJECT_CALLBACK = 'run_step_reject_reason';
export const RUN_INPUT_CALLBACK = 'run_step_input';
export const RUNBOOK_MODAL_CALLBACK = 'runbook_start';

export const TASK_MODAL_CALLBACK = 'task_new';
/** Block ids of the task form; field errors are keyed by these. */
export const TASK_FIELD = { target: 'target', script: 'script', type: 'type', message: 'message', delay: 'delay' } as const;

export const REJECT_MODAL_CALLBACK = 'task_reject_reason';
export const REJECT_REASON_BLOCK = 'reason';
export const REJECT_REASON_INPUT = 'reason_input';
