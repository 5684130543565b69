/** The task as the rest of the app sees it (store rows are mapped to this in store/). */
import type { TaskStatus } from './lifecycle.js';
import type { Plan } from './plan.js';
import type { ReviewDecision } from './review.js';
import type { TaskArgument } from './recipe.js';
import type { RecipeRef } from './contentVersion.js';
import type { ScriptType } from './scriptTypes.js';

/** `run`: a run's script step (src/domain/run.ts): no card or review of its own, the run has them. */
export type TaskSource = 'slack' | 'api' | 'schedule' | 'webhook' | 'run';

export interface TaskResult {
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  failureMessage: string | null;
  lastLine: string | null;
}

export interface Task {
  id: number;
  createdAt: Date;
  statusChangedAt: Date;
  status: TaskStatus;
  author: string;
  target: string;
  type: ScriptType;
  script: string;
  message: string | null;
  source: TaskSource;
  channelId: string | null;
  cardTs: string | null;
  reviewChannel: string | null;
  reviewTs: string | null;
  /** Grows with every change the task's Slack messages show. */
  viewVersion: number;
  reviewScriptPosted: boolean;
  result: TaskResult;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Asked for with a grace delay (`--in 10m`): not run before this; cancellable until then. */
  runAfter: Date | null;
  /** Started from a recipe: its arguments in declared order ("$1"…, ARG_<NAME>); fixed ones are never shown. */
  arguments?: TaskArgument[] | null;
  /**
   * SHA-256 over everything that runs (src/domain/contentVersion.ts), recomputed on every edit:
   * approvals name it, and only approvals of the current version count.
   */
  contentVersion: string;
  /** Started from a recipe: its name and the hash of the definition it was started from. */
  recipe: RecipeRef | null;
  /** A run's script step: the run and its step row (migration 013); null for a task of its own. */
  runStep?: { runId: number; stepId: number } | null;
  /** A run step's $COUNTERSIGN_OUTPUT values, once it ended (never shown unmasked). */
  outputs?: Readonly<Record<string, string>> | null;
}

export type ExecutionPhase = 'running' | 'succeeded' | 'failed' | 'killed';
export type StepPhase = 'pending' | 'running' | 'succeeded' | 'failed' | 'killed' | 'skipped';
export type OutputStream = 'stdout' | 'stderr' | 'system';

export interface ExecutionStep {
  id: number;
  groupIndex: number;
  host: string;
  port: number;
  user: string;
  runToken: string;
  phase: StepPhase;
  exitCode: number | null;
  signal: string | null;
  failureMessage: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface Execution {
  id: number;
  taskId: number;
  phase: ExecutionPhase;
  desiredPhase: 'stopped' | null;
  stopRequestedBy: string | null;
  statusVersion: number;
  plan: Plan;
  runnerId: string;
  leaseUntil: Date;
  startedAt: Date;
  finishedAt: Date | null;
  exitCode: number | null;
  failureMessage: string | null;
  outputBytes: number;
}

/** Everything a card or review request shows about one task. */
export interface TaskView {
  task: Task;
  decisions: ReviewDecision[];
  execution: (Execution & { steps: ExecutionStep[] }) | null;
}

export const taskRef = (id: number): string => `#${id}`;
