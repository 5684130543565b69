/**
 * Review policy, pure: who may approve, what counts, when a task is approved, who may run or
 * kill it. A user's approval counts for every group they belong to (as code owners do); the
 * author never counts, whatever groups they are in.
 *
 * A group may name a Slack user group. Its members are looked up outside this module
 * (src/service/reviewers.ts) and merged into `users` before any rule here is applied: the
 * rules only ever see plain lists of user ids.
 */
export interface ReviewGroup {
  name: string;
  /** Who counts for this group: as configured, the users listed; once resolved, those and the user group's members. */
  users: readonly string[];
  approvals: number;
  /** A Slack user group (`S0789`) whose members count for this group too. */
  usergroup?: string | null;
  /** The users listed in the config, kept apart once `users` holds the user group's members too (for display). */
  listed?: readonly string[];
  /** Direct-message each member when a review is requested. */
  dm?: boolean;
}

export interface ReviewPolicy {
  channel: string;
  autoRun: boolean;
  groups: readonly ReviewGroup[];
  /** A review still pending this long after it was asked for expires (the task is rejected). */
  expiresAfter?: { ms: number; text: string } | null;
}

export type Verdict = 'approve' | 'reject';

export interface ReviewDecision {
  userId: string;
  verdict: Verdict;
  reason: string | null;
  at: Date;
  /** The task content version decided on (src/domain/contentVersion.ts); absent for schedules. */
  contentVersion?: string | null;
}

/**
 * The decisions that count for a subject as it is now: every rejection, and the approvals of
 * `contentVersion` only (an approval of an earlier version approved something else).
 */
export function decisionsOnVersion(decisions: readonly ReviewDecision[], contentVersion: string): ReviewDecision[] {
  return decisions.filter((decision) => decision.verdict === 'reject' || decision.contentVersion === contentVersion);
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

/**
 * The groups that could never approve a start by `author` (nor by `alsoExcluded`, e.g. a run's
 * runbook writers): unreachableGroups, except groups whose Slack user group could not be listed
 * right now (`unknownUsergroups`), which are not known to be stuck, so the start waits for them.
 */
export function stuckGroups(policy: ReviewPolicy, unknownUsergroups: readonly string[], author: string, alsoExcluded: readonly string[] = []): ReviewGroup[] {
  const groups =
    alsoExcluded.length === 0 ? policy.groups : policy.groups.map((group) => ({ ...group, users: group.users.filter((user) => !alsoExcluded.includes(user)) }));
  return unreachableGroups({ ...policy, groups }, author).filter((group) => !group.usergroup || !unknownUsergroups.includes(group.usergroup));
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

/**
 * Run again makes whoever asks the author of the new request. Of something that was rejected or
 * cancelled (never run as approved), that would let its first author, who wrote the script or
 * chose the values, review it: only they may ask for it again.
 */
export function mayAskAgain(status: string, author: string, userId: string, ref: string): Permission {
  if ((status === 'rejected' || status === 'cancelled') && userId !== author) {
    return { ok: false, code: 'not_author', message: `${ref} was ${status} and never ran as approved, so only its author can ask for it again.` };
  }
  return { ok: true };
}

/** Run and Kill belong to the author and to the target's reviewers. */
export function mayOperate(policy: ReviewPolicy | null, author: string, userId: string, action: string, taskRef: string): Permission {
  if (userId === author || isReviewer(policy, userId)) return { ok: true };
  const who = policy === null ? 'its author' : `its author or ${groupNames(policy)}`;
  return { ok: false, code: 'not_allowed', message: `Only ${who} can ${action} ${taskRef}.` };
}

/**
 * The policy with each group's user group members merged into its users (`members` by user
 * group id; a user group missing from it contributes nobody). Pure: the lookup happens elsewhere.
 */
export function withMembers(policy: ReviewPolicy, members: ReadonlyMap<string, readonly string[]>): ReviewPolicy {
  return {
    ...policy,
    groups: policy.groups.map((group) => {
      if (!group.usergroup) return group;
      const listed = group.listed ?? group.users;
      return { ...group, listed, users: [...new Set([...listed, ...(members.get(group.usergroup) ?? [])])] };
    }),
  };
}

/** The Slack user groups a policy names, each once. */
export function usergroupsOf(policy: ReviewPolicy): string[] {
  return [...new Set(policy.groups.flatMap((group) => (group.usergroup ? [group.usergroup] : [])))];
}

/** Who gets a direct message when a review is requested: members of `dm` groups, never the author. */
export function dmRecipients(policy: ReviewPolicy, author: string): string[] {
  return [...new Set(policy.groups.filter((group) => group.dm).flatMap((group) => group.users))].filter((userId) => userId !== author);
}

/** When a review asked for at `requestedAt` expires, or null when the policy lets reviews wait forever. */
export function reviewExpiresAt(policy: ReviewPolicy, requestedAt: Date): Date | null {
  return policy.expiresAfter ? new Date(requestedAt.getTime() + policy.expiresAfter.ms) : null;
}

export function expiryMessage(policy: ReviewPolicy): string {
  return `review expired after ${policy.expiresAfter?.text ?? 'its time limit'} without enough approvals`;
}

function groupNames(policy: ReviewPolicy): string {
  return policy.groups.map((group) => `*${group.name}*`).join(', ');
}
