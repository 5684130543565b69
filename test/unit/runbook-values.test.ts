// References filled in for each place that takes them, each place encoding what it gets:
// scripts (ARG_<NAME> and positional, never in the text), URLs (percent-encoded, host fixed),
// headers (no CR/LF), JSON bodies (typed values); and unanswerable references failing the step.
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { describeIssues, runbookFromBody, runbooksConfigSchema, type Runbook } from '../../src/domain/runbook/definition.js';
import { planRun, type PlannedStep, type RunPlan } from '../../src/domain/runbook/plan.js';
import { parseTemplate } from '../../src/domain/runbook/template.js';
import { referenceValue, resolveHttpStep, resolveInputValues, resolveScriptStep, type RunValues, type StepValues } from '../../src/domain/runbook/values.js';

const TARGETS = new Map([['t', { type: 'bash' as const }]]);
const SECRETS = new Map([['API_TOKEN', 'tok-123456']]);

function planOf(yaml: string, args: Record<string, unknown> = {}): RunPlan {
  const parsed = runbooksConfigSchema.safeParse(parseYaml(yaml));
  if (!parsed.success) throw new Error(describeIssues(parsed.error.issues, 'runbooks').join('\n'));
  const runbooks = new Map<string, Runbook>(Object.entries(parsed.data).map(([ref, body]) => [ref, runbookFromBody(ref, body, 'config')]));
  const planned = planRun(runbooks, 'rb', args, { fixedValueKey: 'k', targets: TARGETS });
  if (!planned.ok) throw new Error(JSON.stringify(planned.errors));
  return planned.plan;
}

function stepOf(plan: RunPlan, id: string): PlannedStep {
  const found = plan.groups.flat().find((s) => s.stepId === id);
  if (!found) throw new Error(`no step ${id}`);
  return found;
}

const RUNBOOK = `
rb:
  arguments:
    - { name: env, kind: options, options: [prod, "a b/c?d#e&f=g"], default: prod }
    - { name: key, kind: fixed, value: "fixed/key value" }
    - { name: short, kind: fixed, value: "abc" }
  steps:
    - { id: ask, input: { fields: [{ name: ticket, kind: input }, { name: mode, kind: options, options: [soft, hard], default: soft }] } }
    - { id: build, script: { target: t, script: "make" } }
    - { id: probe, continueOnFailure: true, http: { url: "https://api.example/probe" } }
    - id: call
      http:
        url: "https://api.example/v1/\${{ steps.ask.ticket }}/items?env=\${{ args.env }}&k=\${{ args.key }}#\${{ steps.build.version }}"
        method: POST
        target: t
        headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}", X-Ticket: "\${{ steps.ask.ticket }}" }
        body:
          ticket: "\${{ steps.ask.ticket }}"
          status: "\${{ steps.probe.status }}"
          first: "\${{ steps.probe.json.items.0 }}"
          all: "\${{ steps.probe.json }}"
          note: "probe said \${{ steps.probe.status }} for \${{ args.env }}"
          literal: "$\${{ not a reference }}"
          nested: [{ v: "\${{ steps.build.version }}" }]
    - id: deploy
      script: { target: t, script: "deploy", with: { TICKET: "\${{ steps.ask.ticket }}", CODE: "\${{ steps.probe.status }}", ITEMS: "\${{ steps.probe.json.items }}", PHASE: "\${{ steps.probe.phase }}", TEXT: "v=\${{ steps.build.version }}!" } }
`;

function values(plan: RunPlan, steps: Record<string, StepValues>): RunValues {
  return { arguments: plan.arguments, steps: Object.fromEntries(Object.entries(steps).map(([id, v]) => [`rb.${id}`, v])) };
}

const DONE: Record<string, StepValues> = {
  ask: { phase: 'succeeded', outputs: { ticket: 'INC-1/../../admin?x=1#frag', mode: 'soft' } },
  build: { phase: 'succeeded', outputs: { version: '1.4.2' } },
  probe: { phase: 'failed', http: { status: 503, body: '{"items":[{"id":7}]}', json: { items: [{ id: 7 }, 'two'] } } },
};

describe('resolveScriptStep', () => {
  it("gives the runbook's arguments (declared order) then the step's with values, as ARG_<NAME> and positional", () => {
    const plan = planOf(RUNBOOK);
    expect(resolveScriptStep(stepOf(plan, 'deploy'), values(plan, DONE))).toEqual({
      ok: true,
      arguments: [
        { name: 'ENV', value: 'prod', fixed: false },
        { name: 'KEY', value: 'fixed/key value', fixed: true },
        { name: 'SHORT', value: 'abc', fixed: true },
        { name: 'TICKET', value: 'INC-1/../../admin?x=1#frag', fixed: false },
        { name: 'CODE', value: '503', fixed: false },
        { name: 'ITEMS', value: '[{"id":7},"two"]', fixed: false },
        { name: 'PHASE', value: 'failed', fixed: false },
        { name: 'TEXT', value: 'v=1.4.2!', fixed: false },
      ],
    });
    // The script's text is never a template: it is sent as written.
    expect(stepOf(plan, 'deploy')).toMatchObject({ script: { script: 'deploy' } });
  });

  it('marks a with value fixed when its template reads a fixed argument, alone or inside a larger text (review 11, F1)', () => {
    const plan = planOf(`
rb:
  arguments:
    - { name: env, kind: options, options: [prod], default: prod }
    - { name: key, kind: fixed, value: "fixed/key value" }
    - { name: short, kind: fixed, value: "ab" }
  steps:
    - { id: go, script: { target: t, script: "go", with: { COPY: "\${{ args.key }}", WRAPPED: "Bearer \${{ args.key }}!", TINY: "x\${{ args.short }}", ENV_ONLY: "env=\${{ args.env }}", LITERAL: "$\${{ args.key }}" } } }
`);
    const resolved = resolveScriptStep(stepOf(plan, 'go'), values(plan, {}));
    if (!resolved.ok) throw new Error(resolved.error);
    expect(resolved.arguments.filter((a) => a.fixed).map((a) => a.name)).toEqual(['KEY', 'SHORT', 'COPY', 'WRAPPED', 'TINY']);
    expect(resolved.arguments.find((a) => a.name === 'WRAPPED')?.value).toBe('Bearer fixed/key value!');
    expect(resolved.arguments.find((a) => a.name === 'LITERAL')).toEqual({ name: 'LITERAL', value: '${{ args.key }}', fixed: false });
  });

  it('fails with the reason when a value is missing or cannot be an argument', () => {
    const plan = planOf(RUNBOOK);
    const deploy = stepOf(plan, 'deploy');
    expect(resolveScriptStep(deploy, values(plan, { ...DONE, build: { phase: 'succeeded', outputs: {} } }))).toEqual({
      ok: false,
      error: 'with.TEXT: steps.build.version: build left no value named version',
    });
    expect(resolveScriptStep(deploy, values(plan, { ...DONE, probe: { phase: 'skipped' } }))).toEqual({
      ok: false,
      error: 'with.CODE: steps.probe.status: probe was skipped',
    });
    expect(resolveScriptStep(deploy, values(plan, { ...DONE, ask: { phase: 'succeeded', outputs: { ticket: 'a\u0000b' } } }))).toEqual({
      ok: false,
      error: 'with.TICKET: the value contains a NUL byte, which a script argument cannot hold',
    });
    expect(resolveScriptStep(stepOf(plan, 'call'), values(plan, DONE))).toEqual({ ok: false, error: 'rb.call is not a script step' });
  });
});

describe('resolveHttpStep', () => {
  it('percent-encodes URL values, keeps the host, fills headers and typed JSON body values', () => {
    const plan = planOf(RUNBOOK, { env: 'a b/c?d#e&f=g' });
    const resolved = resolveHttpStep(stepOf(plan, 'call'), values(plan, DONE), SECRETS);
    if (!resolved.ok) throw new Error(resolved.error);
    const { request } = resolved;
    expect(request.url).toBe('https://api.example/v1/INC-1%2F..%2F..%2Fadmin%3Fx%3D1%23frag/items?env=a%20b%2Fc%3Fd%23e%26f%3Dg&k=fixed%2Fkey%20value#1.4.2');
    const url = new URL(request.url);
    expect(url.hostname).toBe('api.example');
    expect(url.pathname).toBe('/v1/INC-1%2F..%2F..%2Fadmin%3Fx%3D1%23frag/items');
    expect(url.searchParams.get('env')).toBe('a b/c?d#e&f=g');
    expect(request.headers).toEqual([
      { name: 'Authorization', value: 'Bearer tok-123456' },
      { name: 'X-Ticket', value: 'INC-1/../../admin?x=1#frag' },
    ]);
    expect(request.secretHeaders).toEqual(['Authorization']);
    expect(request.secretBody).toBe(false);
    expect(JSON.parse(request.body!)).toEqual({
      ticket: 'INC-1/../../admin?x=1#frag',
      status: 503,
      first: { id: 7 },
      all: { items: [{ id: 7 }, 'two'] },
      note: 'probe said 503 for a b/c?d#e&f=g',
      literal: '${{ not a reference }}',
      nested: [{ v: '1.4.2' }],
    });
    expect(request).toMatchObject({ method: 'POST', compress: true, timeoutMs: 30_000, successStatus: null, successPattern: null });
    // The fixed value used (as written and as encoded) is masked; one under 4 characters is not.
    expect(resolved.maskValues.sort()).toEqual(['fixed%2Fkey%20value', 'fixed/key value']);
  });

  it('refuses a header value that would carry CR or LF', () => {
    const plan = planOf(RUNBOOK);
    const injected = { ...DONE, ask: { phase: 'succeeded' as const, outputs: { ticket: 'INC-1\r\nX-Admin: yes' } } };
    expect(resolveHttpStep(stepOf(plan, 'call'), values(plan, injected), SECRETS)).toEqual({
      ok: false,
      error: 'headers.X-Ticket: a header value cannot contain CR, LF or NUL',
    });
  });

  it('refuses a value that would make a . or .. path segment (URL parsers would climb the path)', () => {
    const plan = planOf(RUNBOOK);
    const call = stepOf(plan, 'call');
    for (const ticket of ['..', '.']) {
      const climbing = { ...DONE, ask: { phase: 'succeeded' as const, outputs: { ticket } } };
      expect(resolveHttpStep(call, values(plan, climbing), SECRETS), ticket).toEqual({
        ok: false,
        error: 'url: a value made a . or .. path segment, which would change the path instead of filling it',
      });
    }
    // Encoded dots in a value are encoded again: they stay one literal segment.
    const encoded = resolveHttpStep(call, values(plan, { ...DONE, ask: { phase: 'succeeded', outputs: { ticket: '%2e%2e' } } }), SECRETS);
    expect(encoded.ok && new URL(encoded.request.url).pathname).toBe('/v1/%252e%252e/items');
  });

  it('refuses control and non-Latin-1 characters in a filled-in header value', () => {
    const plan = planOf(RUNBOOK);
    for (const ticket of ['INC-1\u0007', 'INC-1\u007f', 'INC-\u4e00']) {
      const odd = { ...DONE, ask: { phase: 'succeeded' as const, outputs: { ticket } } };
      const resolved = resolveHttpStep(stepOf(plan, 'call'), values(plan, odd), SECRETS);
      expect(resolved.ok ? 'resolved' : resolved.error, JSON.stringify(ticket)).toBe(
        'headers.X-Ticket: a header value holds only tab, printable ASCII and Latin-1 characters (no control characters)',
      );
    }
  });

  it('fails with the reason when the body of a step is not JSON or has no such field, or a secret is missing', () => {
    const plan = planOf(RUNBOOK);
    const call = stepOf(plan, 'call');
    expect(resolveHttpStep(call, values(plan, { ...DONE, probe: { phase: 'failed', http: { status: 503, body: '<html>' } } }), SECRETS)).toEqual({
      ok: false,
      error: 'body: steps.probe.json.items.0: the body of probe is not JSON',
    });
    expect(
      resolveHttpStep(call, values(plan, { ...DONE, probe: { phase: 'failed', http: { status: 503, body: '{}', json: { items: [] } } } }), SECRETS),
    ).toEqual({ ok: false, error: 'body: steps.probe.json.items.0: the body of probe has no field at items.0' });
    expect(resolveHttpStep(call, values(plan, { ...DONE, probe: { phase: 'failed', http: { status: null, body: '' } } }), SECRETS)).toEqual({
      ok: false,
      error: 'body: steps.probe.status: probe got no answer',
    });
    expect(resolveHttpStep(call, values(plan, DONE), new Map())).toEqual({
      ok: false,
      error: 'headers.Authorization: secrets.API_TOKEN: the target has no such secret',
    });
  });

  it('marks a body that holds a secret, so a redirect cannot carry it to another origin', () => {
    // The definition allows secrets only in headers; this body gets one past that check.
    const plan = planOf(RUNBOOK);
    const call = stepOf(plan, 'call');
    if (call.kind !== 'http') throw new Error('call is an http step');
    const withSecret = { ...call, http: { ...call.http, body: { nested: ['token=${{ secrets.API_TOKEN }}'] } } };
    const resolved = resolveHttpStep(withSecret, values(plan, DONE), SECRETS);
    if (!resolved.ok) throw new Error(resolved.error);
    expect(resolved.request.body).toBe('{"nested":["token=tok-123456"]}');
    expect(resolved.request.secretBody).toBe(true);
  });

  it('never fills a secret into a step that names no target', () => {
    const plan = planOf(`rb: { steps: [ { id: h, http: { url: "https://api.example/" } } ] }`);
    const step = stepOf(plan, 'h');
    const answer = referenceValue({ kind: 'secret', name: 'API_TOKEN' }, step, values(plan, {}));
    expect(answer).toEqual({ ok: false, error: 'secrets.API_TOKEN: the target has no such secret' });
  });
});

describe('referenceValue', () => {
  it('reads JSON fields by own property only', () => {
    const plan = planOf(RUNBOOK);
    const step = stepOf(plan, 'call');
    const withJson = (json: unknown) => values(plan, { probe: { phase: 'succeeded', http: { status: 200, body: '', json: json as never } } });
    const path = (text: string) => {
      const parsed = parseTemplate(`\${{ ${text} }}`);
      if (!parsed.ok || !('reference' in parsed.parts[0]!)) throw new Error(text);
      return parsed.parts[0].reference;
    };
    expect(referenceValue(path('steps.probe.json.a.b'), step, withJson({ a: { b: false } }))).toEqual({ ok: true, value: false });
    expect(referenceValue(path('steps.probe.json.constructor'), step, withJson({})).ok).toBe(false);
    expect(referenceValue(path('steps.probe.json.__proto__'), step, withJson({})).ok).toBe(false);
    expect(referenceValue(path('steps.probe.json.list.length'), step, withJson({ list: [1, 2] })).ok).toBe(false);
    expect(referenceValue(path('steps.probe.json.list.1'), step, withJson({ list: [1, 2] }))).toEqual({ ok: true, value: 2 });
    expect(referenceValue(path('steps.probe.body'), step, withJson({}))).toEqual({ ok: true, value: '' });
    expect(referenceValue(path('steps.ask.ticket'), step, values(plan, {}))).toEqual({ ok: false, error: 'steps.ask.ticket: ask has not run' });
  });
});

describe('resolveInputValues', () => {
  it("checks the form's values against the fields and answers them as outputs", () => {
    const plan = planOf(RUNBOOK);
    const ask = stepOf(plan, 'ask');
    expect(resolveInputValues(ask, { ticket: 'INC-9' })).toEqual({ ok: true, outputs: { ticket: 'INC-9', mode: 'soft' } });
    expect(resolveInputValues(ask, { mode: 'brutal', other: 'x' })).toEqual({
      ok: false,
      errors: [
        { name: 'other', message: 'ask has no field other (it takes ticket, mode)' },
        { name: 'mode', message: 'mode: expected one of soft, hard' },
      ],
    });
    expect(resolveInputValues(stepOf(plan, 'build'), {})).toEqual({ ok: false, errors: [{ name: 'step', message: 'rb.build is not an input step' }] });
  });
});
