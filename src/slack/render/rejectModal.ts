/** The modal a reviewer fills in to reject: an optional reason, shown on the card and the request. */
import type * as types from '@slack/types';
import { taskRef } from '../../domain/task.js';
import { REJECT_MODAL_CALLBACK, REJECT_REASON_BLOCK, REJECT_REASON_INPUT, section } from './blocks.js';

export function renderRejectModal(taskId: number): types.ModalView {
  return {
    type: 'modal',
    callback_id: REJECT_MODAL_CALLBACK,
    private_metadata: JSON.stringify({ taskId }),
    title: { type: 'plain_text', text: `Reject ${taskRef(taskId)}` },
    submit: { type: 'plain_text', text: 'Reject' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(`Rejecting ${taskRef(taskId)} means it will never run. The author sees your reason.`),
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
