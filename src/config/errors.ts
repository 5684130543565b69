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
  return issues.map((issue) => {
    let path = prefix;
    for (const key of issue.path) {
      if (typeof key === 'number') path += `[${key}]`;
      else path += path === '' ? String(key) : `.${String(key)}`;
    }
    const message = issue.message.replace(/^Invalid input: /, '');
    return path === '' ? message : `${path}: ${message}`;
  });
}
