/**
 * Slack gives a command 3 s for its acknowledgement: an answer ready within ACK_BUDGET_MS goes
 * in the ack, a later one follows through response_url after a "working on it" ack. Shared by
 * the /task commands (listeners.ts) and the runbook commands (runbookCommands.ts).
 */
import type { AckFn, RespondArguments, RespondFn } from '@slack/bolt';
import type { Logger } from '../log.js';
import type { SlackMessage } from './render/blocks.js';

/** Past this, the ack says "working on it" and the answer follows through response_url. */
export const ACK_BUDGET_MS = 2000;
export const OUR_FAULT = 'Something went wrong on our side and nothing was changed. Try again in a minute; if it keeps failing, tell the countersign admins.';

/** Acks with the answer when it is ready within the budget, else acks now and answers through response_url. */
export async function answerWithin(
  ack: AckFn<string | RespondArguments>,
  respond: RespondFn,
  work: Promise<SlackMessage | { text: string }>,
  log: Logger,
  working = ':hourglass: Looking…',
): Promise<void> {
  const early = await withinBudget(work);
  if (early === 'late') await ack({ response_type: 'ephemeral', text: working });
  const settled = early === 'late' ? await settle(work) : early;
  let message: RespondArguments;
  if (settled.ok) message = { response_type: 'ephemeral', ...settled.value };
  else {
    log.error({ err: settled.error }, 'answering a /task command failed');
    message = { response_type: 'ephemeral', text: `:x: ${OUR_FAULT}` };
  }
  if (early === 'late') await respond({ ...message, replace_original: false });
  else await ack(message);
}

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
export const settle = <T>(promise: Promise<T>): Promise<Settled<T>> =>
  promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
/**
 * The work's outcome when it settles within `ms`, else 'late'. The timer is cleared when the work
 * wins: a race against a bare sleep kept every command's outcome (its task row) reachable from a
 * live timer for the whole budget, long enough to be copied into the old generation.
 */
export function withinBudget<T>(work: Promise<T>, ms = ACK_BUDGET_MS): Promise<Settled<T> | 'late'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('late'), ms);
    timer.unref();
    void settle(work).then((settled) => {
      clearTimeout(timer);
      resolve(settled);
    });
  });
}
