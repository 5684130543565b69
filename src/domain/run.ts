/**
 * A run: one start of a runbook (Gitpod's task execution), as the rest of the app sees it, and
 * its lifecycle. Like a task's (src/domain/lifecycle.ts), and checked the same two ways: here,
 * purely, and in SQL by the one guarded transition (src/store/runs.ts transitionRun).
 *
 *   created -> pending-review -> approved -> ready -> running -> success | failure | killed
 *                             \-> rejected
 *   created -> ready                      (no reviewed target)
 *   pending-review | approved | ready -> cancelled   (before it starts: Cancel, Kill, grace)
 *
 * An approved run is ready at once: approval steps are the run's own gates, and a triggered
 * run waits out its grace in `ready` (run_after), cancellable.
 *
 * Steps: pending -> running (script, http) | paused (approval, input) -> succeeded | failed |
 * killed; pending -> skipped. Each change is a guarded UPDATE ... WHERE phase = expected.
 */
import type { AccessSubject } from './access.js';
import type { TaskArgument } from './recipe.js';
import type { RunPlan, StepKind, StepValues } from './runbook/index.js';

export const RUN_STATUSES = ['created', 'pending-review', 'approved', 'rejected', 'ready', 'running', 'success', 'failure', 'killed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

const NEXT: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  created: ['pending-review', 'ready'],
  'pending-review': ['approved', 'rejected', 'cancelled'],
  approved: ['ready', 'cancelled'],
  rejected: [],
  ready: ['running', 'cancelled'],
  running: ['success', 'failure', 'killed'],
  success: [],
  failure: [],
  killed: [],
  cancelled: [],
};

export function canTransitionRun(from: RunStatus, to: RunStatus): boolean {
  return NEXT[from].includes(to);
}

/** A transition the lifecycle does not allow is a bug in the caller, not user input. */
export function assertRunTransition(from: RunStatus, to: RunStatus): void {
  if (!canTransitionRun(from, to)) throw new Error(`illegal run transition ${from} -> ${to}`);
}

export function isRunTerminal(status: RunStatus): boolean {
  return NEXT[status].length === 0;
}

export const RUN_STEP_PHASES = ['pending', 'running', 'paused', 'succeeded', 'failed', 'skipped', 'killed'] as const;
export type RunStepPhase = (typeof RUN_STEP_PHASES)[number];

const STEP_NEXT: Readonly<Record<RunStepPhase, readonly RunStepPhase[]>> = {
  pending: ['running', 'paused', 'skipped', 'failed'],
  running: ['succeeded', 'failed', 'killed'],
  paused: ['succeeded', 'failed', 'killed'],
  succeeded: [],
  failed: [],
  skipped: [],
  killed: [],
};

export function assertStepTransition(from: RunStepPhase, to: RunStepPhase): void {
  if (!STEP_NEXT[from].includes(to)) throw new Error(`illegal run step transition ${from} -> ${to}`);
}

export function isStepFinished(phase: RunStepPhase): boolean {
  return STEP_NEXT[phase].length === 0;
}

/** How a run was started. `again`: the run (or task) this one repeats. */
export type RunTrigger =
  | { kind: 'manual' | 'api'; again?: number }
  | { kind: 'schedule'; schedule?: number }
  | { kind: 'webhook'; hook: string }
  | { kind: 'after'; run: number; on: 'success' | 'failure' | 'always' }
  /** A Slack workflow's step (src/domain/workflowStep.ts): `execution` is its function execution id. */
  | { kind: 'workflow'; execution?: string };

/** The pinned plan as stored (runs.plan); the arguments are stored apart (runs.arguments). */
export type StoredPlan = Omit<RunPlan, 'arguments'>;

export interface Run {
  id: number;
  createdAt: Date;
  statusChangedAt: Date;
  status: RunStatus;
  creator: string;
  trigger: RunTrigger;
  reference: string;
  runbookHash: string | null;
  plan: StoredPlan;
  /** Per runbook, values in declared order; fixed values in clear: never shown. */
  arguments: Record<string, TaskArgument[]>;
  contentVersion: string;
  message: string | null;
  desiredPhase: 'stopped' | null;
  stopRequestedBy: string | null;
  statusVersion: number;
  viewVersion: number;
  channelId: string | null;
  cardTs: string | null;
  reviewChannel: string | null;
  reviewTs: string | null;
  reviewScriptPosted: boolean;
  runAfter: Date | null;
  parentRunId: number | null;
  failureMessage: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface RunStep {
  id: number;
  runId: number;
  groupIndex: number;
  position: number;
  /** Qualified: `<runbook>.<step>`. */
  stepId: string;
  kind: StepKind;
  phase: RunStepPhase;
  continueOnFailure: boolean;
  /** What later steps may reference (outputs, or an http step's status/body/json). */
  values: Omit<StepValues, 'phase'> | null;
  /** An http step's log (masked, redacted, capped). */
  output: string | null;
  failureMessage: string | null;
  taskId: number | null;
  runnerId: string | null;
  leaseUntil: Date | null;
  timeoutAt: Date | null;
  messageChannel: string | null;
  messageTs: string | null;
  decidedBy: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export const runRef = (id: number): string => `run ${id}`;

/**
 * A run as an access subject (src/domain/access.ts): who started it, every target its plan
 * touches, and its card's channel. The one rule decides who sees it, as for tasks.
 */
export function runAccessSubject(run: Pick<Run, 'creator' | 'channelId'> & { plan: Pick<Run['plan'], 'targets'> }): AccessSubject {
  return { author: run.creator, targets: run.plan.targets, channelId: run.channelId };
}
/** A run's audit subject (events.subject). */
export const runSubject = (id: number): string => `run:${id}`;
