/** Domain objects as the API shows them: ISO dates, no internal columns (Slack ts, claims, tokens). */
import type { ReviewDecision } from '../domain/review.js';
import type { Execution, ExecutionStep, Task } from '../domain/task.js';
import type { EventRow } from '../store/events.js';
import { fixedValuesToMask, markFixedCopies } from '../domain/recipe.js';
import { SecretMasker } from '../domain/secretMasker.js';

/** How a fixed argument's value is shown: never. */
export const HIDDEN = '•••';

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

export interface Links {
  statusUrl(taskId: number): string;
  logUrl(taskId: number): string;
}

export function taskJson(task: Task, links: Links, reviews?: readonly ReviewDecision[], secrets: readonly string[] = []) {
  const mask = (text: string) => {
    const masker = new SecretMasker([...secrets, ...fixedValuesToMask(task.arguments)]);
    return masker.push(text) + masker.end();
  };
  return {
    id: task.id,
    status: task.status,
    target: task.target,
    author: task.author,
    type: task.type,
    script: task.script,
    message: task.message,
    source: task.source,
    createdAt: task.createdAt.toISOString(),
    statusChangedAt: task.statusChangedAt.toISOString(),
    startedAt: iso(task.startedAt),
    finishedAt: iso(task.finishedAt),
    result: { ...task.result },
    contentVersion: task.contentVersion,
    // Fixed values never leave the server.
    arguments: markFixedCopies(task.arguments ?? []).map((a) => ({ name: a.name, kind: a.kind, value: a.kind === 'fixed' ? HIDDEN : a.value })),
    recipe: task.recipe ? { name: task.recipe.name, hash: task.recipe.hash, ...(task.recipe.writtenBy ? { writtenBy: task.recipe.writtenBy } : {}) } : null,
    trigger: task.runStep ? { kind: task.source, run: task.runStep.runId } : { kind: task.source },
    // Outputs may hold what a script chose to write: its target's secrets and fixed values masked.
    outputs: task.outputs ? Object.fromEntries(Object.entries(task.outputs).map(([k, v]) => [k, mask(v)])) : null,
    ...(reviews
      ? {
          reviews: reviews.map((r) => ({
            userId: r.userId,
            verdict: r.verdict,
            reason: r.reason,
            at: r.at.toISOString(),
            contentVersion: r.contentVersion ?? null,
          })),
        }
      : {}),
    statusUrl: links.statusUrl(task.id),
    logUrl: links.logUrl(task.id),
  };
}

export function executionJson(execution: Execution, steps: readonly ExecutionStep[], tails?: ReadonlyMap<number, string>) {
  return {
    id: execution.id,
    taskId: execution.taskId,
    phase: execution.phase,
    statusVersion: execution.statusVersion,
    stopRequested: execution.desiredPhase === 'stopped',
    stopRequestedBy: execution.stopRequestedBy,
    startedAt: execution.startedAt.toISOString(),
    finishedAt: iso(execution.finishedAt),
    exitCode: execution.exitCode,
    failureMessage: execution.failureMessage,
    outputBytes: execution.outputBytes,
    plan: execution.plan.map((group) => group.map((a) => ({ host: a.host, port: a.port, user: a.user }))),
    steps: steps.map((step) => ({
      id: step.id,
      group: step.groupIndex,
      host: step.host,
      port: step.port,
      user: step.user,
      phase: step.phase,
      exitCode: step.exitCode,
      signal: step.signal,
      failureMessage: step.failureMessage,
      startedAt: iso(step.startedAt),
      finishedAt: iso(step.finishedAt),
      durationMs: step.startedAt && step.finishedAt ? step.finishedAt.getTime() - step.startedAt.getTime() : null,
      ...(tails ? { output: { tail: tails.get(step.id) ?? '' } } : {}),
    })),
  };
}

export function eventJson(event: EventRow) {
  return {
    id: event.id,
    at: event.created_at.toISOString(),
    taskId: event.task_id,
    subject: event.subject ?? null,
    type: event.type,
    actor: event.actor,
    data: event.data,
  };
}
