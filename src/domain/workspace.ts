/**
 * Which Slack workspace countersign serves, and whether a request comes from it. Slack signs
 * every request with the app's signing secret, so a signature proves only that Slack sent it,
 * not that it comes from our workspace: an app installed in a second workspace (or distributed,
 * or org-wide) receives that workspace's commands and clicks with the same signature, and a
 * user from another organisation can click our buttons in a Slack Connect channel. Reviews and
 * targets are configured for one workspace, so every other origin is refused.
 */

export interface Workspace {
  /** The team (workspace) id, `T…`. */
  teamId: string;
  /** Its Enterprise Grid organisation, `E…`, when it belongs to one and we know it. */
  enterpriseId: string | null;
}

/** Where a request says it comes from (Bolt's context, and the acting user's own team). */
export interface RequestOrigin {
  teamId: string | null;
  enterpriseId: string | null;
  /** The acting user's home team, when the payload names it (`user.team_id` of interactions). */
  userTeamId: string | null;
}

/**
 * Why a request from `origin` is not ours, or null when it is: the workspace must be ours, the
 * organisation ours (or none, when ours is none), and the acting user a member of our workspace
 * (in a Slack Connect channel, `team` can be ours while the user is someone else's). A user of
 * a sibling workspace in our organisation is refused too: there is no telling them apart from
 * an external organisation's user by the payload alone, and reviews name our workspace's people.
 */
export function foreignOrigin(ours: Workspace, origin: RequestOrigin): string | null {
  if (origin.teamId !== ours.teamId) return `workspace ${origin.teamId ?? '(none)'} is not ${ours.teamId}`;
  if (origin.enterpriseId !== ours.enterpriseId) return `organisation ${origin.enterpriseId ?? '(none)'} is not ${ours.enterpriseId ?? '(none)'}`;
  if (origin.userTeamId !== null && origin.userTeamId !== ours.teamId && origin.userTeamId !== ours.enterpriseId)
    return `the user belongs to workspace ${origin.userTeamId}`;
  return null;
}
