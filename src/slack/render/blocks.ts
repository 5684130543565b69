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

export const actions = (blockId: string, elements: ButtonElement[]): types.ActionsBlock => ({ type: 'actions', block_id: blockId, elements });

/** The action ids our buttons carry; listeners match on them. */
export const ACTION = {
  approve: 'task_approve',
  reject: 'task_reject',
  run: 'task_run',
  kill: 'task_kill',
} as const;

export const REJECT_MODAL_CALLBACK = 'task_reject_reason';
export const REJECT_REASON_BLOCK = 'reason';
export const REJECT_REASON_INPUT = 'reason_input';
