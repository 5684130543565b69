/** The read model behind a card or review request: a task, its decisions and its latest run. */
import type { TaskView } from '../domain/task.js';
import type { Queryable } from './db.js';
import { latestExecution } from './executions.js';
import { decisionsFor } from './reviews.js';
import { getTask } from './tasks.js';

export async function loadTaskView(db: Queryable, taskId: number): Promise<TaskView | null> {
  const task = await getTask(db, taskId);
  if (!task) return null;
  const [decisions, execution] = await Promise.all([decisionsFor(db, taskId), latestExecution(db, taskId)]);
  return { task, decisions, execution };
}
