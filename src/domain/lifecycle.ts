/**
 * The task lifecycle: the only place that says which status may follow which.
 *
 *   created -> pending-review -> approved -> ready -> running -> success | failure | killed
 *                             \-> rejected
 *   created -> ready            (targets without review)
 *   ready   -> killed           (stopped before a runner picked it up)
 *   pending-review | approved | ready -> cancelled   (deleted before it ran)
 *   approved -> pending-review   (at Run its approvals no longer satisfy the target's current review)
 *
 * The store enforces the same rule in SQL (UPDATE ... WHERE status = expected), so two
 * replicas or two clicks can never both win; this module is the pure half of that rule.
 */
export const TASK_STATUSES = ['created', 'pending-review', 'approved', 'rejected', 'ready', 'running', 'success', 'failure', 'killed', 'cancelled'] as const;

export type TaskStatus = (typeof TASK_STATUSES)[number];

const NEXT: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  created: ['pending-review', 'ready'],
  'pending-review': ['approved', 'rejected', 'cancelled'],
  approved: ['ready', 'cancelled', 'pending-review'],
  rejected: [],
  ready: ['running', 'killed', 'cancelled'],
  running: ['success', 'failure', 'killed'],
  success: [],
  failure: [],
  killed: [],
  cancelled: [],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return NEXT[from].includes(to);
}

/** Throws for a transition the lifecycle does not allow: that is a bug in the caller, not user input. */
export function assertTransition(from: TaskStatus, to: TaskStatus): void {
  if (!canTransition(from, to)) {
    throw new Error(`illegal task transition ${from} -> ${to}`);
  }
}

export function isTerminal(status: TaskStatus): boolean {
  return NEXT[status].length === 0;
}

export function isTaskStatus(value: string): value is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(value);
}

/** The audit event type written with a transition into `to`. */
export function transitionEventType(to: TaskStatus): string {
  return `task.${to}`;
}
