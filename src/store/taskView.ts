/** The read model behind a card or review request: a task, its decisions and its latest run. */
import type { Task, TaskView } from '../domain/task.js';
import type { Queryable } from './db.js';
import { latestExecution } from './executions.js';
import { decisionsFor } from './reviews.js';
import { getTask } from './tasks.js';

export async function loadTaskView(db: Queryable, taskId: number): Promise<TaskView | null> {
  const task = await getTask(db, taskId);
  return task ? viewOfTask(db, task) : null;
}

/** The rest of the view of a task just read. */
export async function viewOfTask(db: Queryable, task: Task): Promise<TaskView> {
  const [decisions, execution] = await Promise.all([decisionsFor(db, task.id), latestExecution(db, task.id)]);
  return { task, decisions, execution };
}
