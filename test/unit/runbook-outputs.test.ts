// $COUNTERSIGN_OUTPUT as GitHub Actions reads $GITHUB_OUTPUT: name=value and name<<EOF blocks,
// bounded in size and names, strict about names; and outputs of a step run on several hosts.
import { describe, expect, it } from 'vitest';
import { MAX_OUTPUT_FILE_BYTES, mergeHostOutputs, parseStepOutputs } from '../../src/domain/runbook/outputs.js';

describe('parseStepOutputs', () => {
  it('reads name=value and multi-line name<<DELIMITER values; the last of a name wins', () => {
    const text = `${['version=1.4.2', 'url=https://x.example/?a=b=c', '', 'empty=', 'notes<<EOF', 'line one', '', 'line = two', 'EOF', 'version=1.4.3', 'arrow<<END', 'a<<b', 'END'].join('\n')}\n`;
    expect(parseStepOutputs(text)).toEqual({
      ok: true,
      outputs: { url: 'https://x.example/?a=b=c', empty: '', notes: 'line one\n\nline = two', version: '1.4.3', arrow: 'a<<b' },
    });
  });

  it('reads CRLF files and Buffers the same', () => {
    expect(parseStepOutputs(Buffer.from('a=1\r\nb<<X\r\nm\r\nX\r\n'))).toEqual({ ok: true, outputs: { a: '1', b: 'm' } });
    expect(parseStepOutputs('')).toEqual({ ok: true, outputs: {} });
  });

  it('refuses bad names, reserved names, a missing delimiter, NUL bytes and lines of no form, naming the line', () => {
    expect(parseStepOutputs('ok=1\nbad name=2')).toEqual({
      ok: false,
      error: 'line 2: "bad name" is not an output name (letters, digits and _, not starting with a digit, at most 64)',
    });
    expect(parseStepOutputs('1st=x')).toMatchObject({ ok: false, error: expect.stringMatching(/^line 1: "1st" is not an output name/) });
    expect(parseStepOutputs('status=200')).toEqual({ ok: false, error: 'line 1: status is a reserved name (phase, status, body, json)' });
    expect(parseStepOutputs('a=1\nnotes<<EOF\nnever closed\n')).toEqual({ ok: false, error: 'line 2: the value of notes is not closed by a line "EOF"' });
    expect(parseStepOutputs('just text')).toEqual({ ok: false, error: 'line 1: expected name=value or name<<DELIMITER' });
    expect(parseStepOutputs('a=1\u0000')).toEqual({ ok: false, error: 'the output file contains a NUL byte' });
  });

  it('is bounded: 64 KiB and 100 names', () => {
    const big = `a=${'x'.repeat(MAX_OUTPUT_FILE_BYTES)}`;
    expect(parseStepOutputs(big)).toEqual({ ok: false, error: 'the output file is larger than 64 KiB, so none of it was read' });
    expect(parseStepOutputs(Buffer.from(big))).toMatchObject({ ok: false });
    const fits = `a=${'x'.repeat(MAX_OUTPUT_FILE_BYTES - 3)}\n`;
    expect(parseStepOutputs(fits).ok).toBe(true);
    const hundred = Array.from({ length: 100 }, (_, i) => `n${i}=v`).join('\n');
    expect(parseStepOutputs(hundred).ok).toBe(true);
    expect(parseStepOutputs(`${hundred}\nn100=v`)).toEqual({ ok: false, error: 'line 101: more than 100 output names' });
    // Repeating a name does not count twice.
    expect(parseStepOutputs(`${hundred}\nn0=again`).ok).toBe(true);
  });

  it('keeps __proto__ a plain output', () => {
    const parsed = parseStepOutputs('__proto__=x');
    expect(parsed.ok && Object.hasOwn(parsed.outputs, '__proto__')).toBe(true);
    expect(parsed.ok && Object.getPrototypeOf(parsed.outputs)).toBe(Object.prototype);
  });
});

describe('mergeHostOutputs', () => {
  it('keeps what hosts agree on and reports what they do not', () => {
    expect(
      mergeHostOutputs([
        { host: 'web-1', outputs: { version: '1.4', node: 'web-1', only: 'here' } },
        { host: 'web-2', outputs: { version: '1.4', node: 'web-2' } },
        { host: 'web-3', outputs: { version: '1.4', node: 'web-2' } },
      ]),
    ).toEqual({ outputs: { version: '1.4', only: 'here' }, conflicts: ['node: the hosts wrote different values (web-1 / web-2, web-3)'] });
    const proto = mergeHostOutputs([{ host: 'a', outputs: JSON.parse('{"__proto__":"x"}') as Record<string, string> }]);
    expect(Object.hasOwn(proto.outputs, '__proto__')).toBe(true);
  });
});
