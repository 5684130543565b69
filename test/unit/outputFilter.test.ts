import { describe, expect, it } from 'vitest';
import { compileRedactRules } from '../../src/domain/redaction.js';
import { OutputFilter } from '../../src/runner/outputFilter.js';

function rules(...names: string[]) {
  const compiled = compileRedactRules(names);
  if (!compiled.ok) throw new Error(compiled.error);
  return compiled.rules;
}

describe('OutputFilter', () => {
  it('masks a secret and an email each split across chunks with a pause between them', async () => {
    const seen: string[] = [];
    const filter = new OutputFilter(['hunter2-very-secret'], rules('email'), (text) => seen.push(text));
    filter.push('token=hunter2-ve');
    filter.push('ry-secret user=alice@exa');
    // A pause longer than any quiet-spell timer used to be: nothing half-matched may show.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen.join('')).toBe('');
    filter.push('mple.com\n');
    filter.end();
    expect(seen.join('')).toBe('token=***** user=[redacted:email]\n');
  });

  it('passes text straight through when there are no rules, holding back only a possible secret start', () => {
    const seen: string[] = [];
    const filter = new OutputFilter(['s3cr3t-value'], [], (text) => seen.push(text));
    filter.push('progress 10% s3cr');
    expect(seen.join('')).toBe('progress 10% ');
    filter.push('ETCH\n');
    filter.end();
    expect(seen.join('')).toBe('progress 10% s3crETCH\n');
  });
});
