/**
 * What a run does next: a pure function of the run and its steps, called by the advancer
 * (src/runbook/advancer.ts) with the run's row locked; the advancer applies the actions in the
 * same transaction. Everything here is decided from the stored state, so any process, after a
 * restart or on another replica, decides the same.
 *
 * Rules:
 * - groups run in order; the steps of a group start together once every earlier group is done;
 * - a step that failed (or was killed) without `continueOnFailure` halts the run: later
 *   groups' steps are skipped, and the run fails once nothing is running;
 * - a stop request (desired_phase = stopped): pending steps are skipped, paused ones end as
 *   killed, running ones are asked to stop; the run ends `killed` once nothing runs;
 * - a paused step past its deadline fails ("timed out");
 * - a run in `ready` starts once its grace (run_after) has passed.
 */
import type { Run, RunStep, RunStepPhase } from './run.js';

export type RunAction =
  | { kind: 'start-run' }
  | { kind: 'start-step'; step: number }
  | { kind: 'skip-step'; step: number; reason: string }
  | { kind: 'end-step'; step: number; phase: 'failed' | 'killed'; reason: string }
  | { kind: 'stop-step'; step: number }
  | { kind: 'finish-run'; status: 'success' | 'failure' | 'killed'; reason: string | null };

type RunFacts = Pick<Run, 'status' | 'desiredPhase' | 'runAfter'>;
type StepFacts = Pick<RunStep, 'id' | 'groupIndex' | 'position' | 'stepId' | 'kind' | 'phase' | 'continueOnFailure' | 'timeoutAt' | 'failureMessage'>;

const UNFINISHED: readonly RunStepPhase[] = ['pending', 'running', 'paused'];

export function decideRun(run: RunFacts, steps: readonly StepFacts[], now: Date): RunAction[] {
  if (run.status !== 'ready' && run.status !== 'running') return [];
  const actions: RunAction[] = [];
  const stopping = run.desiredPhase === 'stopped';
  if (run.status === 'ready') {
    // A stop before the start is a cancel (RunService does it); grace not over yet: wait.
    if (stopping || (run.runAfter !== null && run.runAfter.getTime() > now.getTime())) return [];
    actions.push({ kind: 'start-run' });
  }
  const phase = new Map(steps.map((s) => [s.id, s.phase]));
  const reason = new Map(steps.map((s) => [s.id, s.failureMessage]));
  const set = (action: RunAction) => {
    actions.push(action);
    if (action.kind === 'skip-step') phase.set(action.step, 'skipped');
    if (action.kind === 'end-step') {
      phase.set(action.step, action.phase);
      reason.set(action.step, action.reason);
    }
  };

  const ordered = [...steps].sort((a, b) => a.groupIndex - b.groupIndex || a.position - b.position);
  if (stopping) {
    for (const step of ordered) {
      const p = phase.get(step.id)!;
      if (p === 'pending') set({ kind: 'skip-step', step: step.id, reason: 'not started: the run was stopped' });
      else if (p === 'paused')
        set({
          kind: 'end-step',
          step: step.id,
          phase: 'killed',
          reason: `the run was stopped while it waited for ${step.kind === 'approval' ? 'approval' : 'input'}`,
        });
      else if (p === 'running') actions.push({ kind: 'stop-step', step: step.id });
    }
  } else {
    for (const step of ordered) {
      if (phase.get(step.id) === 'paused' && step.timeoutAt !== null && step.timeoutAt.getTime() <= now.getTime()) {
        set({ kind: 'end-step', step: step.id, phase: 'failed', reason: `timed out waiting for ${step.kind === 'approval' ? 'approval' : 'input'}` });
      }
    }
    const groups = [...new Set(ordered.map((s) => s.groupIndex))];
    let halt: string | null = null;
    for (const groupIndex of groups) {
      const group = ordered.filter((s) => s.groupIndex === groupIndex);
      if (halt !== null) {
        for (const step of group) if (phase.get(step.id) === 'pending') set({ kind: 'skip-step', step: step.id, reason: halt });
        continue;
      }
      if (group.some((s) => UNFINISHED.includes(phase.get(s.id)!))) {
        for (const step of group) if (phase.get(step.id) === 'pending') actions.push({ kind: 'start-step', step: step.id });
        // Later groups wait for this one.
        break;
      }
      const failed = group.find((s) => (phase.get(s.id) === 'failed' || phase.get(s.id) === 'killed') && !s.continueOnFailure);
      if (failed) halt = `not started: ${failed.stepId} ${phase.get(failed.id) === 'killed' ? 'was killed' : 'failed'}`;
    }
  }

  // Steps just started are unfinished too.
  const started = new Set(actions.flatMap((a) => (a.kind === 'start-step' ? [a.step] : [])));
  const unfinished = ordered.some((s) => started.has(s.id) || UNFINISHED.includes(phase.get(s.id)!));
  if (unfinished) return actions;
  const failedStep = ordered.find((s) => (phase.get(s.id) === 'failed' || phase.get(s.id) === 'killed') && !s.continueOnFailure);
  if (stopping) set({ kind: 'finish-run', status: 'killed', reason: null });
  else if (failedStep)
    set({
      kind: 'finish-run',
      status: 'failure',
      reason: `${failedStep.stepId}: ${reason.get(failedStep.id) ?? (phase.get(failedStep.id) === 'killed' ? 'killed' : 'failed')}`,
    });
  else set({ kind: 'finish-run', status: 'success', reason: null });
  return actions;
}
