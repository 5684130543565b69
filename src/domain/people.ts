/**
 * A set of people named in the config: Slack users listed by id and, optionally, the members
 * of one Slack user group. Used for `admins`, a target's `viewers`, and a saved runbook's
 * `editors`. Membership of the user group is looked up outside the domain (Reviewers.members).
 */
export interface People {
  users: readonly string[];
  usergroup: string | null;
}

export const NOBODY: People = { users: [], usergroup: null };

/** Is `userId` one of `people`, given the user group's current members (null: not known)? */
export function includesUser(people: People, userId: string, usergroupMembers: readonly string[] | null): boolean {
  if (people.users.includes(userId)) return true;
  return people.usergroup !== null && usergroupMembers !== null && usergroupMembers.includes(userId);
}
