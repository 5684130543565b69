// The runbook graph and the pinned plan: dependency order, cycles named, `after` triggers
// validated, config checks (targets, secrets, http.allow), and planRun's qualified groups,
// argument hand-down, review targets and content version (fixed values as HMAC).
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseNetAllow } from '../../src/domain/netAllow.js';
import { namedFromOrdered, resolveDeclaredValues } from '../../src/domain/runbook/arguments.js';
import { describeIssues, runbookFromBody, runbookFromRecipe, runbooksConfigSchema, type Runbook } from '../../src/domain/runbook/definition.js';
import { checkRunbooks, dependencyOrder } from '../../src/domain/runbook/graph.js';
import { planRun, runContentVersion, type RunPlan } from '../../src/domain/runbook/plan.js';

function load(yaml: string): Map<string, Runbook> {
  const parsed = runbooksConfigSchema.safeParse(parseYaml(yaml));
  if (!parsed.success) throw new Error(describeIssues(parsed.error.issues, 'runbooks').join('\n'));
  return new Map(Object.entries(parsed.data).map(([ref, body]) => [ref, runbookFromBody(ref, body, 'config')]));
}

const step = (id: string, target = 't') => `{ id: ${id}, script: { target: ${target}, script: "echo ${id}" } }`;

const TARGETS = new Map([
  ['t', { type: 'bash' as const, secrets: new Map<string, string>() }],
  ['web-prod', { type: 'python3' as const, secrets: new Map([['API_TOKEN', 'secret-value-1']]) }],
  ['lb', { type: 'sh' as const, secrets: new Map<string, string>() }],
]);
const KEY = 'server-key-for-fixed-values';

describe('dependencyOrder', () => {
  it('runs dependencies first, depth first in listed order, each runbook once', () => {
    const runbooks = load(`
restart: { dependsOn: [drain, notify], steps: [${step('r')}] }
drain: { dependsOn: [base], steps: [${step('d')}] }
notify: { dependsOn: [base], steps: [${step('n')}] }
base: { steps: [${step('b')}] }
`);
    expect(dependencyOrder(runbooks, 'restart')).toEqual({ ok: true, order: ['base', 'drain', 'notify', 'restart'] });
    expect(dependencyOrder(runbooks, 'base')).toEqual({ ok: true, order: ['base'] });
    expect(dependencyOrder(runbooks, 'nope')).toEqual({ ok: false, error: 'there is no runbook nope' });
  });

  it('names a cycle', () => {
    const runbooks = load(`
a: { dependsOn: [b], steps: [${step('x')}] }
b: { dependsOn: [c], steps: [${step('x')}] }
c: { dependsOn: [a], steps: [${step('x')}] }
`);
    expect(dependencyOrder(runbooks, 'a')).toEqual({ ok: false, error: 'dependsOn makes a cycle: a -> b -> c -> a' });
  });
});

describe('checkRunbooks', () => {
  it('refuses dependency cycles (self included), naming each cycle once', () => {
    const runbooks = load(`
a: { dependsOn: [b], steps: [${step('x')}] }
b: { dependsOn: [a], steps: [${step('x')}] }
c: { dependsOn: [c], steps: [${step('x')}] }
d: { dependsOn: [a], steps: [${step('x')}] }
`);
    expect(checkRunbooks(runbooks, { targets: TARGETS })).toEqual([
      'runbooks.a.dependsOn: the dependencies make a cycle: a -> b -> a',
      'runbooks.c.dependsOn: the dependencies make a cycle: c -> c',
    ]);
  });

  it('refuses references to runbooks that do not exist', () => {
    const runbooks = load(`a: { dependsOn: [ghost], triggeredBy: [manual, { after: phantom }], steps: [${step('x')}] }`);
    expect(checkRunbooks(runbooks, { targets: TARGETS })).toEqual([
      'runbooks.a.dependsOn[0]: there is no runbook ghost',
      'runbooks.a.triggeredBy[1].after: there is no runbook phantom',
    ]);
  });

  it('refuses after-trigger cycles whatever on: says, and a runbook triggered after itself', () => {
    const runbooks = load(`
deploy: { triggeredBy: [manual, { after: cleanup, on: success }], steps: [${step('x')}] }
cleanup: { triggeredBy: [{ after: deploy, on: failure }], steps: [${step('x')}] }
again: { triggeredBy: [{ after: again, on: always }], steps: [${step('x')}] }
ok: { triggeredBy: [{ after: deploy, on: always }], steps: [${step('x')}] }
`);
    expect(checkRunbooks(runbooks, { targets: TARGETS })).toEqual([
      'runbooks.deploy.triggeredBy: the after triggers make a cycle, so runs would start each other forever: cleanup -> deploy -> cleanup',
      'runbooks.again.triggeredBy: the after triggers make a cycle, so runs would start each other forever: again -> again',
    ]);
  });

  it('refuses a dependency or triggered runbook whose argument could never get a value', () => {
    const runbooks = load(`
drain:
  arguments: [{ name: pool, kind: input, required: true }, { name: mode, kind: options, options: [a, b], default: a }]
  steps: [${step('x')}]
restart:
  dependsOn: [drain]
  steps: [${step('x')}]
restart-pool:
  arguments: [{ name: pool, kind: input, required: true }]
  dependsOn: [drain]
  steps: [${step('x')}]
cleanup:
  arguments: [{ name: host, kind: options, options: [a, b] }]
  triggeredBy: [{ after: restart-pool, on: failure }]
  steps: [${step('x')}]
`);
    expect(checkRunbooks(runbooks, { targets: TARGETS })).toEqual([
      'runbooks.restart.dependsOn: drain needs a value for its argument pool, which restart does not declare (declare pool, or give it a default in drain)',
      'runbooks.cleanup.triggeredBy[0]: a run started after restart-pool has no value for host (restart-pool does not declare it): give host a default',
    ]);
  });

  it('checks targets, the secrets headers use, and http.allow', () => {
    const runbooks = load(`
rb:
  steps:
    - ${step('s', 'ghost')}
    - - { id: h1, http: { url: "https://api.example/x", headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}", X-Other: "\${{ secrets.MISSING }}" }, target: web-prod } }
      - { id: h2, http: { url: "https://internal.example/x", target: nowhere } }
    - { id: h3, http: { url: "http://10.1.2.3:8080/x" } }
`);
    const allow = parseNetAllow(['api.example', '10.0.0.0/8']);
    if (!allow.ok) throw new Error('allow');
    expect(checkRunbooks(runbooks, { targets: TARGETS, allow: allow.allow })).toEqual([
      'runbooks.rb.steps[0].script.target: there is no target ghost',
      'runbooks.rb.steps[1][0].http.headers.X-Other: the target web-prod has no secret MISSING',
      'runbooks.rb.steps[1][1].http.target: there is no target nowhere',
      'runbooks.rb.steps[1][1].http.url: the host internal.example is not in http.allow (add it to http.allow to let runbooks call it)',
    ]);
    // Without an allowlist in the context, hosts are not judged here (the executor still refuses).
    expect(checkRunbooks(runbooks, { targets: TARGETS })).toHaveLength(3);
  });
});

const RESTART = `
drain-lb:
  arguments: [{ name: pool, kind: input, pattern: "[a-z]+", default: main }, { name: token, kind: input }]
  steps:
    - { id: stop, script: { target: lb, script: "drain \\"$1\\"" } }
restart-web:
  arguments:
    - { name: token, kind: fixed, value: "fixed-token-1234" }
    - { name: pool, kind: options, options: [main, canary], default: main }
  dependsOn: [drain-lb]
  steps:
    - { id: why, input: { fields: [{ name: ticket, kind: input, pattern: "INC-[0-9]+" }] } }
    - { id: health, http: { url: "https://status.example/h", headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}" }, target: web-prod } }
    - { id: go, approval: { users: [U0123], approvals: 1 } }
    - - { id: a, script: { target: web-prod, script: "systemctl restart web" } }
      - { id: b, script: { target: t, type: sh, script: "systemctl restart web" } }
`;

function plan(runbooks: Map<string, Runbook>, reference: string, args: Record<string, unknown> = {}, key = KEY): RunPlan {
  const planned = planRun(runbooks, reference, args, { fixedValueKey: key, targets: TARGETS });
  if (!planned.ok) throw new Error(JSON.stringify(planned.errors));
  return planned.plan;
}

describe('planRun', () => {
  it('orders groups (dependencies first) with qualified ids, kinds, pinned types and review targets', () => {
    const runbooks = load(RESTART);
    const p = plan(runbooks, 'restart-web', { pool: 'canary' });
    expect(p.reference).toBe('restart-web');
    expect(p.runbooks).toEqual(['drain-lb', 'restart-web']);
    expect(p.groups.map((g) => g.map((s) => `${s.id}:${s.kind}`))).toEqual([
      ['drain-lb.stop:script'],
      ['restart-web.why:input'],
      ['restart-web.health:http'],
      ['restart-web.go:approval'],
      ['restart-web.a:script', 'restart-web.b:script'],
    ]);
    const stop = p.groups[0]![0];
    const [a, b] = p.groups[4]!;
    expect(stop).toMatchObject({ runbook: 'drain-lb', stepId: 'stop', script: { target: 'lb', type: 'sh', script: 'drain "$1"' } });
    expect(a).toMatchObject({ script: { target: 'web-prod', type: 'python3' } });
    expect(b).toMatchObject({ script: { target: 't', type: 'sh' } });
    // Script targets and the http step's target (its secrets): every such policy reviews the run.
    expect(p.targets).toEqual(['lb', 't', 'web-prod']);
    expect(p.contentVersion).toMatch(/^[0-9a-f]{64}$/);
  });

  it("hands the run's values down to dependencies by name, defaults otherwise, fixed values staying fixed", () => {
    const runbooks = load(RESTART);
    const p = plan(runbooks, 'restart-web', { pool: 'canary' });
    expect(p.arguments).toEqual({
      'restart-web': [
        { name: 'token', kind: 'fixed', value: 'fixed-token-1234' },
        { name: 'pool', kind: 'options', value: 'canary' },
      ],
      // drain-lb's token is an input there, but it got restart-web's fixed value: never shown.
      'drain-lb': [
        { name: 'pool', kind: 'input', value: 'canary' },
        { name: 'token', kind: 'fixed', value: 'fixed-token-1234' },
      ],
    });
    const alone = plan(runbooks, 'drain-lb', {});
    expect(alone.arguments).toEqual({
      'drain-lb': [
        { name: 'pool', kind: 'input', value: 'main' },
        { name: 'token', kind: 'input', value: '' },
      ],
    });
  });

  it("refuses bad values: the started runbook's by name, a dependency's by <runbook>.<name>", () => {
    const runbooks = load(RESTART);
    expect(planRun(runbooks, 'restart-web', { pool: 'other', token: 'mine', extra: 1 }, { fixedValueKey: KEY, targets: TARGETS })).toEqual({
      ok: false,
      errors: [
        { name: 'token', message: 'token is fixed by restart-web and cannot be set' },
        { name: 'extra', message: 'restart-web has no argument extra (it takes pool)' },
        { name: 'pool', message: 'pool: expected one of main, canary' },
      ],
    });
    const strict = load(RESTART.replace('options: [main, canary]', 'options: [main, canary, "Bad!"]'));
    expect(planRun(strict, 'restart-web', { pool: 'Bad!' }, { fixedValueKey: KEY, targets: TARGETS })).toEqual({
      ok: false,
      errors: [{ name: 'drain-lb.pool', message: 'drain-lb (a dependency): pool: expected a value matching /[a-z]+/' }],
    });
    expect(planRun(runbooks, 'nope', {}, { fixedValueKey: KEY, targets: TARGETS })).toEqual({
      ok: false,
      errors: [{ name: 'runbook', message: 'there is no runbook nope' }],
    });
    const noTargets = planRun(runbooks, 'restart-web', {}, { fixedValueKey: KEY, targets: new Map() });
    expect(!noTargets.ok && noTargets.errors.map((e) => e.message)).toEqual([
      'drain-lb.stop: there is no target lb',
      'restart-web.a: there is no target web-prod',
      'restart-web.b: there is no target t',
    ]);
  });

  it('is pinned: editing the runbook after planning changes nothing in the plan', () => {
    const runbooks = load(RESTART);
    const p = plan(runbooks, 'restart-web');
    const before = JSON.stringify(p);
    const rb = runbooks.get('restart-web')!;
    const http = rb.steps[1]![0]!;
    if (http.kind === 'http') http.http.url = 'https://evil.example/';
    const script = rb.steps[3]![0]!;
    if (script.kind === 'script') script.script.script = 'rm -rf /';
    expect(JSON.stringify(p)).toBe(before);
    expect(runContentVersion(p, KEY)).toBe(p.contentVersion);
  });

  it('has a content version that follows the content, not the way it was built', () => {
    const runbooks = load(RESTART);
    const base = plan(runbooks, 'restart-web').contentVersion;
    // Same content, runbooks listed in another order: the same version.
    const reordered = new Map([...runbooks.entries()].reverse());
    expect(plan(reordered, 'restart-web').contentVersion).toBe(base);
    // Any change of what runs changes it.
    expect(
      plan(load(RESTART.replace('systemctl restart web" } }\n      - { id: b', 'systemctl restart web " } }\n      - { id: b')), 'restart-web').contentVersion,
    ).not.toBe(base);
    expect(plan(runbooks, 'restart-web', { pool: 'canary' }).contentVersion).not.toBe(base);
    expect(plan(load(RESTART.replace('users: [U0123]', 'users: [U0999]')), 'restart-web').contentVersion).not.toBe(base);
    expect(plan(load(RESTART.replace('script: "drain', 'script: "undrain')), 'restart-web').contentVersion).not.toBe(base);
    // A target's default type is part of what runs.
    const python = new Map([...TARGETS, ['lb', { type: 'python3' as const, secrets: new Map<string, string>() }]]);
    const retyped = planRun(runbooks, 'restart-web', {}, { fixedValueKey: KEY, targets: python });
    expect(retyped.ok && retyped.plan.contentVersion).not.toBe(base);
  });

  it('hashes fixed values as HMAC under the server key: a version reveals nothing, yet a new value changes it', () => {
    const runbooks = load(RESTART);
    const base = plan(runbooks, 'restart-web');
    expect(plan(runbooks, 'restart-web', {}, 'another-key').contentVersion).not.toBe(base.contentVersion);
    const changed = load(RESTART.replace('fixed-token-1234', 'fixed-token-5678'));
    expect(plan(changed, 'restart-web').contentVersion).not.toBe(base.contentVersion);
  });

  it('plans a recipe as its one-step runbook', () => {
    const recipe = runbookFromRecipe({
      name: 'restart',
      description: null,
      target: 't',
      type: null,
      script: 'echo "$1"',
      message: null,
      origin: 'config',
      arguments: [{ name: 'svc', kind: 'input', required: true }],
    });
    const p = planRun(new Map([['restart', recipe]]), 'restart', { svc: 'nginx' }, { fixedValueKey: KEY, targets: TARGETS });
    expect(p.ok && p.plan.groups).toEqual([
      [
        {
          id: 'restart.main',
          runbook: 'restart',
          stepId: 'main',
          name: null,
          continueOnFailure: false,
          kind: 'script',
          script: { target: 't', script: 'echo "$1"', type: 'bash', with: [] },
        },
      ],
    ]);
    expect(p.ok && p.plan.arguments).toEqual({ restart: [{ name: 'svc', kind: 'input', value: 'nginx' }] });
  });
});

describe('argument values in the linear-time engine', () => {
  it("matches (a+)+b against 4,000 a's (about the longest value accepted) without backtracking, and refuses 10,000 by length", () => {
    // A backtracking engine takes exponential time here (30 a's already take seconds in V8);
    // RE2 takes time proportional to the input. The bound is what a loaded 2-core machine keeps.
    const declared = [{ name: 'x', kind: 'input' as const, pattern: '(a+)+b', required: true }];
    resolveDeclaredValues('warm', declared, { x: 'ab' });
    const started = performance.now();
    const result = resolveDeclaredValues('rb', declared, { x: 'a'.repeat(4000) });
    const elapsed = performance.now() - started;
    console.log(`(a+)+b against 4,000 a's: ${elapsed.toFixed(1)} ms`);
    expect(result).toEqual({ ok: false, errors: [{ name: 'x', message: 'x: expected a value matching /(a+)+b/' }] });
    expect(elapsed).toBeLessThan(1000);
    // Longer values are refused by their length before any matching.
    expect(resolveDeclaredValues('rb', declared, { x: 'a'.repeat(10_000) })).toEqual({
      ok: false,
      errors: [{ name: 'x', message: 'x: at most 4096 bytes, without NUL bytes' }],
    });
  });

  it('matches whole values only', () => {
    const declared = [{ name: 'ticket', kind: 'input' as const, pattern: 'INC-[0-9]+', required: true }];
    expect(resolveDeclaredValues('rb', declared, { ticket: 'INC-42' }).ok).toBe(true);
    expect(resolveDeclaredValues('rb', declared, { ticket: 'INC-42; rm -rf /' }).ok).toBe(false);
    expect(resolveDeclaredValues('rb', declared, { ticket: 'x INC-42' }).ok).toBe(false);
    expect(resolveDeclaredValues('rb', declared, {})).toEqual({ ok: false, errors: [{ name: 'ticket', message: 'ticket is required' }] });
  });
});

describe('namedFromOrdered (TheEye task_arguments)', () => {
  it('names ordered values after the settable arguments, skipping fixed ones', () => {
    const declared = [
      { name: 'token', kind: 'fixed' as const, value: 'abcd' },
      { name: 'pool', kind: 'options' as const, options: ['main', 'canary'] },
      { name: 'note', kind: 'input' as const, required: false },
    ];
    expect(namedFromOrdered('rb', declared, ['canary', 'hi'])).toEqual({ ok: true, given: { pool: 'canary', note: 'hi' } });
    expect(namedFromOrdered('rb', declared, ['canary'])).toEqual({ ok: true, given: { pool: 'canary' } });
    expect(namedFromOrdered('rb', declared, ['a', 'b', 'c'])).toEqual({
      ok: false,
      errors: [{ name: 'task_arguments', message: 'rb takes 2 values (pool, note); 3 were given' }],
    });
  });
});
