/**
 * An execution's plan: groups of steps, one step per host. Steps in a group run at once;
 * groups run one after another. Without a rollout policy every host is in one group.
 */
export interface HostAddress {
  host: string;
  port: number;
  user: string;
}

export type Plan = HostAddress[][];

export function hostLabel(address: HostAddress): string {
  return address.port === 22 ? `${address.user}@${address.host}` : `${address.user}@${address.host}:${address.port}`;
}

export function buildPlan(hosts: readonly HostAddress[]): Plan {
  return hosts.length === 0 ? [] : [[...hosts]];
}
