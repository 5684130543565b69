/**
 * The form an input step opens from its "Provide input" button: one field per declared field
 * (argumentFields.ts: options as a select, input with its pattern in the hint). The run and step
 * ride in private_metadata; RunService.submitInput checks everything again on submit, and its
 * errors land on the field they name.
 */
import type * as types from '@slack/types';
import { runRef } from '../../domain/run.js';
import type { PlannedStep } from '../../domain/runbook/index.js';
import { argumentInputs } from './argumentFields.js';
import { RUN_INPUT_CALLBACK, section } from './blocks.js';
import { safeText } from './format.js';

export interface InputModalMetadata {
  runId: number;
  stepId: string;
}

export function renderInputModal(runId: number, reference: string, planned: Extract<PlannedStep, { kind: 'input' }>): types.ModalView {
  const title = `Input for ${runRef(runId)}`;
  const metadata: InputModalMetadata = { runId, stepId: planned.id };
  return {
    type: 'modal',
    callback_id: RUN_INPUT_CALLBACK,
    private_metadata: JSON.stringify(metadata),
    title: { type: 'plain_text', text: title.length > 24 ? `${title.slice(0, 23)}…` : title },
    submit: { type: 'plain_text', text: 'Submit' },
    close: { type: 'plain_text', text: 'Cancel' },
    blocks: [
      section(
        `Step \`[${safeText(planned.id, 80)}]\` of ${runRef(runId)} (runbook \`${safeText(reference, 64)}\`) waits for these values; later steps use them.`,
      ),
      ...argumentInputs(planned.input.fields.slice(0, 90)),
    ],
  };
}

/** The metadata a submitted input form carries, or null when it is not ours. */
export function readInputMetadata(privateMetadata: string | undefined): InputModalMetadata | null {
  try {
    const parsed = JSON.parse(privateMetadata || '{}') as { runId?: unknown; stepId?: unknown };
    if (typeof parsed.runId !== 'number' || !Number.isSafeInteger(parsed.runId) || typeof parsed.stepId !== 'string') return null;
    return { runId: parsed.runId, stepId: parsed.stepId };
  } catch {
    return null;
  }
}
