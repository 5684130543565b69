/**
 * A set of people named in the config: Slack users listed by id and, optionally, the members
 * of one Slack user group. Used for `admins`, a target's `viewers`, and a saved runbook's
 * `editors`. Membership of the user group is looked up outside the domain (Reviewers.members).
 */
import { z } from 'zod';
export interface People {
  users: readonly string[];
  usergroup: string | null;
}

export const NOBODY: People = { users: [], usergroup: null };

/** Is `userId` one of `people`, given the user group's current members (null: not known)? */
export function includesUser(people: People, userId: string, usergroupMembers: readonly string[] | null): boolean {
  if (people.users.includes(userId)) return true;
  return people.usergroup !== null && (usergroupMembers?.includes(userId) ?? false);
}

export const slackUserIdSchema = z.string().regex(/^[UW][A-Z0-9]{2,}$/, 'expected a Slack user id like U0123ABC');
export const slackUsergroupIdSchema = z.string().regex(/^S[A-Z0-9]{2,}$/, 'expected a Slack user group id like S0123ABC');

/** People as written in config and imported definitions: `{ users: [U…], usergroup: S… }`, at least one of them. */
export const peopleSchema = z
  .strictObject({ users: z.array(slackUserIdSchema).max(100).optional(), usergroup: slackUsergroupIdSchema.optional() })
  .refine((people) => people.users !== undefined || people.usergroup !== undefined, { message: 'name users, a usergroup, or both' });

/** The written form as the domain uses it. */
export function toPeople(written: { users?: readonly string[] | undefined; usergroup?: string | undefined }): People {
  return { users: [...(written.users ?? [])], usergroup: written.usergroup ?? null };
}
