// Runbook definitions as pure rules: the issue's example parses to the documented shape; every
// mistake is refused with a message naming its field; references are checked where they are
// used; the JSON format round-trips (fixed values left out); a recipe is a one-step runbook.
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Recipe } from '../../src/domain/recipe.js';
import {
  describeIssues,
  exportRunbook,
  parseRunbookJson,
  runbookFromBody,
  runbookFromRecipe,
  runbooksConfigSchema,
  RUNBOOK_FORMAT,
  type Runbook,
} from '../../src/domain/runbook/definition.js';

/** Parses a `runbooks:` map (YAML text) and answers the runbooks or the problems. */
function load(yaml: string): { ok: true; runbooks: Map<string, Runbook> } | { ok: false; problems: string[] } {
  const parsed = runbooksConfigSchema.safeParse(parseYaml(yaml));
  if (!parsed.success) return { ok: false, problems: describeIssues(parsed.error.issues, 'runbooks') };
  return { ok: true, runbooks: new Map(Object.entries(parsed.data).map(([ref, body]) => [ref, runbookFromBody(ref, body, 'config')])) };
}

function problems(yaml: string): string[] {
  const loaded = load(yaml);
  if (loaded.ok) throw new Error('expected problems, the runbooks loaded');
  return loaded.problems;
}

/** One runbook `rb` with the given steps (YAML flow text, one entry per line). */
function withSteps(steps: string, extra = ''): string {
  return `rb:\n${extra}  steps:\n${steps
    .trim()
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n')}\n`;
}

const ISSUE_EXAMPLE = `
restart-web:
  name: Restart the web tier
  description: Drains, restarts and checks web-prod
  tags: [web, restart]
  arguments:
    - { name: mode, kind: options, options: [soft, hard], default: soft }
  dependsOn: [drain-lb]
  triggeredBy: [manual, { after: deploy-web, on: success }]
  grace: 2m
  steps:
    - { id: why, input: { fields: [{ name: ticket, kind: input, pattern: "INC-[0-9]+" }] } }
    - { id: health, http: { url: "https://status.example/health", method: GET, timeout: 10s,
        successStatus: 200, successPattern: '/"ok":\\s*true/' } }
    - { id: go, approval: { users: [U0123], usergroup: S0456, approvals: 1 } }
    - - { id: a, script: { target: web-prod-a, script: "systemctl restart web", with: { TICKET: "\${{ steps.why.ticket }}" } } }
      - { id: b, script: { target: web-prod-b, script: "systemctl restart web" } }
`;

describe('a runbook definition', () => {
  it('parses the issue example into groups of typed steps', () => {
    const loaded = load(ISSUE_EXAMPLE);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const runbook = loaded.runbooks.get('restart-web')!;
    expect(runbook).toMatchObject({
      reference: 'restart-web',
      name: 'Restart the web tier',
      description: 'Drains, restarts and checks web-prod',
      tags: ['web', 'restart'],
      dependsOn: ['drain-lb'],
      triggeredBy: [{ kind: 'manual' }, { kind: 'after', runbook: 'deploy-web', on: 'success' }],
      graceMs: 120_000,
      editors: null,
      origin: 'config',
    });
    expect(runbook.steps.map((group) => group.map((s) => `${s.id}:${s.kind}`))).toEqual([
      ['why:input'],
      ['health:http'],
      ['go:approval'],
      ['a:script', 'b:script'],
    ]);
    expect(runbook.steps[1]![0]).toEqual({
      id: 'health',
      name: null,
      continueOnFailure: false,
      kind: 'http',
      http: {
        url: 'https://status.example/health',
        method: 'GET',
        headers: [],
        compress: true,
        timeoutMs: 10_000,
        successStatus: [200],
        successPattern: '/"ok":\\s*true/',
        target: null,
      },
    });
    expect(runbook.steps[2]![0]).toMatchObject({
      kind: 'approval',
      approval: { users: ['U0123'], usergroup: 'S0456', approvals: 1, timeoutMs: null, channel: null, dm: false },
    });
    expect(runbook.steps[3]![0]).toMatchObject({
      kind: 'script',
      script: { target: 'web-prod-a', type: null, with: [{ name: 'TICKET', value: '${{ steps.why.ticket }}' }] },
    });
  });

  it('fills defaults: name from the reference, triggered by hand, GET, 30s, any 2xx', () => {
    const loaded = load(withSteps('- { id: ping, http: { url: "https://api.example/ping" } }'));
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const runbook = loaded.runbooks.get('rb')!;
    expect(runbook).toMatchObject({ name: 'rb', triggeredBy: [{ kind: 'manual' }], graceMs: null, arguments: [], tags: [] });
    expect(runbook.steps[0]![0]).toMatchObject({ http: { method: 'GET', timeoutMs: 30_000, successStatus: null, compress: true } });
  });

  it('keeps http header order and body JSON as written', () => {
    const loaded = load(
      withSteps(`- id: post
  http: { url: "https://api.example/x", method: post, headers: { X-B: "2", X-A: "1" }, body: { n: 1, list: [true, null, "s"] }, successStatus: [200, 201] }`),
    );
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    expect(loaded.runbooks.get('rb')!.steps[0]![0]).toMatchObject({
      http: {
        method: 'POST',
        headers: [
          { name: 'X-B', value: '2' },
          { name: 'X-A', value: '1' },
        ],
        body: { n: 1, list: [true, null, 's'] },
        successStatus: [200, 201],
      },
    });
  });
});

describe('mistakes name their field', () => {
  it('refuses a step of no kind or two kinds, unknown fields, bad ids and bad nesting', () => {
    expect(
      problems(
        withSteps(`
- { id: none }
- { id: two, script: { target: t, script: x }, approval: { users: [U1AA] } }
- { id: 1bad, script: { target: t, script: x } }
- { id: typo, script: { target: t, script: x, targte: y } }
- []
- - { id: ok, script: { target: t, script: x } }
  - [ { id: deeper, script: { target: t, script: x } } ]
`),
      ),
    ).toEqual([
      'runbooks.rb.steps[0]: a step needs exactly one of script, http, approval or input',
      'runbooks.rb.steps[1]: a step is one kind: it has script and approval',
      'runbooks.rb.steps[2].id: step ids are letters, digits, - and _, starting with a letter (no dots: qualified ids are <runbook>.<step>)',
      'runbooks.rb.steps[3].script: unknown field: targte',
      'runbooks.rb.steps[4]: a group lists at least one step',
      'runbooks.rb.steps[5][1]: a group is a list of steps; lists inside a group are not allowed',
    ]);
    expect(problems('rb: { steps: [] }')).toEqual(['runbooks.rb.steps: a runbook has at least one step']);
    expect(problems('"bad ref!": { steps: [ { id: a, script: { target: t, script: x } } ] }')).toEqual([
      'runbooks.bad ref!: runbook references use letters, digits, -, _ and . (at most 64)',
    ]);
  });

  it('refuses bad http steps: URLs, headers, bodies, statuses and patterns', () => {
    expect(
      problems(
        withSteps(`
- { id: u1, http: { url: "ftp://files.example/x" } }
- { id: u2, http: { url: "https://\${{ args.host }}/x" } }
- { id: u3, http: { url: "https://api.example\${{ args.x }}/x" } }
- { id: u4, http: { url: "https://user:pw@api.example/x" } }
- { id: u5, http: { url: "https://api.example/\${{ nope }}" } }
- { id: h1, http: { url: "https://api.example/", headers: { Host: evil.example } } }
- { id: h2, http: { url: "https://api.example/", headers: { "Bad Name": x } } }
- { id: h3, http: { url: "https://api.example/", headers: { X-A: "a\\r\\nX-Injected: 1" } } }
- { id: b1, http: { url: "https://api.example/", method: GET, body: { a: 1 } } }
- { id: m1, http: { url: "https://api.example/", method: FETCH } }
- { id: s1, http: { url: "https://api.example/", successStatus: 700 } }
- { id: p1, http: { url: "https://api.example/", successPattern: "/(a)\\\\1/" } }
- { id: p2, http: { url: "https://api.example/", successPattern: "/(?<=x)y/" } }
- { id: t1, http: { url: "https://api.example/", timeout: soon } }
- { id: d1, http: { url: "https://api.example/a/%2E%2e/admin" } }
`),
      ),
    ).toEqual([
      'runbooks.rb.steps[0].http.url: expected an http:// or https:// URL',
      'runbooks.rb.steps[1].http.url: the scheme, host and port must be written out: references may fill the path, query or fragment, not the host',
      'runbooks.rb.steps[2].http.url: the scheme, host and port must be written out: references may fill the path, query or fragment, not the host',
      'runbooks.rb.steps[3].http.url: a URL cannot carry a user or password (send credentials in a header, from a secret)',
      'runbooks.rb.steps[4].http.url: "nope": a reference starts with args., steps. or secrets.',
      'runbooks.rb.steps[5].http.headers.Host: Host is set by countersign (framing and routing headers cannot be given)',
      'runbooks.rb.steps[6].http.headers.Bad Name: "Bad Name" is not a header name (letters, digits and !#$%&\'*+.^_`|~-)',
      'runbooks.rb.steps[7].http.headers.X-A: a header value cannot contain CR, LF or NUL',
      'runbooks.rb.steps[8].http.body: a GET request has no body',
      'runbooks.rb.steps[9].http.method: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
      'runbooks.rb.steps[10].http.successStatus: an HTTP status code is 100 to 599',
      expect.stringMatching(
        /^runbooks\.rb\.steps\[11\]\.http\.successPattern: not a valid pattern for the linear-time engine \(RE2 syntax: no backreferences or lookaround\)/,
      ),
      expect.stringMatching(/^runbooks\.rb\.steps\[12\]\.http\.successPattern: not a valid pattern for the linear-time engine/),
      'runbooks.rb.steps[13].http.timeout: expected a duration like 30s, 15m or 1h',
      'runbooks.rb.steps[14].http.url: a URL path has no . or .. segments (write the path it means)',
    ]);
  });

  it('refuses bad approval and input steps', () => {
    expect(
      problems(
        withSteps(`
- { id: a1, approval: { approvals: 1 } }
- { id: a2, approval: { users: [U0AAA, U0AAA], approvals: 2 } }
- { id: a3, approval: { users: [someone] } }
- { id: i1, input: { fields: [] } }
- { id: i2, input: { fields: [{ name: token, kind: fixed, value: abc }] } }
- { id: i3, input: { fields: [{ name: status, kind: input }] } }
- { id: i4, input: { fields: [{ name: Ticket, kind: input }, { name: ticket, kind: input }] } }
- { id: i5, input: { fields: [{ name: t, kind: input, pattern: "(?=a)b" }] } }
`),
      ),
    ).toEqual([
      'runbooks.rb.steps[0].approval: an approval step needs users, a usergroup, or both',
      'runbooks.rb.steps[1].approval.approvals: approvals is larger than the number of users, so the step could never be approved',
      'runbooks.rb.steps[2].approval.users[0]: expected a Slack user id like U0123ABC',
      'runbooks.rb.steps[3].input.fields: an input step asks for at least one field',
      "runbooks.rb.steps[4].input.fields[0].kind: an input field is of kind options or input (a fixed value belongs in the runbook's arguments)",
      'runbooks.rb.steps[5].input.fields[0].name: status is a reserved name (phase, status, body, json)',
      'runbooks.rb.steps[6].input.fields[1].name: the field ticket is declared twice (names are compared uppercased: ARG_TICKET)',
      expect.stringMatching(/^runbooks\.rb\.steps\[7\]\.input\.fields\[0\]\.pattern: .*(not a valid|linear-time)/),
    ]);
  });

  it('refuses bad runbook fields', () => {
    expect(
      problems(`rb:
  tags: [Web]
  grace: later
  triggeredBy: [sometimes, { after: other, on: maybe }]
  dependsOn: ["no spaces"]
  editors: { users: [U0AAA] }
  arguments: [{ name: a, kind: input }, { name: A, kind: input }]
  steps: [ { id: s, script: { target: t, script: x } } ]
`),
    ).toEqual([
      'runbooks.rb.tags[0]: tags are lowercase letters, digits, - _ . (at most 32)',
      'runbooks.rb.dependsOn[0]: expected a runbook reference',
      'runbooks.rb.triggeredBy[0]: expected manual, schedule, webhook or { after: <runbook>, on: success|failure|always }',
      'runbooks.rb.triggeredBy[1].on: expected success, failure or always',
      'runbooks.rb.grace: expected a duration like 30s, 15m or 1h',
      'runbooks.rb: unknown field: editors',
    ]);
    expect(problems(withSteps('- { id: s, script: { target: t, script: x } }', '  arguments: [{ name: a, kind: input }, { name: A, kind: input }]\n'))).toEqual(
      ['runbooks.rb.arguments[1].name: the argument A is declared twice (names are compared uppercased: ARG_A)'],
    );
  });
});

describe('references are checked where they are used', () => {
  const ARGS = '  arguments: [{ name: env, kind: options, options: [prod, staging], default: prod }]\n';

  it('accepts arguments, earlier steps and their fields', () => {
    const loaded = load(
      withSteps(
        `
- { id: why, input: { fields: [{ name: ticket, kind: input }] } }
- { id: health, http: { url: "https://api.example/h?t=\${{ steps.why.ticket }}&e=\${{ args.env }}" } }
- { id: build, script: { target: t, script: x } }
- { id: use, script: { target: t, script: x, with: { A: "\${{ steps.health.status }}", B: "\${{ steps.health.json.items.0.id }}", C: "\${{ steps.build.version }}", D: "\${{ steps.why.phase }}", E: "$\${{ literal }}" } } }
`,
        ARGS,
      ),
    );
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
  });

  it('refuses references to later steps, the same group, itself, unknown names and wrong fields', () => {
    expect(
      problems(
        withSteps(
          `
- { id: first, script: { target: t, script: x, with: { A: "\${{ steps.later.x }}" } } }
- - { id: left, script: { target: t, script: x } }
  - { id: right, script: { target: t, script: x, with: { B: "\${{ steps.left.x }}" } } }
- { id: self, http: { url: "https://api.example/\${{ steps.self.body }}" } }
- { id: later, script: { target: t, script: x, with: { C: "\${{ args.missing }}", D: "\${{ steps.first.status }}", E: "\${{ steps.first.json.a }}" } } }
- { id: ask, input: { fields: [{ name: ticket, kind: input }] } }
- { id: go, approval: { users: [U0AAA] } }
- { id: last, http: { url: "https://api.example/\${{ steps.ask.tikcet }}", headers: { X-G: "\${{ steps.go.approver }}" } } }
`,
          ARGS,
        ),
      ),
    ).toEqual([
      'runbooks.rb.steps[0].script.with.A: steps.later.x: there is no step later before this one (a step may use values of steps in earlier groups of the same runbook)',
      'runbooks.rb.steps[1][1].script.with.B: steps.left.x: left runs at the same time as this step (same group), so its values are not known yet',
      'runbooks.rb.steps[2].http.url: steps.self.body: a step cannot use its own values',
      'runbooks.rb.steps[3].script.with.C: args.missing: the runbook has no argument missing',
      "runbooks.rb.steps[3].script.with.D: steps.first.status: status is an http step's (first is a script step; every step has .phase)",
      "runbooks.rb.steps[3].script.with.E: steps.first.json.a: json is an http step's (first is a script step)",
      'runbooks.rb.steps[6].http.url: steps.ask.tikcet: the input step ask has no field tikcet (it asks for ticket)',
      'runbooks.rb.steps[6].http.headers.X-G: steps.go.approver: approval steps have no named values (use .phase)',
    ]);
  });

  it('allows secrets only in header values of an http step that names its target', () => {
    expect(
      problems(
        withSteps(`
- { id: a, http: { url: "https://api.example/", headers: { Authorization: "Bearer \${{ secrets.TOKEN }}" } } }
- { id: b, http: { url: "https://api.example/?k=\${{ secrets.TOKEN }}", target: t } }
- { id: c, http: { url: "https://api.example/", method: POST, body: { k: "\${{ secrets.TOKEN }}" }, target: t } }
- { id: d, script: { target: t, script: x, with: { K: "\${{ secrets.TOKEN }}" } } }
- { id: e, http: { url: "https://api.example/", headers: { Authorization: "Bearer \${{ secrets.TOKEN }}" }, target: t } }
`),
      ),
    ).toEqual([
      'runbooks.rb.steps[0].http.headers.Authorization: secrets.TOKEN: name the target whose secrets this request uses (http.target)',
      'runbooks.rb.steps[1].http.url: secrets.TOKEN: secrets may only be used in header values',
      'runbooks.rb.steps[2].http.body.k: secrets.TOKEN: secrets may only be used in header values',
      'runbooks.rb.steps[3].script.with.K: secrets.TOKEN: secrets may only be used in header values',
    ]);
  });

  it('refuses with values that would collide with an argument or each other as ARG_<NAME>', () => {
    expect(problems(withSteps('- { id: s, script: { target: t, script: x, with: { ENV: a, Other: b, OTHER: c } } }', ARGS))).toEqual([
      'runbooks.rb.steps[0].script.with.ENV: ENV is also an argument of the runbook (both would be ARG_ENV)',
      'runbooks.rb.steps[0].script.with.OTHER: OTHER is given twice (names are compared uppercased: ARG_OTHER)',
    ]);
  });

  it('refuses duplicate step ids, naming both places', () => {
    expect(
      problems(
        withSteps(
          '- { id: s, script: { target: t, script: x } }\n- - { id: s, script: { target: t, script: y } }\n  - { id: u, script: { target: t, script: y } }',
        ),
      ),
    ).toEqual(['runbooks.rb.steps[1][0].id: the step id s is used twice (also at steps[0])']);
  });

  it('refuses unterminated and malformed templates', () => {
    expect(problems(withSteps('- { id: s, script: { target: t, script: x, with: { A: "${{ args.x" , B: "${{ steps.x }}", C: "${{ steps..a }}" } } }'))).toEqual(
      [
        'runbooks.rb.steps[0].script.with.A: "${{" at character 1 is not closed with "}}" (write $${{ for a literal ${{)',
        'runbooks.rb.steps[0].script.with.B: "steps.x": expected steps.<id>.<field>, e.g. steps.why.ticket or steps.health.status',
        'runbooks.rb.steps[0].script.with.C: "steps..a": expected steps.<id>.<field>, e.g. steps.why.ticket or steps.health.status',
      ],
    );
  });
});

describe('__proto__ is refused as a name', () => {
  // zod's records drop such a key silently and canonicalJson would not hash it: a value could
  // then change without changing the content version.
  it('in with, headers and body keys (YAML and JSON alike)', () => {
    expect(
      problems(
        withSteps(`
- { id: s, script: { target: t, script: x, with: { __proto__: v, B: w } } }
- { id: h, http: { url: "https://a.example/", headers: { __proto__: z } } }
- { id: b, http: { url: "https://a.example/", method: POST, body: { list: [{ __proto__: { polluted: 1 } }] } } }
`),
      ),
    ).toEqual([
      'runbooks.rb.steps[0].script.with: "__proto__" cannot be used as a name',
      'runbooks.rb.steps[1].http.headers: "__proto__" cannot be used as a name',
      'runbooks.rb.steps[2].http.body.list[0]: "__proto__" cannot be used as a name',
    ]);
    const imported = parseRunbookJson(
      JSON.parse('{"format":"countersign.runbook/v1","reference":"x","steps":[{"id":"s","script":{"target":"t","script":"x","with":{"__proto__":"v"}}}]}'),
    );
    expect(imported).toEqual({ ok: false, problems: ['steps[0].script.with: "__proto__" cannot be used as a name'] });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('input patterns run in the linear-time engine', () => {
  it('accepts a pattern a backtracking engine would choke on, and refuses what RE2 cannot run', () => {
    expect(load(withSteps('- { id: s, script: { target: t, script: x } }', '  arguments: [{ name: a, kind: input, pattern: "(a+)+b" }]\n')).ok).toBe(true);
    expect(problems(withSteps('- { id: s, script: { target: t, script: x } }', '  arguments: [{ name: a, kind: input, pattern: "(a)\\\\1" }]\n'))[0]).toMatch(
      /^runbooks\.rb\.arguments\[0\]\.pattern: /,
    );
  });
});

describe('the JSON format', () => {
  const JSON_RUNBOOK = {
    format: RUNBOOK_FORMAT,
    reference: 'rotate-keys',
    name: 'Rotate keys',
    tags: ['security'],
    arguments: [
      { name: 'token', kind: 'fixed', value: 'very-secret-value' },
      { name: 'env', kind: 'options', options: ['prod', 'staging'] },
    ],
    triggeredBy: ['manual', 'webhook', { after: 'deploy', on: 'failure' }],
    grace: '90s',
    editors: { users: ['U0AAA'], usergroup: 'S0BBB' },
    steps: [
      { id: 'ask', input: { fields: [{ name: 'why', kind: 'input', required: true }], from: { usergroup: 'S0BBB' }, timeout: '1h' } },
      { id: 'go', approval: { users: ['U0AAA', 'U0CCC'], approvals: 2, timeout: '30m', channel: 'C0REVIEW', dm: true } },
      [
        { id: 'one', continueOnFailure: true, script: { target: 'a', script: 'rotate', type: 'python3', with: { WHY: '${{ steps.ask.why }}' } } },
        {
          id: 'two',
          name: 'Notify',
          http: {
            url: 'https://hooks.example/x',
            method: 'POST',
            body: { text: 'rotated for ${{ steps.ask.why }}' },
            successStatus: [200, 204],
            target: 'a',
            headers: { Authorization: 'Bearer ${{ secrets.HOOK }}' },
          },
        },
      ],
    ],
  };

  it('imports with editors and names problems without the runbooks. prefix', () => {
    const parsed = parseRunbookJson(JSON_RUNBOOK);
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    expect(parsed.runbook).toMatchObject({ reference: 'rotate-keys', origin: 'imported', editors: { users: ['U0AAA'], usergroup: 'S0BBB' }, graceMs: 90_000 });
    expect(parseRunbookJson({ ...JSON_RUNBOOK, format: 'countersign.recipe/v1', reference: 'bad name', steps: [{ id: 'x' }] })).toEqual({
      ok: false,
      problems: [
        'format: expected "countersign.runbook/v1"',
        'reference: runbook references use letters, digits, -, _ and . (at most 64)',
        'steps[0]: a step needs exactly one of script, http, approval or input',
      ],
    });
    expect(parseRunbookJson([])).toEqual({ ok: false, problems: ['expected a JSON object with reference and steps'] });
  });

  it('exports without fixed values; the export imports again once they are filled in', () => {
    const parsed = parseRunbookJson(JSON_RUNBOOK);
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    const exported = exportRunbook(parsed.runbook);
    expect(exported.fixedLeftOut).toEqual(['token']);
    expect(exported.json).not.toContain('very-secret-value');
    const back = JSON.parse(exported.json) as { arguments: Array<Record<string, unknown>> };
    const refused = parseRunbookJson(back);
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.problems[0]).toMatch(/^arguments\[0\]\.value: /);
    back.arguments[0]!.value = 'very-secret-value';
    const again = parseRunbookJson(back);
    if (!again.ok) throw new Error(again.problems.join('\n'));
    expect(again.runbook).toEqual(parsed.runbook);
  });
});

describe('runbookFromRecipe', () => {
  it('is one script step `main` whose arguments reach the script as the recipe task does', () => {
    const recipe: Recipe = {
      name: 'restart',
      description: 'Restart a unit',
      target: 'web-prod',
      type: 'sh',
      script: 'systemctl restart "$2"',
      message: 'routine',
      origin: 'config',
      arguments: [
        { name: 'token', kind: 'fixed', value: 'abcd' },
        { name: 'service', kind: 'input', pattern: '[a-z]+', required: true },
      ],
    };
    expect(runbookFromRecipe(recipe)).toEqual({
      reference: 'restart',
      name: 'restart',
      description: 'Restart a unit',
      tags: [],
      message: 'routine',
      arguments: recipe.arguments,
      dependsOn: [],
      triggeredBy: [{ kind: 'manual' }, { kind: 'schedule' }, { kind: 'webhook' }],
      graceMs: null,
      editors: null,
      steps: [
        [
          {
            id: 'main',
            name: null,
            continueOnFailure: false,
            kind: 'script',
            script: { target: 'web-prod', script: 'systemctl restart "$2"', type: 'sh', with: [] },
          },
        ],
      ],
      origin: 'recipe',
    });
  });
});
