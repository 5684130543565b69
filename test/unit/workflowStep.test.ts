import { describe, expect, it } from 'vitest';
import type { Run } from '../../src/domain/run.js';
import {
  checkStepRequest,
  MAX_ARGUMENTS,
  MAX_ARGUMENTS_CHARS,
  MAX_ERROR_CHARS,
  parseArgumentsText,
  readStepInputs,
  refusalCompletion,
  runCompletion,
} from '../../src/domain/workflowStep.js';

const click = (id: string) => ({ interactor: { id, secret: 's3cret-of-the-interactor' }, interactivity_pointer: '123.456.abc' });

describe('the Workflow Builder step: arguments text', () => {
  it('reads one name=value per line, blank lines skipped, spaces around name and value dropped, = inside values kept', () => {
    expect(parseArgumentsText('mode=hard\n\n  ticket = INC-42 \r\nquery=a=b\n')).toEqual({
      ok: true,
      values: { mode: 'hard', ticket: 'INC-42', query: 'a=b' },
    });
    expect(parseArgumentsText('empty=')).toEqual({ ok: true, values: { empty: '' } });
    expect(parseArgumentsText('   \n ')).toEqual({ ok: true, values: {} });
  });

  it('reads a JSON object as it is (the plan checks the values)', () => {
    expect(parseArgumentsText(' {"mode": "hard", "count": 3, "dry": true} ')).toEqual({ ok: true, values: { mode: 'hard', count: 3, dry: true } });
  });

  it('refuses what it cannot read, saying where', () => {
    expect(parseArgumentsText('mode=hard\nticket INC-42')).toEqual({
      ok: false,
      error: expect.stringMatching(/^Arguments line 2 is not name=value: "ticket INC-42"/),
    });
    expect(parseArgumentsText('=x')).toMatchObject({ ok: false, error: expect.stringMatching(/line 1 is not name=value/) });
    expect(parseArgumentsText('a=1\na=2')).toEqual({ ok: false, error: 'The argument a is given twice (line 2).' });
    expect(parseArgumentsText('{"mode": ')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^The arguments start like a JSON object but are not valid JSON/),
    });
    expect(parseArgumentsText('{"a":1} trailing')).toMatchObject({ ok: false });
    expect(parseArgumentsText('x'.repeat(MAX_ARGUMENTS_CHARS + 1))).toMatchObject({ ok: false, error: expect.stringMatching(/at most 16384 are read/) });
    const many = Array.from({ length: MAX_ARGUMENTS + 1 }, (_, i) => `a${i}=1`).join('\n');
    expect(parseArgumentsText(many)).toMatchObject({ ok: false, error: `At most ${MAX_ARGUMENTS} arguments can be given.` });
  });

  it('keeps __proto__ a name (refused later as an unknown argument), never the prototype', () => {
    const parsed = parseArgumentsText('__proto__=polluted');
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(Object.keys(parsed.values)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(parsed.values)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('the Workflow Builder step: inputs', () => {
  it('takes the starter from the interactivity input only, and keeps neither its secret nor its pointer', () => {
    const request = readStepInputs({ runbook: ' deploy ', arguments: 'mode=hard', message: '  ship it ', interactivity: click('UALICE') });
    expect(request).toEqual({ reference: 'deploy', argumentsText: 'mode=hard', message: 'ship it', starter: 'UALICE' });
    expect(JSON.stringify(request)).not.toMatch(/s3cret|123\.456/);
  });

  it('has no starter when the inputs name a user some other way (a user_id input anyone could set) or a malformed one', () => {
    expect(readStepInputs({ runbook: 'deploy', user_id: 'UALICE', user: 'UALICE' }).starter).toBeNull();
    expect(readStepInputs({ runbook: 'deploy', interactivity: { interactor: { id: 'not a user' } } }).starter).toBeNull();
    expect(readStepInputs(null)).toEqual({ reference: '', argumentsText: null, message: null, starter: null });
  });

  it('reads arguments Workflow Builder hands over as an object as JSON', () => {
    expect(readStepInputs({ runbook: 'x', arguments: { mode: 'hard' }, interactivity: click('UBOB') }).argumentsText).toBe('{"mode":"hard"}');
  });

  it('checks a request: a person, a reference, a message of reasonable size, readable arguments', () => {
    const base = { reference: 'deploy', argumentsText: 'mode=hard', message: null, starter: 'UALICE' };
    expect(checkStepRequest(base)).toEqual({ ok: true, reference: 'deploy', values: { mode: 'hard' }, message: null, starter: 'UALICE' });
    expect(checkStepRequest({ ...base, starter: null })).toMatchObject({ ok: false, error: expect.stringMatching(/needs to know who runs the workflow/) });
    expect(checkStepRequest({ ...base, reference: '' })).toMatchObject({ ok: false, error: expect.stringMatching(/Name the runbook/) });
    expect(checkStepRequest({ ...base, reference: 'r'.repeat(201) })).toMatchObject({ ok: false });
    expect(checkStepRequest({ ...base, message: 'm'.repeat(1001) })).toMatchObject({ ok: false, error: expect.stringMatching(/keep it under 1000/) });
    expect(checkStepRequest({ ...base, argumentsText: 'oops' })).toMatchObject({ ok: false, error: expect.stringMatching(/not name=value/) });
  });
});

describe('the Workflow Builder step: completions', () => {
  const run = (status: Run['status'], failureMessage: string | null = null) => ({ id: 7, reference: 'deploy', status, failureMessage });
  const link = 'https://slack.example/archives/C1/p1';

  it('completes successfully with run_id, status and link when the run succeeded', () => {
    expect(runCompletion(run('success'), link)).toEqual({ kind: 'success', outputs: { run_id: 7, status: 'success', link } });
  });

  it('fails with the reason and the link when the run failed, was killed, rejected or cancelled', () => {
    expect(runCompletion(run('failure', 'deploy.a: exit code 3'), link)).toEqual({
      kind: 'error',
      error: `countersign run 7 (deploy) failed: deploy.a: exit code 3. ${link}`,
    });
    expect(runCompletion(run('killed', 'killed by <@UBOB>'), link)).toMatchObject({
      kind: 'error',
      error: expect.stringContaining('was killed: killed by <@UBOB>'),
    });
    expect(runCompletion(run('rejected', 'rejected by <@UBOB>: no'), link)).toMatchObject({
      kind: 'error',
      error: expect.stringContaining('was rejected: rejected by <@UBOB>: no'),
    });
    expect(runCompletion(run('cancelled'), link)).toEqual({ kind: 'error', error: `countersign run 7 (deploy) was cancelled. ${link}` });
  });

  it('does not complete while the run has not ended', () => {
    for (const status of ['created', 'pending-review', 'approved', 'ready', 'running'] as const) expect(runCompletion(run(status), link)).toBeNull();
  });

  it('keeps errors to a readable length', () => {
    const long = runCompletion(run('failure', 'x'.repeat(5000)), link);
    expect(long?.kind === 'error' && long.error.length).toBeLessThanOrEqual(MAX_ERROR_CHARS);
    expect(refusalCompletion('y'.repeat(5000))).toMatchObject({ kind: 'error' });
    expect((refusalCompletion('y'.repeat(5000)) as { error: string }).error.length).toBe(MAX_ERROR_CHARS);
  });
});
