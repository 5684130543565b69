import { describe, expect, it } from 'vitest';
import { signTestP } from '../../bench/compare/signTest.js';

describe('signTestP', () => {
  it('is the upper tail of a fair binomial', () => {
    expect(signTestP(12, 12)).toBeCloseTo(1 / 4096, 12);
    // C(12,10) + C(12,11) + C(12,12) = 66 + 12 + 1
    expect(signTestP(10, 12)).toBeCloseTo(79 / 4096, 12);
    // C(12,7..12) = 792 + 495 + 220 + 66 + 12 + 1
    expect(signTestP(7, 12)).toBeCloseTo(1586 / 4096, 12);
    expect(signTestP(0, 12)).toBe(1);
    expect(signTestP(0, 0)).toBe(1);
    expect(signTestP(1, 1)).toBe(0.5);
  });

  it('refuses counts that are not whole or out of range', () => {
    expect(() => signTestP(13, 12)).toThrow(/need whole/);
    expect(() => signTestP(-1, 12)).toThrow(/need whole/);
    expect(() => signTestP(1.5, 12)).toThrow(/need whole/);
  });
});
