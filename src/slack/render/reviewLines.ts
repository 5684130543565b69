/** The review part shared by the card and the review request: each group's progress and each decision. */
import { progress, type ReviewGroup, type ReviewPolicy, type ReviewDecision } from '../../domain/review.js';
import { clip, mention, safeText, slackDate } from './format.js';

/**
 * Who can approve for a group: its Slack user group as a mention (`<!subteam^S0789>`, which
 * Slack shows as @name) and the users listed besides it, at most `shownUsers` of them. A
 * user group's members are not listed one by one: the mention stands for them.
 */
export function groupWhoText(group: ReviewGroup, shownUsers: number): string {
  const named = group.usergroup ? (group.listed ?? group.users) : group.users;
  const parts = named.slice(0, shownUsers).map(mention);
  if (named.length > shownUsers) parts.push('…');
  if (group.usergroup) parts.unshift(usergroupMention(group.usergroup));
  return parts.join(', ');
}

/** A Slack user group mention; the id is checked, so nothing else can be smuggled into the message. */
export function usergroupMention(usergroupId: string): string {
  return /^S[A-Z0-9]+$/.test(usergroupId) ? `<!subteam^${usergroupId}>` : safeText(usergroupId, 30);
}

const MAX_DECISION_LINES = 10;

export function groupProgressLine(policy: ReviewPolicy, author: string, decisions: readonly ReviewDecision[]): string {
  return progress(policy, author, decisions)
    .map(
      (group) =>
        `${group.satisfied ? ':white_check_mark:' : ':white_circle:'} *${safeText(group.name, 60)}* ${Math.min(group.approvedBy.length, group.required)}/${group.required}`,
    )
    .join('   ');
}

/** One line per decision (at most 10), each reason cut to `reasonChars`, all within `maxChars`. */
export function decisionLines(decisions: readonly ReviewDecision[], reasonChars = 300, maxChars = 2900): string {
  const lines = decisions.slice(0, MAX_DECISION_LINES).map((decision) => {
    if (decision.verdict === 'approve') return `:white_check_mark: Approved by ${mention(decision.userId)} ${slackDate(decision.at)}`;
    const reason = decision.reason ? `: “${safeText(decision.reason, reasonChars)}”` : ' (no reason given)';
    return `:no_entry: Rejected by ${mention(decision.userId)} ${slackDate(decision.at)}${reason}`;
  });
  if (decisions.length > MAX_DECISION_LINES) lines.push(`… and ${decisions.length - MAX_DECISION_LINES} more`);
  return clip(lines.join('\n'), maxChars);
}

/** The review section: progress per group, then the decisions. */
export function reviewText(policy: ReviewPolicy, author: string, decisions: readonly ReviewDecision[], scale: number): string {
  return [groupProgressLine(policy, author, decisions), decisionLines(decisions, Math.round(300 * scale), Math.round(2900 * scale))]
    .filter((line) => line !== '')
    .join('\n');
}
