/**
 * What the Slack views list: a user's tasks, tasks waiting for their review, what runs now.
 * "Waiting for my review" asks the review policy (with Slack user groups resolved) whether the
 * user could review each pending task, so it never offers a button that would be refused.
 */
import type { ListScope } from '../domain/command.js';
import type { Task } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { listTasks } from '../store/queries.js';

export interface ReviewerCheck {
  /** May `userId` review `task` (a member of one of its target's groups, not its author)? */
  mayReview(task: Task, userId: string): Promise<boolean>;
}

const PENDING_SCAN = 500;

export class TaskQueries {
  constructor(
    private readonly db: Db,
    private readonly reviewers: ReviewerCheck,
  ) {}

  async list(scope: ListScope, userId: string, limit: number): Promise<{ tasks: Task[]; more: boolean }> {
    switch (scope) {
      case 'mine':
        return listTasks(this.db, { author: userId, limit });
      case 'running':
        return listTasks(this.db, { status: ['ready', 'running'], limit });
      case 'all':
        return listTasks(this.db, { limit });
      case 'pending': {
        const tasks = await this.pendingFor(userId);
        return { tasks: tasks.slice(0, limit), more: tasks.length > limit };
      }
    }
  }

  mayReview(task: Task, userId: string): Promise<boolean> {
    return task.author === userId ? Promise.resolve(false) : this.reviewers.mayReview(task, userId);
  }

  /** Pending tasks this user may review, oldest first (the longest waiting first). */
  async pendingFor(userId: string): Promise<Task[]> {
    const { tasks } = await listTasks(this.db, { status: ['pending-review'], limit: PENDING_SCAN });
    const mine: Task[] = [];
    for (const task of tasks.reverse()) if (task.author !== userId && (await this.reviewers.mayReview(task, userId))) mine.push(task);
    return mine;
  }
}
