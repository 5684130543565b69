/**
 * Who may see a task (later also a runbook run) and its output. One pure rule, asked by every
 * surface that shows a task or its output: Slack answers, App Home, the API, the task page and
 * its stream. The facts it needs (group members, channel members) are gathered elsewhere
 * (src/service/access.ts); nothing here does I/O.
 *
 * A user sees a task when they are its author, a reviewer of one of the targets it touches, a
 * viewer of one of them (`viewers` in the target's config), an admin (`admins`), or a member of
 * the channel its card was posted in.
 */

/** What is being looked at: its author, every target it touches, and the channel of its card. */
export interface AccessSubject {
  author: string;
  /** Every target the task touches (one for a task; a runbook run may touch several). */
  targets: readonly string[];
  /** Where its card was posted; null when it has none. */
  channelId: string | null;
}

/** What the user is to one target. */
export interface TargetFacts {
  /** In one of the target's review groups (user group members included). */
  reviewer: boolean;
  /** Named in the target's `viewers` (user group members included). */
  viewer: boolean;
}

export interface AccessFacts {
  userId: string;
  /** Named in the config's `admins`. */
  admin: boolean;
  /** Per target of the subject; a target missing here counts as neither reviewer nor viewer. */
  targets: ReadonlyMap<string, TargetFacts>;
  /** A member of the subject's card channel (false when nobody could say). */
  channelMember: boolean;
}

export type SeeReason = 'author' | 'admin' | 'reviewer' | 'viewer' | 'channel';

/** Why `facts.userId` may see `subject`, or null when they may not. */
export function seeReason(subject: AccessSubject, facts: AccessFacts): SeeReason | null {
  if (subject.author === facts.userId) return 'author';
  if (facts.admin) return 'admin';
  if (subject.targets.some((target) => facts.targets.get(target)?.reviewer === true)) return 'reviewer';
  if (subject.targets.some((target) => facts.targets.get(target)?.viewer === true)) return 'viewer';
  if (subject.channelId !== null && facts.channelMember) return 'channel';
  return null;
}

export function maySee(subject: AccessSubject, facts: AccessFacts): boolean {
  return seeReason(subject, facts) !== null;
}

/** An audit event is visible when its task is; an event about no task (schedules, recipes) only to admins. */
export function maySeeEvent(subject: AccessSubject | null, facts: AccessFacts): boolean {
  return subject === null ? facts.admin : maySee(subject, facts);
}

/** A task as an access subject. */
export function taskSubject(task: { author: string; target: string; channelId: string | null }): AccessSubject {
  return { author: task.author, targets: [task.target], channelId: task.channelId };
}

/** Facts that grant nothing yet: the starting point when facts are gathered one by one. */
export function noFacts(userId: string): AccessFacts {
  return { userId, admin: false, targets: new Map(), channelMember: false };
}
