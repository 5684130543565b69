import { describe, expect, it } from 'vitest';
import { MASK, SecretMasker } from '../../src/domain/secretMasker.js';
import { seededRandom } from '../support/seededRandom.js';

/** The obvious whole-string version: at each position, the longest secret that starts there. */
function reference(text: string, secrets: readonly string[]): string {
  const sorted = secrets.filter((s) => s !== '').sort((a, b) => b.length - a.length);
  let out = '';
  let pos = 0;
  while (pos < text.length) {
    const secret = sorted.find((s) => text.startsWith(s, pos));
    if (secret === undefined) {
      out += text[pos];
      pos++;
    } else {
      out += MASK;
      pos += secret.length;
    }
  }
  return out;
}

/** Feeds `chunks` through a fresh masker, checking the held-back bound after each push. */
function stream(secrets: readonly string[], chunks: readonly string[]): string {
  const masker = new SecretMasker(secrets);
  const longest = Math.max(0, ...secrets.map((s) => s.length));
  let out = '';
  for (const chunk of chunks) {
    out += masker.push(chunk);
    expect(heldLength(masker)).toBeLessThanOrEqual(Math.max(0, longest - 1));
  }
  return out + masker.end();
}

function splitAt(text: string, cuts: readonly number[]): string[] {
  const parts: string[] = [];
  let last = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    parts.push(text.slice(last, cut));
    last = cut;
  }
  parts.push(text.slice(last));
  return parts;
}

function heldLength(masker: SecretMasker): number {
  return (masker as unknown as { held: string }).held.length;
}

describe('SecretMasker', () => {
  it('masks a secret inside one chunk', () => {
    const masker = new SecretMasker(['hunter2']);
    expect(masker.push('password is hunter2, ok\n') + masker.end()).toBe(`password is ${MASK}, ok\n`);
  });

  it('masks a secret split across two chunks', () => {
    const masker = new SecretMasker(['hunter2']);
    const first = masker.push('password is hun');
    expect(first).toBe('password is ');
    expect(masker.push('ter2!\n')).toBe(`${MASK}!\n`);
    expect(masker.end()).toBe('');
  });

  it('masks a secret split over many one-character chunks', () => {
    expect(stream(['s3cr3t'], [...'a s3cr3t b s3cr3'])).toBe(`a ${MASK} b s3cr3`);
  });

  it('releases a held-back prefix that turns out not to be a secret', () => {
    const masker = new SecretMasker(['hunter2']);
    expect(masker.push('xx hunt')).toBe('xx ');
    expect(masker.push('ing')).toBe('hunting');
    expect(masker.push('hunte')).toBe('');
    expect(masker.end()).toBe('hunte');
  });

  it('holds back nothing when the chunk cannot begin a secret', () => {
    const masker = new SecretMasker(['hunter2']);
    expect(masker.push('hello world\n')).toBe('hello world\n');
    expect(heldLength(masker)).toBe(0);
  });

  it('prefers the longest of overlapping secrets', () => {
    expect(stream(['abc', 'abcdef'], ['xabcdefx abcx'])).toBe(`x${MASK}x ${MASK}x`);
    expect(stream(['abc', 'abcdef'], ['xabc', 'def'])).toBe(`x${MASK}`);
    expect(stream(['abc', 'abcdef'], ['xabc', 'dex'])).toBe(`x${MASK}dex`);
  });

  it('prefers the leftmost match over a longer one starting later', () => {
    expect(stream(['xab', 'abcdef'], ['xabcdef'])).toBe(`${MASK}cdef`);
  });

  it('masks a shorter secret inside a held-back prefix of a longer one at the end', () => {
    const masker = new SecretMasker(['abcdef', 'bc']);
    expect(masker.push('1 abcd')).toBe('1 ');
    expect(masker.end()).toBe(`a${MASK}d`);
  });

  it('masks secrets with newlines and regex metacharacters', () => {
    const secrets = ['line1\nline2', '.*+?()[]{}|\\^$', 'a.c'];
    const text = 'x line1\nline2 y .*+?()[]{}|\\^$ z abc a.c';
    expect(stream(secrets, [text])).toBe(`x ${MASK} y ${MASK} z abc ${MASK}`);
    expect(stream(secrets, [...text])).toBe(`x ${MASK} y ${MASK} z abc ${MASK}`);
  });

  it('masks back-to-back and repeated secrets', () => {
    expect(stream(['aa'], ['aaaaa'])).toBe(`${MASK}${MASK}a`);
    expect(stream(['tok'], ['toktok', 'tok'])).toBe(MASK.repeat(3));
  });

  it('ignores empty and duplicate secrets', () => {
    expect(stream(['', 'pw', 'pw'], ['a pw b'])).toBe(`a ${MASK} b`);
    const masker = new SecretMasker(['']);
    expect(masker.push('anything')).toBe('anything');
  });

  it('passes chunks through untouched with no secrets', () => {
    const masker = new SecretMasker([]);
    const chunk = 'some output\nwith a partial';
    expect(masker.push(chunk)).toBe(chunk);
    expect(masker.push('')).toBe('');
    expect(masker.end()).toBe('');
  });

  it('never holds back more than the longest secret minus one', () => {
    const secrets = ['abcdefgh', 'abcab', 'zz'];
    const random = seededRandom(7);
    const masker = new SecretMasker(secrets);
    for (let i = 0; i < 2000; i++) {
      const chunk = Array.from({ length: Math.floor(random() * 12) }, () => 'abcdefghz'[Math.floor(random() * 9)]).join('');
      masker.push(chunk);
      expect(heldLength(masker)).toBeLessThanOrEqual(7);
    }
  });

  describe('matches the whole-string reference whatever the chunk boundaries', () => {
    const secretSets: string[][] = [
      ['abc'],
      ['abc', 'abcdef'],
      ['aab', 'ab', 'b'],
      ['aaaa', 'aa'],
      ['abab', 'bab', 'ba'],
      ['x\ny', '.*', '(?:)'],
      ['hunter2', 'correct horse', 'AKIAIOSFODNN7EXAMPLE'],
    ];

    function randomText(random: () => number, secrets: readonly string[], length: number): string {
      const noise = [...new Set(`${secrets.join('')}q \n`)];
      let text = '';
      while (text.length < length) {
        const roll = random();
        if (roll < 0.3) text += secrets[Math.floor(random() * secrets.length)] ?? '';
        else if (roll < 0.5) {
          // A prefix of a secret: the case that must be held back and then released.
          const secret = secrets[Math.floor(random() * secrets.length)] ?? '';
          text += secret.slice(0, Math.floor(random() * secret.length));
        } else text += noise[Math.floor(random() * noise.length)] ?? '';
      }
      return text;
    }

    it.each(secretSets.map((set) => [set.join(' | '), set] as const))('every single boundary: %s', (_name, secrets) => {
      const random = seededRandom(secrets.join('').length);
      for (let round = 0; round < 40; round++) {
        const text = randomText(random, secrets, 1 + Math.floor(random() * 40));
        const expected = reference(text, secrets);
        for (let cut = 0; cut <= text.length; cut++) {
          expect(stream(secrets, splitAt(text, [cut])), `${JSON.stringify(text)} cut at ${cut}`).toBe(expected);
        }
        expect(stream(secrets, [...text])).toBe(expected);
      }
    });

    it.each(secretSets.map((set) => [set.join(' | '), set] as const))('random multi-boundaries: %s', (_name, secrets) => {
      const random = seededRandom(1000 + secrets.length);
      for (let round = 0; round < 300; round++) {
        const text = randomText(random, secrets, Math.floor(random() * 80));
        const cuts = Array.from({ length: Math.floor(random() * 10) }, () => Math.floor(random() * (text.length + 1)));
        expect(stream(secrets, splitAt(text, cuts)), `${JSON.stringify(text)} cut at ${cuts.join(',')}`).toBe(reference(text, secrets));
      }
    });
  });

  it('masks 50 MB in 64 KiB chunks with 5 secrets quickly', () => {
    const secrets = ['Zq8#vL2!pX9@mK4$tR7a', 'db-password-00112233', 'xoxb-1234-5678-abcdEF', 'AKIAIOSFODNN7EXAMPLE', 'ghp_16C7e42F292c6912E'];
    const line = 'INFO 2024-05-01T12:00:00Z request handled in 12ms for user 42 path=/api/v1/items?page=3\n';
    // One MiB of whole lines, repeated 50 times: no secret crosses a repetition, so the
    // expected output is the reference on one repetition, repeated.
    let unit = '';
    for (let i = 0; unit.length < 1 << 20; i++) unit += i % 50 === 0 ? `token=${secrets[i % 5]} ${line}` : line;
    const chunkSize = 64 * 1024;
    const chunks: string[] = [];
    for (let offset = 0; offset < unit.length; offset += chunkSize) chunks.push(unit.slice(offset, offset + chunkSize));

    const masker = new SecretMasker(secrets);
    const out: string[] = [];
    const started = performance.now();
    for (let round = 0; round < 50; round++) for (const chunk of chunks) out.push(masker.push(chunk));
    out.push(masker.end());
    const elapsed = performance.now() - started;
    console.info(`SecretMasker: ${((unit.length * 50) / 2 ** 20).toFixed(0)} MiB in ${elapsed.toFixed(0)} ms`);
    expect(elapsed).toBeLessThan(2000);
    expect(out.join('') === reference(unit, secrets).repeat(50)).toBe(true);
  });
});
