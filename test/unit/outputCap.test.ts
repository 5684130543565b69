import { describe, expect, it } from 'vitest';
import { OutputCap } from '../../src/domain/outputCap.js';

const bytes = (text: string) => Buffer.byteLength(text);
const MARKER = /\n\[… countersign dropped (\d+) bytes of output here: the task printed more than ([^;]+); the last lines follow …\]\n/;

/** Feeds `chunks`, returning what the caller would store: each accept() result, then finish(). */
function store(cap: OutputCap, chunks: Iterable<string>): { stored: string[]; final: string } {
  const stored: string[] = [];
  for (const chunk of chunks) stored.push(cap.accept(chunk));
  return { stored, final: cap.finish() };
}

/** No lone surrogate halves (String.prototype.isWellFormed is beyond our ES2023 lib). */
function wellFormed(text: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

function splitMarker(output: string): { head: string; dropped: number; tail: string } | null {
  const match = MARKER.exec(output);
  if (!match) return null;
  return { head: output.slice(0, match.index), dropped: Number(match[1]), tail: output.slice(match.index + match[0].length) };
}

describe('OutputCap', () => {
  it('stores everything, unchanged, under the limit', () => {
    const cap = new OutputCap(1000, 100);
    const { stored, final } = store(cap, ['hello\n', 'world\n']);
    expect(stored).toEqual(['hello\n', 'world\n']);
    expect(final).toBe('');
    expect(cap.droppedBytes).toBe(0);
    expect(cap.totalBytes).toBe(12);
  });

  it('returns the held-back part at the end when the head budget is spent but nothing was dropped', () => {
    const cap = new OutputCap(100, 40);
    const input = ['a'.repeat(50), 'b'.repeat(20), 'c'.repeat(20)];
    const { stored, final } = store(cap, input);
    expect(stored.join('') + final).toBe(input.join(''));
    expect(final).not.toMatch(MARKER);
    expect(cap.droppedBytes).toBe(0);
  });

  it('keeps the head and the last lines, with a marker, when over the limit', () => {
    const cap = new OutputCap(200, 60);
    const lines = Array.from({ length: 50 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`);
    const { stored, final } = store(cap, lines);
    const parts = splitMarker(stored.join('') + final);
    expect(parts).not.toBeNull();
    if (!parts) return;
    const input = lines.join('');
    expect(input.startsWith(parts.head)).toBe(true);
    expect(bytes(parts.head)).toBe(140);
    expect(input.endsWith(parts.tail)).toBe(true);
    expect(parts.tail.endsWith('line 49\n')).toBe(true);
    // The tail starts at a line boundary, and is within its budget.
    expect(parts.tail.startsWith('line ')).toBe(true);
    expect(bytes(parts.tail)).toBeLessThanOrEqual(60);
    expect(parts.dropped).toBe(bytes(input) - bytes(parts.head) - bytes(parts.tail));
    expect(cap.droppedBytes).toBe(parts.dropped);
    expect(cap.totalBytes).toBe(bytes(input));
  });

  it('says how much was dropped and what the limit is, in words', () => {
    const cap = new OutputCap(10 * 1024 * 1024, 256 * 1024);
    const chunk = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 11 * 1024; i++) cap.accept(chunk);
    const final = cap.finish();
    expect(final).toMatch(MARKER);
    expect(final).toContain('dropped 1048576 bytes');
    expect(final).toContain('more than 10.0 MiB');
  });

  it('keeps a tail that is one unfinished line rather than dropping it', () => {
    const cap = new OutputCap(100, 30);
    const { final } = store(cap, ['a'.repeat(70), 'b'.repeat(200)]);
    const parts = splitMarker(final);
    expect(parts?.tail).toBe('b'.repeat(30));
    expect(parts?.dropped).toBe(170);
  });

  it('does not cut the tail further when it already starts a line', () => {
    const cap = new OutputCap(100, 30);
    const { final } = store(cap, ['a'.repeat(70), `${'b'.repeat(99)}\n`, 'last 1\nlast 2\n']);
    expect(splitMarker(final)?.tail).toBe('last 1\nlast 2\n');
  });

  it('handles one chunk far larger than the limit', () => {
    const cap = new OutputCap(1000, 100);
    const lines = Array.from({ length: 10_000 }, (_, i) => `row ${i}\n`).join('');
    const stored = cap.accept(lines);
    const parts = splitMarker(stored + cap.finish());
    expect(bytes(stored)).toBe(900);
    expect(lines.startsWith(stored)).toBe(true);
    expect(parts?.tail.endsWith('row 9999\n')).toBe(true);
    expect(parts?.tail.startsWith('row ')).toBe(true);
    expect(bytes(parts?.tail ?? '')).toBeLessThanOrEqual(100);
  });

  it('works with no tail at all', () => {
    const cap = new OutputCap(10, 0);
    const { stored, final } = store(cap, ['0123456789abc\n']);
    expect(stored).toEqual(['0123456789']);
    expect(splitMarker(final)).toEqual({ head: '', dropped: 4, tail: '' });
  });

  it('rejects nonsensical sizes', () => {
    expect(() => new OutputCap(0, 0)).toThrow(RangeError);
    expect(() => new OutputCap(100, 101)).toThrow(RangeError);
    expect(() => new OutputCap(100, -1)).toThrow(RangeError);
    expect(() => new OutputCap(1.5, 0)).toThrow(RangeError);
  });

  it('finishes once', () => {
    const cap = new OutputCap(10, 5);
    cap.accept('a'.repeat(20));
    expect(cap.finish()).toMatch(MARKER);
    expect(cap.finish()).toBe('');
    expect(() => cap.accept('x')).toThrow();
  });

  describe('multi-byte characters', () => {
    const text = 'aé€😀\nb😀é\nc€€😀😀\nééé\n😀'.repeat(2);

    it('never splits a character, whatever the limit and the chunk boundaries', () => {
      const total = bytes(text);
      for (let limit = 1; limit <= total + 2; limit++) {
        for (const tail of new Set([0, Math.floor(limit / 4), Math.floor(limit / 2), limit])) {
          for (let cut = 0; cut <= text.length; cut++) {
            const cap = new OutputCap(limit, tail);
            const { stored, final } = store(cap, [text.slice(0, cut), text.slice(cut)]);
            const output = stored.join('') + final;
            const context = `limit ${limit}, tail ${tail}, cut ${cut}`;
            expect(output.includes('\uFFFD'), context).toBe(false);
            expect(wellFormed(output), context).toBe(true);
            expect(cap.totalBytes, context).toBe(total);
            const parts = splitMarker(output);
            if (parts === null) {
              expect(output, context).toBe(text);
              continue;
            }
            expect(text.startsWith(parts.head), context).toBe(true);
            expect(text.endsWith(parts.tail), context).toBe(true);
            expect(bytes(parts.head), context).toBeLessThanOrEqual(limit - tail);
            expect(bytes(parts.tail), context).toBeLessThanOrEqual(tail);
            expect(bytes(parts.head) + parts.dropped + bytes(parts.tail), context).toBe(total);
          }
        }
      }
    });

    it('survives one code unit at a time, emoji halves included', () => {
      const cap = new OutputCap(40, 15);
      const { stored, final } = store(
        cap,
        [...Array(text.length).keys()].map((i) => text[i] ?? ''),
      );
      const output = stored.join('') + final;
      expect(wellFormed(output)).toBe(true);
      expect(output).not.toContain('\uFFFD');
      expect(text.endsWith(splitMarker(output)?.tail ?? '?')).toBe(true);
    });

    it('stores everything exactly when emoji halves arrive apart under the limit', () => {
      const cap = new OutputCap(1000, 100);
      const { stored, final } = store(cap, ['x\uD83D', '\uDE00y']);
      expect(stored.join('') + final).toBe('x😀y');
      expect(cap.totalBytes).toBe(6);
    });

    it('keeps a lone high surrogate at the very end as it was', () => {
      const cap = new OutputCap(1000, 100);
      const { stored, final } = store(cap, ['x\uD83D']);
      expect(stored.join('') + final).toBe('x\uD83D');
    });
  });

  it('stays within limit + marker for 200 MB in 64 KiB chunks and ends with the last lines', () => {
    const limit = 10 * 1024 * 1024;
    const tail = Math.min(256 * 1024, limit / 4);
    const cap = new OutputCap(limit, tail);
    const chunkSize = 64 * 1024;
    let lineNumber = 0;
    let pending = '';
    let storedBytes = 0;
    let lastInput = '';
    let inputBytes = 0;
    let acceptMs = 0;
    while (inputBytes < 200 * 1024 * 1024) {
      while (pending.length < chunkSize) pending += `${lineNumber++} é ${'.'.repeat(lineNumber % 90)}\n`;
      const chunk = pending.slice(0, chunkSize);
      pending = pending.slice(chunkSize);
      inputBytes += bytes(chunk);
      const before = performance.now();
      storedBytes += bytes(cap.accept(chunk));
      acceptMs += performance.now() - before;
      lastInput = (lastInput + chunk).slice(-2 * tail);
    }
    const before = performance.now();
    const final = cap.finish();
    acceptMs += performance.now() - before;
    console.info(`OutputCap: ${(inputBytes / 2 ** 20).toFixed(0)} MiB in 64 KiB chunks, ${acceptMs.toFixed(0)} ms in accept()+finish()`);
    const marker = MARKER.exec(final)?.[0] ?? '';
    expect(marker).not.toBe('');
    expect(storedBytes + bytes(final)).toBeLessThanOrEqual(limit + bytes(marker));
    expect(storedBytes).toBe(limit - tail);
    const tailText = final.slice(marker.length);
    expect(lastInput.endsWith(tailText)).toBe(true);
    expect(tailText.length).toBeGreaterThan(tail / 2);
    expect(tailText.split('\n')[0]).toMatch(/^\d+ é \.*$/);
    expect(cap.totalBytes).toBe(inputBytes);
    expect(cap.droppedBytes).toBe(inputBytes - storedBytes - bytes(tailText));
  });
});
