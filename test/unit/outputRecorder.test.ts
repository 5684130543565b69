import { describe, expect, it } from 'vitest';
import { OutputRecorder } from '../../src/runner/outputRecorder.js';

/** A recorder that never flushes in these tests (the database is never reached). */
function recorder(): OutputRecorder {
  return new OutputRecorder({} as never, 1, { flushMs: 3_600_000, maxBufferBytes: 1 << 30, highWaterBytes: 1 << 30, onError: () => undefined });
}

describe('OutputRecorder.lastLine', () => {
  it('keeps stdout and stderr lines apart when they interleave', () => {
    const r = recorder();
    r.write(1, 'stdout', 'last: ');
    r.write(1, 'stderr', 'a warning\n');
    r.write(1, 'stdout', '*****\n');
    expect(r.lastLine).toBe('last: *****');
  });

  it('answers an unfinished last line, and never a system note', () => {
    const r = recorder();
    r.write(1, 'stdout', 'one\ntwo');
    r.write(null, 'system', 'countersign: stopped\n');
    expect(r.lastLine).toBe('two');
  });

  it('finds the last non-empty line across chunks, blank lines and carriage returns', () => {
    const r = recorder();
    r.write(1, 'stdout', 'first\nsec');
    r.write(1, 'stdout', 'ond\n');
    expect(r.lastLine).toBe('second');
    r.write(1, 'stdout', '\n\n   \r\n');
    expect(r.lastLine).toBe('second');
    r.write(1, 'stdout', '\nthird\r\n\n');
    expect(r.lastLine).toBe('third');
    r.write(1, 'stdout', 'x'.repeat(5000));
    r.write(1, 'stdout', 'y\n');
    // A line longer than 4 KiB is kept by its last 4 KiB, and shown by its first 500 characters of those.
    expect(r.lastLine).toBe('x'.repeat(500));
  });
});
