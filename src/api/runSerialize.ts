/**
 * Runbooks and runs as the API shows them. Fixed values never leave the server: arguments show
 * them as •••, and step outputs and http bodies are masked with the run's targets' secrets and
 * its fixed values (a script could write one to $COUNTERSIGN_OUTPUT).
 */
import type { Config } from '../config/config.js';
import type { RunStep } from '../domain/run.js';
import { exportRunbook, type PlannedStep } from '../domain/runbook/index.js';
import { fixedValuesToMask, markFixedCopies } from '../domain/recipe.js';
import { SecretMasker } from '../domain/secretMasker.js';
import type { RunbookEntry } from '../service/runbooks.js';
import type { RunView } from '../service/runs.js';
import { HIDDEN } from './serialize.js';

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

/** `planHash`: the hash a start names (RunbookService.planHash); the runbook's own hash when it depends on nothing. */
export function runbookJson(entry: RunbookEntry, planHash: string) {
  const { runbook } = entry;
  return {
    reference: runbook.reference,
    name: runbook.name,
    description: runbook.description,
    tags: runbook.tags,
    kind: entry.kind,
    source: entry.source,
    hash: entry.hash,
    planHash,
    owner: entry.owner,
    editors: entry.editors ? { users: [...entry.editors.users], usergroup: entry.editors.usergroup } : null,
    triggeredBy: runbook.triggeredBy.map((t) => (t.kind === 'after' ? `after ${t.runbook} on ${t.on}` : t.kind)),
    dependsOn: runbook.dependsOn,
    definition: JSON.parse(exportRunbook(runbook).json) as Record<string, unknown>,
  };
}

/** The secret values a run's views mask: its targets' secrets and its fixed argument values. */
export function runMasker(config: Config, view: Pick<RunView, 'run'>): (text: string) => string {
  const secrets = [
    ...view.run.plan.targets.flatMap((t) => [...(config.targets.get(t)?.secrets.values() ?? [])]),
    ...Object.values(view.run.arguments).flatMap((args) => fixedValuesToMask(args)),
  ];
  return (text: string) => {
    const masker = new SecretMasker(secrets);
    return masker.push(text) + masker.end();
  };
}

function stepContent(step: PlannedStep | undefined): Record<string, unknown> {
  if (!step) return {};
  if (step.kind === 'script')
    return {
      target: step.script.target,
      type: step.script.type,
      script: step.script.script,
      with: Object.fromEntries(step.script.with.map((w) => [w.name, w.value])),
    };
  if (step.kind === 'http') return { ...step.http };
  if (step.kind === 'approval') return { ...step.approval };
  return { ...step.input, fields: step.input.fields.map((f) => ({ ...f })) };
}

export function runJson(view: RunView, config: Config, statusUrl: (runId: number) => string) {
  const { run } = view;
  const mask = runMasker(config, view);
  const planned = new Map(run.plan.groups.flat().map((s) => [s.id, s]));
  return {
    id: run.id,
    status: run.status,
    reference: run.reference,
    creator: run.creator,
    trigger: { ...run.trigger },
    message: run.message,
    contentVersion: run.contentVersion,
    runbookHash: run.runbookHash,
    targets: run.plan.targets,
    arguments: Object.fromEntries(
      Object.entries(run.arguments).map(([ref, args]) => [
        ref,
        markFixedCopies(args).map((a) => ({ name: a.name, kind: a.kind, value: a.kind === 'fixed' ? HIDDEN : a.value })),
      ]),
    ),
    createdAt: run.createdAt.toISOString(),
    statusChangedAt: run.statusChangedAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    runAfter: iso(run.runAfter),
    parentRunId: run.parentRunId,
    failureMessage: run.failureMessage,
    stopRequested: run.desiredPhase === 'stopped',
    stopRequestedBy: run.stopRequestedBy,
    statusVersion: run.statusVersion,
    review: view.review,
    reviews: view.decisions.map((d) => ({
      userId: d.userId,
      verdict: d.verdict,
      reason: d.reason,
      at: d.at.toISOString(),
      contentVersion: d.contentVersion ?? null,
    })),
    steps: view.steps.map((step) => stepJson(step, planned.get(step.stepId), mask, view.stepDecisions[step.id])),
    statusUrl: statusUrl(run.id),
  };
}

function stepJson(step: RunStep, planned: PlannedStep | undefined, mask: (text: string) => string, decisions: RunView['stepDecisions'][number] | undefined) {
  const outputs = step.values?.outputs ? Object.fromEntries(Object.entries(step.values.outputs).map(([k, v]) => [k, mask(v)])) : null;
  return {
    id: step.stepId,
    runbook: planned?.runbook ?? step.stepId.split('.')[0]!,
    name: planned?.name ?? null,
    group: step.groupIndex,
    kind: step.kind,
    phase: step.phase,
    continueOnFailure: step.continueOnFailure,
    content: stepContent(planned),
    outputs,
    http: step.values?.http ? { status: step.values.http.status, body: mask(step.values.http.body) } : null,
    output: step.output === null ? null : mask(step.output),
    failureMessage: step.failureMessage,
    taskId: step.taskId,
    timeoutAt: iso(step.timeoutAt),
    startedAt: iso(step.startedAt),
    finishedAt: iso(step.finishedAt),
    ...(decisions ? { decisions: decisions.map((d) => ({ userId: d.userId, verdict: d.verdict, reason: d.reason, at: d.at.toISOString() })) } : {}),
  };
}
