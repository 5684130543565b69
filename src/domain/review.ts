/**
 * Review policy, pure: who may approve, what counts, when a task is approved, who may run or
 * kill it. A user's approval counts for every group they belong to (as code owners do); the
 * author never counts, whatever groups they are in.
 */
export interface ReviewGroup {
  name: string;
  users: readonly string[];
  approvals: number;
}

export interface ReviewPolicy {
  channel: string;
  autoRun: boolean;
  groups: readonly ReviewGroup[];
}

export type Verdict = 'approve' | 'reject';

export interface ReviewDecision {
  userId: string;
  verdict: Verdict;
  reason: string | null;
  at: Date;
}

export interface GroupProgress {
  name: string;
  required: number;
  approvedBy: string[];
  satisfied: boolean;
}

export type Refusal = { ok: false; code: string; message: string };
export type Permission = { ok: true } | Refusal;

export function groupsOf(policy: ReviewPolicy, userId: string): ReviewGroup[] {
  return policy.groups.filter((group) => group.users.includes(userId));
}

export function isReviewer(policy: ReviewPolicy | null, userId: string): boolean {
  return policy !== null && groupsOf(policy, userId).length > 0;
}

/** May `userId` approve or reject a task written by `author`? */
export function mayReview(policy: ReviewPolicy, author: string, userId: string, taskRef: string): Permission {
  if (userId === author) {
    return { ok: false, code: 'self_review', message: `You wrote ${taskRef}, so you cannot review it: ask someone in ${groupNames(policy)}.` };
  }
  if (groupsOf(policy, userId).length === 0) {
    return { ok: false, code: 'not_reviewer', message: `Only members of ${groupNames(policy)} can review ${taskRef}.` };
  }
  return { ok: true };
}

/**
 * Groups this author's task could never satisfy, since authors never count: a group of one
 * reviewer cannot approve that reviewer's own task. Refusing at creation beats a task that
 * waits for review forever.
 */
export function unreachableGroups(policy: ReviewPolicy, author: string): ReviewGroup[] {
  return policy.groups.filter((group) => group.users.filter((userId) => userId !== author).length < group.approvals);
}

export function progress(policy: ReviewPolicy, author: string, decisions: readonly ReviewDecision[]): GroupProgress[] {
  const approvers = decisions.filter((d) => d.verdict === 'approve' && d.userId !== author).map((d) => d.userId);
  return policy.groups.map((group) => {
    const approvedBy = approvers.filter((userId) => group.users.includes(userId));
    return { name: group.name, required: group.approvals, approvedBy, satisfied: approvedBy.length >= group.approvals };
  });
}

export function isApproved(policy: ReviewPolicy, author: string, decisions: readonly ReviewDecision[]): boolean {
  return progress(policy, author, decisions).every((group) => group.satisfied);
}

/** Run and Kill belong to the author and to the target's reviewers. */
export function mayOperate(policy: ReviewPolicy | null, author: string, userId: string, action: string, taskRef: string): Permission {
  if (userId === author || isReviewer(policy, userId)) return { ok: true };
  const who = policy === null ? 'its author' : `its author or ${groupNames(policy)}`;
  return { ok: false, code: 'not_allowed', message: `Only ${who} can ${action} ${taskRef}.` };
}

function groupNames(policy: ReviewPolicy): string {
  return policy.groups.map((group) => `*${group.name}*`).join(', ');
}
