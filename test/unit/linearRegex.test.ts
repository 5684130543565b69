import { describe, expect, it } from 'vitest';
import { compileLinear, linearPatternProblem } from '../../src/domain/linearRegex.js';
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
    expect(compiled.regex.matches('INC-1 and INC-22')).toEqual([{ start: 0, end: 5 }, { start: 10, end: 16 }]);
  });

  it('refuses backreferences, lookaround and overlong patterns with a reason', () => {
    expect(linearPatternProblem('(a)\\1')).toMatch(/linear-time engine/);
    expect(linearPatternProblem('(?=a)b')).toMatch(/lookaround/);
    expect(linearPatternProblem('a'.repeat(1001))).toMatch(/longer than 1000/);
    expect(linearPatternProblem('[a-z]+')).toBeNull();
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
