/** Review decisions: one per reviewer per task (a unique key makes double clicks harmless). */
import { decisionsOnVersion as onVersion, type ReviewDecision, type Verdict } from '../domain/review.js';
import type { Queryable } from './db.js';
import { toDecision, type ReviewRow } from './rows.js';

/** What is reviewed: a task (`reviews`) or a run (`run_reviews`, migration 013); same rules, same columns. */
export interface ReviewSubject {
  table: 'reviews' | 'run_reviews';
  column: 'task_id' | 'run_id';
  id: number;
}

export const taskReviews = (taskId: number): ReviewSubject => ({ table: 'reviews', column: 'task_id', id: taskId });
export const runReviews = (runId: number): ReviewSubject => ({ table: 'run_reviews', column: 'run_id', id: runId });

/**
 * Returns false when this reviewer had already decided. Call inside the review's transaction,
 * holding the subject's row lock; `contentVersion` is the version decided on.
 */
export async function insertSubjectDecision(
  db: Queryable,
  subject: ReviewSubject,
  decision: { userId: string; verdict: Verdict; reason: string | null; contentVersion: string },
): Promise<boolean> {
  const rows = await db(subject.table)
    .insert({
      [subject.column]: subject.id,
      user_id: decision.userId,
      verdict: decision.verdict,
      reason: decision.reason,
      content_version: decision.contentVersion,
    })
    .onConflict([subject.column, 'user_id'])
    .ignore()
    .returning('id');
  if (rows.length === 0) return false;
  // Both tables' subjects have a view_version their messages follow.
  await db(subject.table === 'reviews' ? 'tasks' : 'runs')
    .where({ id: subject.id })
    .increment('view_version', 1);
  return true;
}

export async function subjectDecisions(db: Queryable, subject: ReviewSubject): Promise<ReviewDecision[]> {
  const rows = await db<ReviewRow>(subject.table)
    .where({ [subject.column]: subject.id })
    .orderBy('id');
  return rows.map(toDecision);
}

/** The decisions that count for the subject as it is now (domain/review.ts decisionsOnVersion). */
export async function subjectDecisionsOnVersion(db: Queryable, subject: ReviewSubject, contentVersion: string): Promise<ReviewDecision[]> {
  return onVersion(await subjectDecisions(db, subject), contentVersion);
}

export function insertDecision(
  db: Queryable,
  decision: { taskId: number; userId: string; verdict: Verdict; reason: string | null; contentVersion: string },
): Promise<boolean> {
  return insertSubjectDecision(db, taskReviews(decision.taskId), decision);
}

export function decisionsFor(db: Queryable, taskId: number): Promise<ReviewDecision[]> {
  return subjectDecisions(db, taskReviews(taskId));
}
