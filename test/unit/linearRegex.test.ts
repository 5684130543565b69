import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { compileLinear, documentPatternsProblem, linearPatternProblem } from '../../src/domain/linearRegex.js';
import { estimateProgramSize } from '../../src/domain/linearRegexSize.js';
import { canonicalJson, contentHash } from '../../src/domain/digest.js';

describe('compileLinear', () => {
  it('answers a catastrophic pattern against 10,000 characters in linear time', () => {
    const compiled = compileLinear('(a+)+b');
    if (!compiled.ok) throw new Error(compiled.error);
    // The best of three: a loaded 2-core machine can pause any one attempt; a backtracking engine takes seconds every time.
    const times = [0, 1, 2].map(() => {
      const started = performance.now();
      expect(compiled.regex.fullMatch('a'.repeat(10_000))).toBe(false);
      expect(compiled.regex.test(`${'a'.repeat(10_000)}c`)).toBe(false);
      return performance.now() - started;
    });
    expect(Math.min(...times)).toBeLessThan(50);
  });

  it('matches whole text, somewhere, and lists non-empty matches', () => {
    const compiled = compileLinear('INC-[0-9]+');
    if (!compiled.ok) throw new Error(compiled.error);
    expect(compiled.regex.fullMatch('INC-42')).toBe(true);
    expect(compiled.regex.fullMatch('INC-42 x')).toBe(false);
    expect(compiled.regex.test('see INC-42 x')).toBe(true);
    expect(compiled.regex.matches('INC-1 and INC-22')).toEqual([
      { start: 0, end: 5 },
      { start: 10, end: 16 },
    ]);
  });

  it('refuses backreferences, lookaround and overlong patterns with a reason', () => {
    expect(linearPatternProblem('(a)\\1')).toMatch(/linear-time engine/);
    expect(linearPatternProblem('(?=a)b')).toMatch(/lookaround/);
    expect(linearPatternProblem('a'.repeat(1001))).toMatch(/longer than 1000/);
    expect(linearPatternProblem('[a-z]+')).toBeNull();
  });
});

/** A small deterministic generator of RE2 patterns: nesting, alternation, counted repeats, escapes, classes, flags. */
function patterns(seed: number, count: number): string[] {
  let state = seed;
  const random = (n: number) => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const atoms = [
    'a',
    'b',
    'ab',
    'abc',
    '.',
    '\\d',
    '[a-z]',
    '[^]x]',
    '\\pL',
    '\\p{Greek}',
    '\\x{41}',
    '\\Qab*\\E',
    '^',
    '$',
    '\\b',
    '[[:alpha:]]',
    'é',
    '😀',
    '(?i)',
    '\\.',
    '\\{',
    'x{',
  ];
  const repeats = ['', '', '*', '+', '?', '*?', '{2}', '{0,3}', '{2,}', '{1,4}', '{0}', '{3,5}?', '{7}', '{10,20}', '{0,12}'];
  const groups = ['(', '(?:', '(?P<n>', '(?i:', '(?s:'];
  const pick = (list: readonly string[]) => list[random(list.length)]!;
  const pattern = (depth: number): string => {
    let text = '';
    for (let i = 0, n = 1 + random(4); i < n; i++) {
      const group = depth < 4 && random(10) < 3;
      const item = group
        ? `${pick(groups)}${pattern(depth + 1)}${random(2) ? `|${pattern(depth + 1)}` : ''}${random(3) ? '' : `|${pick(atoms)}|${pick(atoms)}`})`
        : pick(atoms);
      text += item + pick(repeats);
    }
    return random(6) === 0 ? `${text}|${pattern(depth + 1)}` : text;
  };
  return Array.from({ length: count }, () => pattern(0));
}

describe('estimateProgramSize', () => {
  it('is never below the size re2js compiles a pattern to, and close above it for large programs', () => {
    let compiled = 0;
    let worstRatio = 0;
    for (const pattern of patterns(1, 6000)) {
      let size: number;
      try {
        size = RE2JS.compile(pattern).programSize();
      } catch {
        continue; // not valid RE2: the parser says why, the estimate does not matter
      }
      compiled++;
      const estimate = estimateProgramSize(pattern);
      if (estimate < size) throw new Error(`${pattern}: estimated ${estimate}, compiles to ${size}`);
      if (size >= 200) worstRatio = Math.max(worstRatio, estimate / size);
    }
    expect(compiled).toBeGreaterThan(3000);
    expect(worstRatio).toBeLessThan(3);
    for (const [pattern, size] of [
      ['(a|b){1000}', 3002],
      ['[a-z][a-z0-9-]{0,62}', 127],
      ['(a{100}){10}', 1022],
      ['\\Qa+b\\E{3}', 5],
    ] as const) {
      expect(estimateProgramSize(pattern)).toBeGreaterThanOrEqual(size);
      expect(estimateProgramSize(pattern)).toBeLessThanOrEqual(size + 3);
    }
  });

  it("reads the review's 1,000-character pattern in well under a millisecond, stopping at the limit", () => {
    const pattern = '(a|b){1000}'.repeat(90);
    expect(estimateProgramSize(pattern)).toBeGreaterThan(250_000);
    expect(estimateProgramSize(pattern, 2000)).toBe(2001);
  });
});

describe('compileLinear refuses oversized programs before compiling them', () => {
  it('refuses (a|b){1000} repeated to 1,000 characters in milliseconds (compiling it takes about a second)', () => {
    const pattern = '(a|b){1000}'.repeat(90).slice(0, 990);
    compileLinear('(a|b){10}'); // warm up re2js
    const started = performance.now();
    const compiled = compileLinear(pattern);
    const took = performance.now() - started;
    expect(compiled).toMatchObject({
      ok: false,
      error: expect.stringMatching(/too complex to match quickly \(it compiles to more than 2000 steps, at most 1000\)/),
    });
    expect(took).toBeLessThan(50);
  });

  it('compiles what the estimate lets through and checks the real size against the cap', () => {
    expect(compileLinear('(a|b){300}')).toMatchObject({ ok: true, regex: { programSize: 902 } });
    expect(compileLinear('(a|b){400}')).toMatchObject({ ok: false, tooComplex: { steps: '1202', max: 1000 } });
    expect(compileLinear('[a-z]{1,400}', { maxProgramSize: 500 })).toMatchObject({ ok: false, tooComplex: { steps: '801', max: 500 } });
    expect(compileLinear('[a-z]{1,600}', { maxProgramSize: 500 })).toMatchObject({ ok: false, tooComplex: { steps: 'more than 1000', max: 500 } });
  });

  it('matches whole text with the one program it compiled, as ^(?:p)$ would', () => {
    for (const [pattern, text, whole] of [
      ['a|ab', 'ab', true],
      ['(?m)a$', 'a\n', false],
      ['a*', '', true],
      ['\\d+', '12x', false],
      ['x|', '', true],
    ] as const) {
      const compiled = compileLinear(pattern);
      if (!compiled.ok) throw new Error(compiled.error);
      expect(compiled.regex.fullMatch(text)).toBe(whole);
      expect(RE2JS.compile(`^(?:${pattern})$`).matcher(text).matches()).toBe(whole);
    }
  });
});

describe('documentPatternsProblem', () => {
  it('caps the characters and the estimated program of all patterns of one recipe or runbook together', () => {
    expect(documentPatternsProblem(['[a-z]+', undefined, 42, '\\d{1,8}'])).toBeNull();
    expect(documentPatternsProblem(Array.from({ length: 20 }, () => 'x'.repeat(300)))).toMatch(/add up to 6000 characters, at most 4000/);
    expect(documentPatternsProblem(Array.from({ length: 20 }, () => '[a-z]{1,600}'))).toMatch(/more than 10000 steps/);
  });
});

describe('contentHash', () => {
  it('does not depend on key order, and differs by domain and by content', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}');
    expect(contentHash('x', { a: 1, b: 2 })).toBe(contentHash('x', { b: 2, a: 1 }));
    expect(contentHash('x', { a: 1 })).not.toBe(contentHash('y', { a: 1 }));
    expect(contentHash('x', { a: 1 })).toMatch(/^[0-9a-f]{64}$/);
    // A key named __proto__ (JSON.parse makes it an own property) is content like any other.
    const withProto = JSON.parse('{"a":1,"__proto__":{"x":1}}') as unknown;
    expect(canonicalJson(withProto)).toBe('{"__proto__":{"x":1},"a":1}');
    expect(contentHash('x', withProto)).not.toBe(contentHash('x', { a: 1 }));
  });
});
