import type { z } from 'zod';

/** A config or env problem: stops the start with every field named. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source} is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `targets.web-prod.hosts[0].port: expected number, received string` */
export function describeIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string[] {
  return issues.flatMap((issue) => {
    // A bad record key (a target name) carries the real reason in nested issues.
    if (issue.code === 'invalid_key') {
      const key = String(issue.path[issue.path.length - 1] ?? '');
      return describeIssues(issue.issues, '').map((line) => `${pathOf(issue.path, prefix)}: the name "${key}" is not allowed: ${line}`);
    }
    return [formatIssue(issue, prefix)];
  });
}

function pathOf(segments: readonly PropertyKey[], prefix: string): string {
  let path = prefix;
  for (const key of segments) {
    if (typeof key === 'number') path += `[${key}]`;
    else path += path === '' ? String(key) : `.${String(key)}`;
  }
  return path;
}

function formatIssue(issue: z.core.$ZodIssue, prefix: string): string {
  const path = pathOf(issue.path, prefix);
  const message = issue.message.replace(/^Invalid input: /, '');
  return path === '' ? message : `${path}: ${message}`;
}
