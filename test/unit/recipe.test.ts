// Recipes as pure rules: the JSON format (parse, export, round trip), argument values checked
// against their kinds, and the `/task start` / `/task recipe` grammar.
import { describe, expect, it } from 'vitest';
import {
  describeArguments,
  exportRecipe,
  fixedValuesToMask,
  markFixedCopies,
  parseRecipeCommand,
  parseRecipeJson,
  resolveArguments,
  type Recipe,
} from '../../src/domain/recipe.js';

const RECIPE: Recipe = {
  name: 'restart',
  description: null,
  target: 'web-prod',
  type: null,
  script: 'systemctl restart "$1"',
  message: null,
  origin: 'config',
  arguments: [
    { name: 'token', kind: 'fixed', value: 'abc' },
    { name: 'mode', kind: 'options', options: ['soft', 'hard'], default: 'soft' },
    { name: 'service', kind: 'input', pattern: '[a-z][a-z0-9-]*', required: true, hint: 'a unit name' },
    { name: 'note', kind: 'input', required: false },
  ],
};

describe('resolveArguments', () => {
  it('answers every argument in declared order, fixed ones included, defaults applied', () => {
    expect(resolveArguments(RECIPE, { service: 'nginx' })).toEqual({
      ok: true,
      values: [
        { name: 'token', kind: 'fixed', value: 'abc' },
        { name: 'mode', kind: 'options', value: 'soft' },
        { name: 'service', kind: 'input', value: 'nginx' },
        { name: 'note', kind: 'input', value: '' },
      ],
    });
  });

  it('keeps tricky values as they are (they never reach a shell)', () => {
    const result = resolveArguments(RECIPE, { service: 'nginx', note: "'; rm -rf / # $(id)" });
    expect(result.ok && result.values[3]?.value).toBe("'; rm -rf / # $(id)");
  });

  it('refuses values outside the options, not matching the whole pattern, missing when required, unknown or fixed', () => {
    const result = resolveArguments(RECIPE, { mode: 'gentle', service: 'nginx; id', token: 'mine', extra: 'x' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      { name: 'token', message: 'token is fixed by the recipe and cannot be set' },
      { name: 'extra', message: 'restart has no argument extra (it takes mode, service, note)' },
      { name: 'mode', message: 'mode: expected one of soft, hard' },
      { name: 'service', message: 'service: expected a value matching /[a-z][a-z0-9-]*/ (a unit name)' },
    ]);
    const missing = resolveArguments(RECIPE, {});
    expect(!missing.ok && missing.errors).toEqual([{ name: 'service', message: 'service is required' }]);
    // The pattern must match the whole value, not a part of it.
    expect(resolveArguments(RECIPE, { service: 'x\nrm' }).ok).toBe(false);
    expect(resolveArguments(RECIPE, { service: 'nginx', note: 'a\u0000b' }).ok).toBe(false);
    // Half of an emoji (a lone surrogate): refused with an answer, never stored changed.
    expect(resolveArguments(RECIPE, { service: 'nginx', note: 'cut \ud83d' })).toEqual({
      ok: false,
      errors: [{ name: 'note', message: expect.stringMatching(/^note: contains half of a character/) }],
    });
    expect(resolveArguments(RECIPE, { service: 'nginx', note: 'whole \ud83d\ude00' }).ok).toBe(true);
    expect(resolveArguments(RECIPE, { service: 'nginx', note: 'x'.repeat(5000) }).ok).toBe(false);
    expect(resolveArguments(RECIPE, { service: { nested: true } }).ok).toBe(false);
  });

  it('shows fixed values as •••', () => {
    expect(
      describeArguments([
        { name: 'token', kind: 'fixed', value: 'abc' },
        { name: 'mode', kind: 'options', value: 'soft' },
      ]),
    ).toBe('token=••• mode="soft"');
  });
});

describe('the JSON format', () => {
  it('round-trips through export and parse once the fixed values, left out of the export, are filled in', () => {
    const exported = JSON.parse(exportRecipe(RECIPE));
    expect(JSON.stringify(exported)).not.toContain('"abc"');
    expect(parseRecipeJson(exported)).toEqual({
      ok: false,
      problems: ['arguments[0].value: a fixed argument needs its value (exports leave fixed values out: fill it in before importing)'],
    });
    exported.arguments[0].value = 'abc';
    expect(parseRecipeJson(exported)).toEqual({ ok: true, recipe: { ...RECIPE, origin: 'imported' } });
  });

  it('reads and writes editors (users and a user group), naming bad ones', () => {
    const withEditors = { ...JSON.parse(exportRecipe(RECIPE)), editors: { users: ['U0EDIT'], usergroup: 'S0SRE' } };
    withEditors.arguments[0].value = 'abc';
    const parsed = parseRecipeJson(withEditors);
    expect(parsed).toEqual({ ok: true, recipe: { ...RECIPE, origin: 'imported', editors: { users: ['U0EDIT'], usergroup: 'S0SRE' } } });
    if (parsed.ok) expect(JSON.parse(exportRecipe(parsed.recipe)).editors).toEqual({ users: ['U0EDIT'], usergroup: 'S0SRE' });
    expect(parseRecipeJson({ ...withEditors, editors: { users: ['alice'], team: 1 } })).toEqual({
      ok: false,
      problems: expect.arrayContaining([expect.stringMatching(/^editors\.users\[0\]: expected a Slack user id/), 'editors: unknown field: team']),
    });
  });

  it('names the field of every problem', () => {
    const parsed = parseRecipeJson({
      name: 'bad name',
      target: 'web-prod',
      script: '  ',
      arguments: [
        { name: 'x', kind: 'options', options: [] },
        { name: 'y', kind: 'input', pattern: '[' },
      ],
      extra: 1,
    });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems[0]).toMatch(/^name: /);
    expect(parsed.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^script: the script is empty/),
        expect.stringMatching(/^arguments\[0\]\.options: /),
        expect.stringMatching(/^arguments\[1\]\.pattern: not a valid pattern for the linear-time engine/),
        'unknown field: extra',
      ]),
    );
    expect(parseRecipeJson([1]).ok).toBe(false);
    expect(parseRecipeJson({ format: 'other', name: 'a', target: 't', script: 'true' })).toEqual({
      ok: false,
      problems: ['format: expected "countersign.recipe/v1"'],
    });
  });
});

describe('parseRecipeCommand', () => {
  it('parses start, list, export and import (with --replace and a fenced block), and leaves other commands alone', () => {
    expect(parseRecipeCommand('start restart')).toEqual({ kind: 'start', name: 'restart' });
    expect(parseRecipeCommand('start')).toMatchObject({ kind: 'recipe-error' });
    expect(parseRecipeCommand('recipe list')).toEqual({ kind: 'recipe-list' });
    expect(parseRecipeCommand('recipes')).toEqual({ kind: 'recipe-list' });
    expect(parseRecipeCommand('recipe export restart')).toEqual({ kind: 'recipe-export', name: 'restart' });
    expect(parseRecipeCommand('recipe remove restart')).toEqual({ kind: 'recipe-remove', name: 'restart' });
    expect(parseRecipeCommand('recipe remove')).toMatchObject({ kind: 'recipe-error' });
    expect(parseRecipeCommand('recipe import\n```json\n{"a":1}\n```')).toEqual({ kind: 'recipe-import', json: '{"a":1}\n', replace: false });
    expect(parseRecipeCommand('recipe import --replace ```{“a”:"&lt;b&gt; &amp;"}```')).toEqual({
      kind: 'recipe-import',
      json: '{"a":"<b> &"}',
      replace: true,
    });
    expect(parseRecipeCommand('recipe import')).toMatchObject({ kind: 'recipe-error' });
    expect(parseRecipeCommand('recipe frobnicate')).toMatchObject({ kind: 'recipe-error' });
    expect(parseRecipeCommand('run web-prod echo start')).toBeNull();
    expect(parseRecipeCommand('list')).toBeNull();
    expect(parseRecipeCommand('starter')).toBeNull();
  });
});

describe('fixed values and their copies (review 11, F1)', () => {
  const args = [
    { name: 'TOKEN', kind: 'fixed' as const, value: 'fixed-secret-zz' },
    { name: 'TINY', kind: 'fixed' as const, value: 'eu' },
    { name: 'COPY', kind: 'input' as const, value: 'Bearer fixed-secret-zz' },
    { name: 'REGION', kind: 'options' as const, value: 'eu-west' },
    { name: 'NOTE', kind: 'input' as const, value: 'fixed-secret' },
  ];

  it('marks every value holding a fixed value fixed; short fixed values mark nothing (they would hide common text)', () => {
    expect(markFixedCopies(args).map((a) => `${a.name}:${a.kind}`)).toEqual(['TOKEN:fixed', 'TINY:fixed', 'COPY:fixed', 'REGION:options', 'NOTE:input']);
    expect(markFixedCopies([{ name: 'A', kind: 'input', value: 'x' }])).toEqual([{ name: 'A', kind: 'input', value: 'x' }]);
  });

  it('masks the copies in output like the fixed value, and never shows them', () => {
    expect(fixedValuesToMask(args).sort()).toEqual(['Bearer fixed-secret-zz', 'fixed-secret-zz']);
    expect(describeArguments(args)).toBe('TOKEN=••• TINY=••• COPY=••• REGION="eu-west" NOTE="fixed-secret"');
  });
});
