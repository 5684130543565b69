/** Review decisions: one per reviewer per task (a unique key makes double clicks harmless). */
import type { ReviewDecision, Verdict } from '../domain/review.js';
import type { Queryable } from './db.js';
import { toDecision, type ReviewRow } from './rows.js';
import { bumpViewVersion } from './tasks.js';

/**
 * Returns false when this reviewer had already decided. Call inside the review's transaction,
 * holding the task's row lock; `contentVersion` is the version decided on.
 */
export async function insertDecision(
  db: Queryable,
  decision: { taskId: number; userId: string; verdict: Verdict; reason: string | null; contentVersion: string },
): Promise<boolean> {
  const rows = await db('reviews')
    .insert({ task_id: decision.taskId, user_id: decision.userId, verdict: decision.verdict, reason: decision.reason, content_version: decision.contentVersion })
    .onConflict(['task_id', 'user_id'])
    .ignore()
    .returning('id');
  if (rows.length === 0) return false;
  await bumpViewVersion(db, decision.taskId);
  return true;
}

export async function decisionsFor(db: Queryable, taskId: number): Promise<ReviewDecision[]> {
  const rows = await db<ReviewRow>('reviews').where({ task_id: taskId }).orderBy('id');
  return rows.map(toDecision);
}

/**
 * The decisions that count for the task as it is now: every rejection, and the approvals of
 * `contentVersion` only (an approval of an earlier version approved something else).
 */
export async function decisionsOnVersion(db: Queryable, taskId: number, contentVersion: string): Promise<ReviewDecision[]> {
  const rows = await db<ReviewRow>('reviews')
    .where({ task_id: taskId })
    .andWhere((q) => q.where({ verdict: 'reject' }).orWhere({ content_version: contentVersion }))
    .orderBy('id');
  return rows.map(toDecision);
}
