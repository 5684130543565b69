/**
 * `/task targets`: each target's description, hosts (the first few, then a count), rollout,
 * and review: its groups, how many approvals each needs and who can give them. Packed into
 * sections within Slack's limits however many targets and hosts there are.
 */
import { hostLabel, type HostAddress } from '../../domain/plan.js';
import type { ReviewPolicy } from '../../domain/review.js';
import { context, section, type Block, type SlackMessage } from './blocks.js';
import { clip, mention, safeText } from './format.js';

export interface TargetSummary {
  name: string;
  description: string | null;
  type: string;
  hosts: readonly HostAddress[];
  rollout: string | null;
  /** Resolved: user lists include usergroup members. */
  review: ReviewPolicy | null;
  /** Slack user groups behind each review group, by group name. */
  usergroups?: ReadonlyMap<string, string>;
}

const HOSTS_SHOWN = 5;
const USERS_SHOWN = 12;
const MAX_SECTIONS = 40;

export function targetText(target: TargetSummary): string {
  const hosts = target.hosts
    .slice(0, HOSTS_SHOWN)
    .map((h) => `\`${safeText(hostLabel(h), 60)}\``)
    .join(', ');
  const moreHosts = target.hosts.length > HOSTS_SHOWN ? ` and ${target.hosts.length - HOSTS_SHOWN} more` : '';
  const lines = [
    `*${safeText(target.name, 80)}*${target.description ? ` · ${safeText(target.description, 200)}` : ''}`,
    `${target.hosts.length} host${target.hosts.length === 1 ? '' : 's'}: ${hosts}${moreHosts} · ${target.type}${target.rollout ? ` · rollout ${safeText(target.rollout, 40)}` : ''}`,
  ];
  if (!target.review) {
    lines.push(':warning: no review: tasks run as soon as they are asked for');
  } else {
    lines.push(`Review in <#${target.review.channel}>${target.review.autoRun ? ' · runs once approved' : ''}:`);
    for (const group of target.review.groups) {
      const shown = group.users.slice(0, USERS_SHOWN).map(mention).join(' ');
      const more = group.users.length > USERS_SHOWN ? ` and ${group.users.length - USERS_SHOWN} more` : '';
      const usergroup = target.usergroups?.get(group.name);
      lines.push(
        `• *${safeText(group.name, 60)}* needs ${group.approvals} approval${group.approvals === 1 ? '' : 's'} from ${usergroup ? `<!subteam^${usergroup}> ` : ''}${shown || '_nobody yet_'}${more}`,
      );
    }
  }
  return clip(lines.join('\n'), 2900);
}

export function renderTargetsList(targets: readonly TargetSummary[]): SlackMessage {
  if (targets.length === 0)
    return { text: 'No targets', blocks: [section('No targets are configured yet: the countersign admins add them to `countersign.yml`.')] };
  const blocks: Block[] = [section(`*Targets* (${targets.length})`)];
  let total = 0;
  let shown = 0;
  for (const target of targets) {
    const text = targetText(target);
    // Stay inside a message's block budget whatever the config holds.
    if (shown >= MAX_SECTIONS || total + text.length > 10_000) break;
    blocks.push(section(text));
    total += text.length;
    shown++;
  }
  if (shown < targets.length) blocks.push(context(`${targets.length - shown} more targets not shown.`));
  return { text: `Targets: ${targets.map((t) => t.name).join(', ')}`.slice(0, 3000), blocks };
}
