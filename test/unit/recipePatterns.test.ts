// Recipe input patterns run in the linear-time engine (issue 10 point 1): a pattern written to
// make a backtracking engine explode is answered at once, patterns RE2 cannot run or that
// compile to an oversized program are refused when added, and what one match may look at is
// bounded by the argument cap and by the pattern's program size.
import { describe, expect, it } from 'vitest';
import { parseRunbookJson, RUNBOOK_FORMAT } from '../../src/domain/runbook/definition.js';
import { MAX_MATCH_WORK, maxMatchedChars, parseRecipeJson, patternMismatch, patternProblem, resolveArguments, type Recipe } from '../../src/domain/recipe.js';

const CATASTROPHIC = '(a+)+b';

const recipeWith = (pattern: string): Recipe => ({
  name: 'evil',
  description: null,
  target: 'sandbox',
  type: null,
  script: 'echo "$1"',
  message: null,
  origin: 'imported',
  arguments: [{ name: 'x', kind: 'input', pattern, required: true }],
});

/** Milliseconds `fn` takes, after one warm-up call (the first re2js use compiles its own code). */
function timed(fn: () => unknown): number {
  fn();
  const started = performance.now();
  fn();
  return performance.now() - started;
}

describe('recipe input patterns', () => {
  it("refuses a default of 30 a's for (a+)+b in under 50 ms (a backtracking engine takes seconds)", () => {
    const json = {
      name: 'evil',
      target: 'sandbox',
      script: 'echo "$1"',
      arguments: [{ name: 'x', kind: 'input', pattern: CATASTROPHIC, default: 'a'.repeat(30) }],
    };
    const ms = timed(() => parseRecipeJson(json));
    expect(parseRecipeJson(json)).toEqual({ ok: false, problems: ['arguments[0].default: the default does not match the pattern'] });
    expect(ms).toBeLessThan(50);
  });

  it("matches (a+)+b against 4,000 a's in under 50 ms, and refuses 10,000 by length before matching", () => {
    const recipe = recipeWith(CATASTROPHIC);
    const ms = timed(() => resolveArguments(recipe, { x: 'a'.repeat(4000) }));
    expect(resolveArguments(recipe, { x: 'a'.repeat(4000) })).toEqual({ ok: false, errors: [{ name: 'x', message: 'x: expected a value matching /(a+)+b/' }] });
    expect(ms).toBeLessThan(50);
    expect(resolveArguments(recipe, { x: `${'a'.repeat(4000)}b` })).toMatchObject({ ok: true });
    const long = timed(() => resolveArguments(recipe, { x: 'a'.repeat(10_000) }));
    expect(resolveArguments(recipe, { x: 'a'.repeat(10_000) })).toMatchObject({
      ok: false,
      errors: [{ name: 'x', message: expect.stringContaining('at most 4096 bytes') }],
    });
    expect(long).toBeLessThan(50);
  });

  it('refuses what RE2 cannot run (backreferences, lookaround) when the recipe is added, saying why', () => {
    expect(patternProblem('(a)\\1')).toMatch(/linear-time engine \(RE2 syntax/);
    expect(patternProblem('(?=a)a')).toMatch(/linear-time engine/);
    expect(patternProblem('(?<!x)y')).toMatch(/linear-time engine/);
    const parsed = parseRecipeJson({ name: 'r', target: 'sandbox', script: 'true', arguments: [{ name: 'x', kind: 'input', pattern: '(\\w+)\\s\\1' }] });
    expect(parsed.ok === false && parsed.problems[0]).toMatch(/^arguments\[0\]\.pattern: not a valid pattern for the linear-time engine/);
  });

  it('refuses a pattern whose program is too large to match quickly, and bounds the text a large one looks at', () => {
    expect(patternProblem('(?:.*a){1000}')).toMatch(/too complex .* at most 1000/);
    expect(patternProblem('[a-z][a-z0-9-]{0,62}')).toBeNull();
    // An everyday pattern checks a whole 4 KiB argument; a big one fewer characters.
    expect(maxMatchedChars('[a-z][a-z0-9-]{0,62}')).toBe(4096);
    const big = '[a-z]{1,400}';
    expect(patternProblem(big)).toBeNull();
    expect(maxMatchedChars(big)).toBeLessThan(4096);
    expect(maxMatchedChars(big) * 400).toBeLessThanOrEqual(MAX_MATCH_WORK);
    expect(patternMismatch(big, 'a'.repeat(maxMatchedChars(big) + 1))).toBe('too-long');
    expect(resolveArguments(recipeWith(big), { x: 'a'.repeat(maxMatchedChars(big) + 1) })).toMatchObject({
      ok: false,
      errors: [{ message: expect.stringMatching(/at most \d+ characters for this pattern/) }],
    });
  });

  it('refuses values for a stored pattern the linear-time engine cannot run, instead of running it elsewhere', () => {
    // Imported before patterns were checked with RE2: the start is refused with what to do.
    const result = resolveArguments(recipeWith('(?=a)a'), { x: 'a' });
    expect(result).toMatchObject({ ok: false, errors: [{ name: 'x', message: expect.stringContaining('import it again with an RE2 pattern') }] });
  });

  it('keeps RE2 semantics the old patterns relied on: whole-value match, classes, alternation, Unicode', () => {
    const recipe = recipeWith('[a-z0-9][a-z0-9._/-]*|v\\d+\\.\\d+');
    expect(resolveArguments(recipe, { x: 'release/1.2' }).ok).toBe(true);
    expect(resolveArguments(recipe, { x: 'v1.2' }).ok).toBe(true);
    expect(resolveArguments(recipe, { x: 'v1.2 ; id' }).ok).toBe(false);
    expect(resolveArguments(recipe, { x: 'x\nrm' }).ok).toBe(false);
    expect(resolveArguments(recipeWith('\\p{L}+'), { x: 'Zürich' }).ok).toBe(true);
  });
});

describe('patterns of one document, together (review of issue 10, H1)', () => {
  // 40 steps with 20 input fields each: one pattern per field, every one of them small enough alone.
  const heavyRunbook = (pattern: string) => ({
    format: RUNBOOK_FORMAT,
    reference: 'many-patterns',
    steps: Array.from({ length: 40 }, (_, i) => ({
      id: `ask${i}`,
      input: { fields: Array.from({ length: 20 }, (_, j) => ({ name: `f${j}`, kind: 'input', pattern })) },
    })),
  });

  it('refuses a runbook whose patterns add up to too much before compiling any of them', () => {
    const started = performance.now();
    const parsed = parseRunbookJson(heavyRunbook('[a-z]{1,400}'));
    const took = performance.now() - started;
    expect(parsed).toEqual({ ok: false, problems: ['the patterns add up to 9600 characters, at most 4000 in one recipe or runbook'] });
    expect(took).toBeLessThan(50);
    const big = parseRunbookJson({
      ...heavyRunbook('x'),
      steps: [{ id: 'a', http: { url: 'https://example.com/', successPattern: '/(a|b){1000}(c|d){1000}(e|f){1000}(g|h){1000}/' } }],
    });
    expect(big).toMatchObject({ ok: false, problems: [expect.stringMatching(/together compile to more than 10000 steps/)] });
  });

  it('refuses a recipe of 20 patterns of ~900 characters by their total, in milliseconds', () => {
    const args = Array.from({ length: 20 }, (_, i) => ({ name: `a${i}`, kind: 'input', pattern: '(a|b){1000}'.repeat(83) }));
    const started = performance.now();
    const parsed = parseRecipeJson({ name: 'freeze', target: 'sandbox', script: 'true', arguments: args });
    expect(performance.now() - started).toBeLessThan(50);
    expect(parsed).toEqual({ ok: false, problems: ['arguments: the patterns add up to 18260 characters, at most 4000 in one recipe or runbook'] });
  });
});
