/** The modal a reviewer fills in to reject (a task, a run, a run's approval step): an optional reason, shown on the card and the request. */
import type * as types from '@slack/types';
import { taskRef } from '../../domain/task.js';
import { REJECT_MODAL_CALLBACK, REJECT_REASON_BLOCK, REJECT_REASON_INPUT, section } from './blocks.js';

export function renderRejectModal(taskId: number): types.ModalView {
  return rejectModal({
    callbackId: REJECT_MODAL_CALLBACK,
    metadata: { taskId },
    title: `Reject ${taskRef(taskId)}`,
    explanation: `Rejecting ${taskRef(taskId)} means it will never run. The author sees your reason.`,
  });
}

/** `title` is cut to Slack's 24 characters; `metadata` comes back with the submission. */
export function rejectModal(input: { callbackId: string; metadata: Record<string, unknown>; title: string; explanation: string }): types.ModalView {
  return {
    type: 'modal',
    callback_id: input.callbackId,
    private_metadata: JSON.stringify(input.metadata),
    title: { type: 'plain_text', text: input.title.length > 24 ? `${input.title.slice(0, 23)}…` : input.title },
    submit: { type: 'plain_text', text: 'Reject' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(input.explanation),
      {
        type: 'input',
        block_id: REJECT_REASON_BLOCK,
        optional: true,
        label: { type: 'plain_text', text: 'Reason' },
        element: {
          type: 'plain_text_input',
          action_id: REJECT_REASON_INPUT,
          multiline: true,
          max_length: 1000,
          placeholder: { type: 'plain_text', text: 'What should change before this can run?' },
        },
      },
    ],
  };
}
