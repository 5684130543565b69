/** The README's worked runbook example is a valid config: it loads and passes the graph checks. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseNetAllow } from '../../src/domain/netAllow.js';
import { checkRunbooks, runbookFromBody, runbooksConfigSchema } from '../../src/domain/runbook/index.js';

describe('README runbook example', () => {
  it('parses and passes every load check', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Runbooks'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const doc = parse(yaml) as { http: { allow: string[] }; runbooks: unknown };
    const parsed = runbooksConfigSchema.safeParse(doc.runbooks);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    const runbooks = new Map(Object.entries(parsed.data!).map(([reference, body]) => [reference, runbookFromBody(reference, body, 'config')]));
    const allow = parseNetAllow(doc.http.allow);
    const target = { secrets: new Map<string, string>() };
    expect(
      checkRunbooks(runbooks, {
        targets: new Map([
          ['lb-prod', target],
          ['web-prod-a', target],
          ['web-prod-b', target],
        ]),
        ...(allow.ok ? { allow: allow.allow } : {}),
      }),
    ).toEqual([]);
    expect(runbooks.get('restart-web')?.steps.map((g) => g.map((s) => s.id))).toEqual([['why'], ['health'], ['version'], ['go'], ['a', 'b']]);
  });
});
