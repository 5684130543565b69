/**
 * One review decision, for whatever is reviewed (a task, a run): recorded once per reviewer on
 * the content version they decided on, audited in the same transaction, and, for an approval,
 * whether the subject is now approved under its policy (only approvals of the current version
 * count; the author never does). The caller holds the subject's row lock and has checked that
 * the reviewer may review it; it makes the status transitions that follow.
 */
import type { Knex } from 'knex';
import { isApproved, type ReviewPolicy, type Verdict } from '../domain/review.js';
import { appendEvent, type AuditEvent } from '../store/events.js';
import { insertSubjectDecision, subjectDecisionsOnVersion, type ReviewSubject } from '../store/reviews.js';
import { refuse, type Outcome } from './outcome.js';

export interface Reviewed {
  subject: ReviewSubject;
  /** How people name it: `#12`, `run 3`. */
  ref: string;
  author: string;
  contentVersion: string;
  /** Where its audit events go and how their types start: `review` for tasks, `run.review` for runs. */
  audit: Pick<AuditEvent, 'taskId' | 'subject'> & { prefix: string };
}

export async function recordDecision(
  trx: Knex.Transaction,
  reviewed: Reviewed,
  policy: ReviewPolicy,
  decision: { userId: string; verdict: Verdict; reason: string | null },
): Promise<Outcome<{ approved: boolean }>> {
  const { userId, verdict, reason } = decision;
  if (!(await insertSubjectDecision(trx, reviewed.subject, { userId, verdict, reason, contentVersion: reviewed.contentVersion }))) {
    return refuse('already_decided', `You already reviewed ${reviewed.ref}.`);
  }
  await appendEvent(trx, {
    ...reviewed.audit,
    type: `${reviewed.audit.prefix}.${verdict === 'approve' ? 'approved' : 'rejected'}`,
    actor: userId,
    data: verdict === 'approve' ? { contentVersion: reviewed.contentVersion } : { reason },
  });
  if (verdict === 'reject') return { ok: true, approved: false };
  const decisions = await subjectDecisionsOnVersion(trx, reviewed.subject, reviewed.contentVersion);
  return { ok: true, approved: isApproved(policy, reviewed.author, decisions) };
}
