/**
 * The Slack side of the Workflow Builder step (issue 13): Bolt's `app.function` listener for
 * `function_executed`, and completions sent with `functions.completeSuccess` / `completeError`.
 *
 * The event is acknowledged only once it is stored (src/service/workflowSteps.ts receive): if
 * Postgres cannot take it, no ack, so Slack delivers it again rather than losing it.
 *
 * Completions use the bot token, not the function's own token (`bot_access_token` in the event,
 * which Bolt would put in the listener's client): a run may end hours later, on another replica
 * or after a restart, and that token lives only as long as the execution and would have to be
 * stored as a secret. Slack accepts the bot token for functions.complete* (no scope needed).
 */
import type { App } from '@slack/bolt';
import { WebAPIPlatformError, WebAPIRateLimitedError, type WebClient } from '@slack/web-api';
import type { StepCompletion } from '../domain/workflowStep.js';
import type { Logger } from '../log.js';
import { RetryLater, type CompletionOutcome, type StepCompleter, type WorkflowSteps } from '../service/workflowSteps.js';

/** Slack's answers meaning the execution is not waiting for us (any more): nothing to retry. */
const GONE = new Set(['function_execution_not_found', 'execution_not_in_running_state']);
/** Slack refused what we sent as the step's outputs. */
const INVALID = new Set(['parameter_validation_failed', 'invalid_arguments']);

export function registerWorkflowStep(app: App, steps: WorkflowSteps, log: Logger): void {
  // A literal, so the manifest test's scan of src/ finds the step (it equals WORKFLOW_STEP_CALLBACK_ID, checked there).
  app.function('run_countersign_runbook', { autoAcknowledge: false }, async ({ event, ack }) => {
    let executionId: number;
    try {
      executionId = (await steps.receive(event)).id;
    } catch (error) {
      log.error(
        { err: error, functionExecutionId: event.function_execution_id },
        'storing a workflow step execution failed: not acknowledged, so Slack delivers it again',
      );
      return;
    }
    await ack();
    void steps.advance(executionId);
  });
}

/** Completions over a WebClient with the bot token (the background one: 429s rejected, no retries of its own). */
export function webApiCompleter(client: WebClient): StepCompleter {
  return {
    async complete(functionExecutionId: string, completion: StepCompletion): Promise<CompletionOutcome> {
      try {
        if (completion.kind === 'success') await client.functions.completeSuccess({ function_execution_id: functionExecutionId, outputs: completion.outputs });
        else await client.functions.completeError({ function_execution_id: functionExecutionId, error: completion.error });
        return { outcome: 'sent' };
      } catch (error) {
        if (error instanceof WebAPIRateLimitedError) throw new RetryLater('functions.complete* was rate limited', Math.max(1, error.retryAfter) * 1000);
        if (error instanceof WebAPIPlatformError) {
          const code = String(error.data.error);
          if (GONE.has(code)) return { outcome: 'gone', error: code };
          if (INVALID.has(code)) return { outcome: 'invalid', error: code };
        }
        throw error;
      }
    },
  };
}
