import { describe, expect, it } from 'vitest';
import { jsonParameter } from '../../src/store/db.js';

describe('jsonParameter', () => {
  it('mends a lone surrogate to U+FFFD, as a text parameter stores it, and leaves everything else', () => {
    const value = { cut: 'done \ud83d', whole: 'ok \ud83d\ude00', literal: '\\ud83d is text', nested: [{ low: '\udc00' }] };
    expect(JSON.parse(jsonParameter(value))).toEqual({ cut: 'done \ufffd', whole: 'ok \ud83d\ude00', literal: '\\ud83d is text', nested: [{ low: '\ufffd' }] });
  });

  it('is JSON.stringify when there is nothing to mend', () => {
    const value = { a: 1, b: null, c: 'plain \ud83d\ude00', d: ['x'] };
    expect(jsonParameter(value)).toBe(JSON.stringify(value));
  });
});
